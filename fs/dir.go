package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Dir is a directory: a key prefix.
type Dir struct {
	fusefs.Inode
	root *Root
}

func (d *Dir) fillAttr(out *fuse.Attr) {
	d.root.setAttr(out, syscall.S_IFDIR|d.root.opts.DirMode)
	out.Size = 4096
}

var _ = (fusefs.NodeGetattrer)((*Dir)(nil))

// Getattr implements fusefs.NodeGetattrer.
func (d *Dir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fillAttr(&out.Attr)
	out.SetTimeout(d.root.opts.AttrTTL)
	return 0
}

var _ = (fusefs.NodeLookuper)((*Dir)(nil))

// Lookup implements fusefs.NodeLookuper.
func (d *Dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	e, err := d.root.lookupEntry(ctx, d.root.dirKey(&d.Inode), name)
	if err != nil {
		return nil, d.root.fail("lookup", d.Path(nil)+"/"+name, err)
	}
	return d.root.newChild(ctx, &d.Inode, e, out), 0
}

var _ = (fusefs.NodeOpendirHandler)((*Dir)(nil))

// OpendirHandle implements fusefs.NodeOpendirHandler: listing happens lazily, page by page, as
// the kernel reads the directory.
func (d *Dir) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{dir: d}, 0, 0
}

var _ = (fusefs.NodeStatfser)((*Dir)(nil))

// Statfs implements fusefs.NodeStatfser.
func (d *Dir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	d.root.statfs(out)
	return 0
}

// dirHandle is an open directory. It streams the listing and answers READDIRPLUS lookups from
// the listing itself, so "ls -l" needs no request per entry.
type dirHandle struct {
	dir *Dir

	// The kernel serialises calls on one directory handle (go-fuse holds a lock per handle).
	l    *lister
	last dirEntry // the entry Readdirent returned last, for Lookup
	pos  uint64   // entries returned so far
}

var _ = (fusefs.FileReaddirenter)((*dirHandle)(nil))

// Readdirent implements fusefs.FileReaddirenter.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	r := h.dir.root
	if h.l == nil {
		h.l = newLister(r.b, r.dirKey(&h.dir.Inode), r.opts.ListPageSize)
	}
	e, ok, err := h.l.next(ctx)
	if err != nil {
		return nil, r.fail("readdir", h.dir.Path(nil), err)
	}
	if !ok {
		return nil, 0
	}
	h.last = e
	h.pos++
	de := &fuse.DirEntry{Name: e.name, Mode: syscall.S_IFREG, Ino: r.ino(childKey(h.l.prefix, e.name), e.isDir), Off: h.pos}
	if e.isDir {
		de.Mode = syscall.S_IFDIR
	}
	return de, 0
}

var _ = (fusefs.FileLookuper)((*dirHandle)(nil))

// Lookup implements fusefs.FileLookuper for READDIRPLUS: name is the entry just returned.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if name != h.last.name {
		return h.dir.Lookup(ctx, name, out)
	}
	return h.dir.root.newChild(ctx, &h.dir.Inode, h.last, out), 0
}

var _ = (fusefs.FileSeekdirer)((*dirHandle)(nil))

// Seekdir implements fusefs.FileSeekdirer: it restarts the listing and skips to entry off.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.l, h.pos = nil, 0
	for h.pos < off {
		de, errno := h.Readdirent(ctx)
		if errno != 0 {
			return errno
		}
		if de == nil {
			break
		}
	}
	return 0
}

var _ = (fusefs.FileReleasedirer)((*dirHandle)(nil))

// Releasedir implements fusefs.FileReleasedirer.
func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {}
