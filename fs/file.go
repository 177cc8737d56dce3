package fs

import (
	"context"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/s3mount/s3mount/fs/backend"
)

// File is a regular file: an object.
type File struct {
	fusefs.Inode
	root *Root

	mu   sync.Mutex         // protects the following
	info backend.ObjectInfo // as last seen by lookup, listing or our own write
}

func (f *File) setInfo(info backend.ObjectInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.info = info
}

func (f *File) getInfo() backend.ObjectInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

func (f *File) fillAttr(out *fuse.Attr) {
	info := f.getInfo()
	f.root.setAttr(out, syscall.S_IFREG|f.root.opts.FileMode)
	out.Size = uint64(info.Size)
	out.Blocks = (out.Size + 511) / 512
	mtime := info.ModTime
	out.SetTimes(&mtime, &mtime, &mtime)
}

var _ = (fusefs.NodeGetattrer)((*File)(nil))

// Getattr implements fusefs.NodeGetattrer.
func (f *File) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fillAttr(&out.Attr)
	out.SetTimeout(f.root.opts.AttrTTL)
	return 0
}

var _ = (fusefs.NodeOpener)((*File)(nil))

// Open implements fusefs.NodeOpener. Reads are pinned to the object version (ETag) seen at open.
func (f *File) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	info := f.getInfo()
	info.Key = f.root.fileKey(&f.Inode)
	return &readHandle{root: f.root, info: info}, 0, 0
}
