package main

import (
	"fmt"
	"io"
	"strings"
)

// writeManPage writes s3mount(8) in roff, generated from the option table so that it always
// matches the code. `make install` installs it.
func writeManPage(w io.Writer) {
	esc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\e`), "-", `\-`) }
	fmt.Fprintf(w, `.TH S3MOUNT 8 "" "s3mount %s" "System Administration"
.SH NAME
s3mount \- mount an S3 bucket as a directory, with keyless credentials
.SH SYNOPSIS
.B s3mount
[\fIoptions\fR] \fBs3://\fIBUCKET\fR[\fB/\fIPREFIX\fR] \fIMOUNTPOINT\fR
.br
.B s3mount
\fBcheck\fR|\fBpolicy\fR|\fBstatus\fR|\fBversion\fR ...
.SH DESCRIPTION
s3mount presents the objects under a prefix of an S3 bucket as files and directories. Credentials
come from the EC2 instance profile (IMDSv2) or the standard AWS chain, followed by any number of
STS AssumeRole hops (\fBrole_arn\fR, each with an optional \fBexternal_id\fR). No access key is
needed anywhere; a public bucket needs no credentials at all (\fBno_sign_request\fR).
.PP
Writes are staged locally and reach S3 when the file is closed or fsync'ed; close(2) and fsync(2)
return only once the data is in S3, or fail with the error that kept it out. See
docs/SEMANTICS.md for what every operation guarantees.
.PP
Every option can be given as \fB\-\-name\fR \fIvalue\fR, \fB\-\-name=\fR\fIvalue\fR or inside
\fB\-o\fR \fIname=value,...\fR (the form of /etc/fstab). \fBrole_arn\fR starts a new hop; the
hop options that follow it apply to that hop.
`, version)
	order, groups := optionGroups()
	for _, g := range order {
		fmt.Fprintf(w, ".SH %s OPTIONS\n", strings.ToUpper(g))
		for _, o := range groups[g] {
			fmt.Fprintf(w, ".TP\n.B \\-\\-%s", esc(dashed(o.name)))
			if o.arg != "" {
				fmt.Fprintf(w, " \\fI%s\\fR", esc(o.arg))
			}
			fmt.Fprintf(w, "\n%s\n", esc(o.help))
		}
	}
	fmt.Fprint(w, `.SH FSTAB
.nf
s3://bucket/prefix /mnt/backup fuse.s3mount _netdev,nofail,config=/etc/s3mount/backup.conf 0 0
.fi
.PP
with role_arn= and external_id= in /etc/s3mount/backup.conf, mode 0600: /etc/fstab is readable
by every user.
.PP
Options for mount(8) and systemd (_netdev, nofail, noauto, user, defaults, x\-systemd.*, dev,
nodev, noexec, ...) are accepted and ignored. suid and nosuid are s3mount's own.
.SH OTHER USERS
Only the mounting user reaches the mount unless allow_other is given; it implies
default_permissions: the kernel checks every access against the modes and owners stored on the
files. no_default_permissions lets every admitted user do anything the role can, whatever the
modes say. Setuid and setgid bits are hidden and the mount is nosuid,nodev unless suid is given.
The staging, cache and log paths must not be writable by other users (exit status 15).
.SH EXIT STATUS
0 success; 1 other error; 2 bad usage; 10 mountpoint problem; 11 credential chain failed;
12 bucket or prefix unreachable; 13 the kernel mount failed; 14 unmounted with files not written to S3;
15 a staging, cache or log path another user could redirect.
\fBs3mount check\fR: 21 the credential source failed, 22 an AssumeRole hop, 23 S3.
\fBs3mount status\fR: 30 a mount is dead, 31 a mount's last commit failed, 32 no such mount.
.SH FILES
.TP
.I /etc/s3mount/NAME.conf
one mount (\fBsource=\fR, \fBmountpoint=\fR and options, one a line), for \fBconfig=\fR in fstab
and for \fBs3mount@NAME.service\fR; keep it mode 0600 when it holds an External ID.
.TP
.I /run/s3mount/
the control sockets \fBs3mount status\fR asks (root's mounts; other users':
$XDG_RUNTIME_DIR/s3mount/).
.SH SEE ALSO
fusermount3(1), mount(8), fstab(5)
`)
}
