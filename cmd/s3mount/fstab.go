package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// fstab and mount(8). An /etc/fstab line
//
//	s3://bucket/prefix /mnt/backup fuse.s3mount _netdev,nofail,config=/etc/s3mount/backup.conf 0 0
//
// reaches s3mount through /sbin/mount.fuse.s3mount, a link to s3mount that make install puts
// there: mount(8) runs helpers with a fixed PATH, so it would not find s3mount in /usr/local/bin
// through mount.fuse3. The options field holds fstab-only options next to ours; those are dropped.
// /etc/fstab is readable by everyone and mount(8) puts the field on the helper's command line, so
// an External ID belongs in the config file (0600), not in the field.

// fstabOnly are options for mount(8), systemd or the kernel that s3mount accepts and ignores.
// s3mount's mounts are always nodev (no object shows as a device file); suid and nosuid are s3mount's
// own options.
var fstabOnly = map[string]bool{
	"_netdev": true, "nofail": true, "noauto": true, "auto": true, "user": true, "users": true,
	"nouser": true, "owner": true, "group": true, "defaults": true,
	"dev": true, "nodev": true, "exec": true, "noexec": true, "async": true, "sync": true,
	"dirsync": true, "atime": true, "noatime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nodiratime": true, "lazytime": true, "loud": true, "silent": true,
}

// ignoredOption reports whether an option belongs to mount(8) or systemd rather than to s3mount.
func ignoredOption(name string) bool {
	return fstabOnly[name] || strings.HasPrefix(name, "x-") || strings.HasPrefix(name, "X-") ||
		name == "comment" || name == "fsname" || name == "subtype"
}

// isMountHelper reports whether we were run as mount(8)'s helper for type fuse.s3mount.
func isMountHelper(argv0 string) bool {
	base := filepath.Base(argv0)
	return base == "mount.fuse.s3mount" || base == "mount.s3mount"
}

// helperArgs turns mount(8)'s helper calling convention,
//
//	mount.fuse.s3mount SOURCE DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]
//
// into s3mount's own arguments. -f means "fake" there: nothing is mounted.
func helperArgs(args []string) (out []string, fake bool, err error) {
	var positional []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" || a == "-t" || a == "-N":
			if i+1 == len(args) {
				return nil, false, fmt.Errorf("mount helper: %s needs a value", a)
			}
			if a == "-o" {
				out = append(out, "-o", args[i+1])
			}
			i++
		case strings.HasPrefix(a, "-o"):
			out = append(out, a)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			if strings.Contains(a, "f") {
				fake = true
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(out, positional...), fake, nil
}
