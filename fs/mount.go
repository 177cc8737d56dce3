package fs

import (
	"os"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Server is a live mount.
type Server struct {
	srv  *fuse.Server
	root *Root
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
	opts := &fusefs.Options{
		EntryTimeout:    &o.EntryTTL,
		AttrTimeout:     &o.AttrTTL,
		NegativeTimeout: &o.NegativeTTL,
		UID:             o.UID,
		GID:             o.GID,
		MountOptions: fuse.MountOptions{
			AllowOther:    o.AllowOther,
			Options:       mo,
			FsName:        o.FsName,
			Name:          "s3mount",
			MaxWrite:      1 << 20,
			MaxReadAhead:  1 << 20,
			MaxBackground: 64,
			DirectMount:   os.Geteuid() == 0,
			Debug:         o.Debug,
			// O_TRUNC arrives with OPEN instead of as a separate SETATTR, so truncating at open
			// replaces the content only when the file is committed, never before.
			ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC,
		},
	}
	srv, err := fusefs.Mount(mountpoint, r.dir, opts)
	if err != nil {
		return nil, err
	}
	return &Server{srv: srv, root: r}, nil
}

// Wait blocks until the filesystem is unmounted, then releases what it held.
func (s *Server) Wait() {
	s.srv.Wait()
	s.root.Close()
}

// Unmount asks the kernel to unmount; it fails with EBUSY while files are open.
func (s *Server) Unmount() error { return s.srv.Unmount() }
