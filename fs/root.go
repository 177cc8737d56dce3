// Package fs is the FUSE filesystem: it presents the objects under a key prefix of a backend.Backend
// as a directory tree.
//
// # Structure
//
// Root holds everything mount-wide (backend, options, inode numbers). Dir and File are the nodes;
// each embeds go-fuse's Inode and points to Root. Their FUSE methods are thin: they translate
// arguments, call plain Go (listing.go, names.go, the handles), and map errors with toErrno, the one
// error-to-errno mapping. Key→path mapping: a directory is a key prefix ending in "/" (present as a
// common prefix or as a "dir/" marker object); a file is an object. See docs/SEMANTICS.md.
//
// go-fuse is imported as fusefs, since this package is itself called fs.
package fs

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/s3mount/s3mount/fs/backend"
)

// Root is the mount-wide state.
type Root struct {
	// read only after NewRoot
	b    backend.Backend
	opts Options
	log  *slog.Logger
	dir  *Dir // the root directory node

	mu      sync.Mutex        // protects the following
	inos    map[string]uint64 // stable inode number per "d:"/"f:" + key
	nextIno uint64
}

// NewRoot builds the filesystem for b.
func NewRoot(b backend.Backend, opts Options) *Root {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Root{b: b, opts: opts, log: log, inos: map[string]uint64{}, nextIno: 1}
	r.dir = &Dir{root: r}
	return r
}

// ino returns the stable inode number of the directory or file at key. Numbers are never reused
// within a mount, so concurrent lookups of one name agree and the kernel deduplicates them.
func (r *Root) ino(key string, isDir bool) uint64 {
	k := "f:" + key
	if isDir {
		k = "d:" + key
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.inos[k]; ok {
		return n
	}
	r.nextIno++
	r.inos[k] = r.nextIno
	return r.nextIno
}

// fileKey returns the object key of a file node: the mount prefix plus its path in the tree.
func (r *Root) fileKey(n *fusefs.Inode) string {
	return r.opts.Prefix + n.Path(nil)
}

// dirKey returns the key prefix of a directory node: "" or ending in "/".
func (r *Root) dirKey(n *fusefs.Inode) string {
	if n.IsRoot() {
		return r.opts.Prefix
	}
	return dirPrefix(r.opts.Prefix + n.Path(nil))
}

// setAttr fills the attributes every node shares.
func (r *Root) setAttr(out *fuse.Attr, mode uint32) {
	out.Mode = mode
	out.Uid, out.Gid = r.opts.UID, r.opts.GID
	out.Nlink = 1
	out.Blksize = 1 << 20
}

// setEntryTimeouts applies the kernel cache TTLs to a lookup answer.
func (r *Root) setEntryTimeouts(out *fuse.EntryOut) {
	out.SetEntryTimeout(r.opts.EntryTTL)
	out.SetAttrTimeout(r.opts.AttrTTL)
}

// newChild returns the node for a directory entry, filling out. A node the tree already has for
// that name and inode number is updated in place: go-fuse keeps the first node registered for an
// inode number and would discard a new one together with its fresh info.
func (r *Root) newChild(ctx context.Context, parent *fusefs.Inode, e dirEntry, out *fuse.EntryOut) *fusefs.Inode {
	ino := r.ino(childKey(r.dirKey(parent), e.name), e.isDir)
	r.setEntryTimeouts(out)
	if ch := parent.GetChild(e.name); ch != nil && ch.StableAttr().Ino == ino {
		switch n := ch.Operations().(type) {
		case *File:
			n.setInfo(e.info)
			n.fillAttr(&out.Attr)
			return ch
		case *Dir:
			n.fillAttr(&out.Attr)
			return ch
		}
	}
	if e.isDir {
		d := &Dir{root: r}
		d.fillAttr(&out.Attr)
		return parent.NewInode(ctx, d, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
	}
	f := &File{root: r, info: e.info}
	f.fillAttr(&out.Attr)
	return parent.NewInode(ctx, f, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: ino})
}

// Statfs reports a large, mostly free filesystem: S3 has no capacity limit to report.
func (r *Root) statfs(out *fuse.StatfsOut) {
	const blocks = 1 << 40 // 4 PiB of 4 KiB blocks
	out.Bsize, out.Frsize = 4096, 4096
	out.Blocks, out.Bfree, out.Bavail = blocks, blocks, blocks
	out.Files, out.Ffree = 1<<40, 1<<40
	out.NameLen = maxNameLen
}
