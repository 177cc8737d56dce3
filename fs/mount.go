package fs

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Server is a live mount.
type Server struct {
	srv *fuse.Server
}

// Mount mounts r at mountpoint and starts serving. As root it mounts with the mount(2) system call
// and falls back to fusermount3; otherwise it uses fusermount3.
func Mount(mountpoint string, r *Root) (*Server, error) {
	o := r.opts
	var mo []string
	if o.ReadOnly {
		mo = append(mo, "ro")
	}
	if o.DefaultPermissions {
		mo = append(mo, "default_permissions")
	}
	if o.AllowRoot {
		mo = append(mo, "allow_root")
	}
	if o.Suid {
		mo = append(mo, "suid") // go-fuse and fusermount3 mount nosuid,nodev otherwise
	}
	opts := &fusefs.Options{
		EntryTimeout:    &o.EntryTTL,
		AttrTimeout:     &o.AttrTTL,
		NegativeTimeout: &o.NegativeTTL,
		UID:             o.UID,
		GID:             o.GID,
	}
	opts.MountOptions = FUSESettings(o.KernelReadahead)
	opts.AllowOther = o.AllowOther
	opts.Options = mo
	opts.FsName = o.FsName
	opts.Name = "s3mount"
	opts.Debug = o.Debug
	debugLog := log.Writer() // the standard logger's: standard error unless a test redirects it
	if o.DebugLog != nil {
		debugLog = o.DebugLog
	}
	// go-fuse's server logs requests (and its own troubles) to MountOptions.Logger, its node
	// layer to Options.Logger: one logger for both, and never file data (see dataRedactor).
	opts.Logger = log.New(dataRedactor{debugLog}, "", log.LstdFlags|log.Lmicroseconds) // requests are timed in µs
	opts.MountOptions.Logger = opts.Logger
	if !r.rootListed.Load() {
		ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
		r.ListRoot(ctx)
		cancel()
	}
	srv, err := fusefs.Mount(mountpoint, r.dir, opts)
	if err != nil {
		return nil, err
	}
	if o.KernelReadahead > 0 {
		if err := SetKernelReadahead(mountpoint, o.KernelReadahead); err != nil {
			r.log.Info("kernel read-ahead left at its default", "err", err)
		}
	}
	return &Server{srv: srv}, nil
}

// ListRoot lists the root directory: if it fits one page, its listing answers the first lookup of
// every path without a request. Mount calls it unless it ran already (the daemon runs it beside
// its bucket probe, see cmd/s3mount). It is taken before the mount appears, so that a program that
// waits for the mount and then opens a path does not race with it.
func (r *Root) ListRoot(ctx context.Context) {
	r.rootListed.Store(true)
	r.dir.lc.relist(ctx, r, r.opts.Prefix, 1, false) // the root's key; its node is not mounted yet
}

// FUSESettings are the FUSE settings that shape s3mount's speed: requests of up to 1 MiB, the
// kernel's read-ahead (readahead bytes, at least 1 MiB), 64 background requests, mount(2) as root,
// and O_TRUNC sent with OPEN. The benchmark's FUSE floor (integration/cmd/nullfs) mounts with them
// too, so that it measures what these settings allow.
func FUSESettings(readahead int64) fuse.MountOptions {
	return fuse.MountOptions{
		MaxWrite:      1 << 20,
		MaxReadAhead:  int(max(1<<20, readahead)),
		MaxBackground: 64,
		DirectMount:   os.Geteuid() == 0,
		// O_TRUNC arrives with OPEN instead of as a separate SETATTR, so truncating at open
		// replaces the content only when the file is committed, never before.
		ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC,
	}
}

// SetKernelReadahead sets the kernel's read-ahead for the mount. A FUSE mount starts at 128 KiB
// and the filesystem can only lower it, so without this every read reaches the filesystem in
// 128 KiB requests; with 1 MiB, in requests of up to 1 MiB (a quarter of the round trips, for
// sequential and random readers alike). Needs root (it is a sysfs setting of the mount's device).
func SetKernelReadahead(mountpoint string, n int64) error {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(path, []byte(strconv.FormatInt(max(4, n>>10), 10)), 0)
}

// Wait blocks until the filesystem is unmounted and the server has stopped. The Root still holds
// its resources then, for Root.Shutdown to commit what is left; Root.Close releases them.
func (s *Server) Wait() { s.srv.Wait() }

// Unmount asks the kernel to unmount; it fails with EBUSY while files are open.
func (s *Server) Unmount() error { return s.srv.Unmount() }
