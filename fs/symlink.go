package fs

import (
	"context"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/s3mount/s3mount/fs/backend"
)

// Symlink is a symbolic link: an object whose content is the target and whose stored mode has the
// S_IFLNK type, as s3fs writes them.
type Symlink struct {
	fusefs.Inode
	noXattrs
	root *Root

	mu   sync.Mutex // protects info
	info backend.ObjectInfo
}

func (s *Symlink) setInfo(info backend.ObjectInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info = info
}

func (s *Symlink) fillAttr(out *fuse.Attr) {
	s.mu.Lock()
	info := s.info
	s.mu.Unlock()
	s.root.fillAttrs(out, parseMeta(info.Meta), syscall.S_IFLNK, 0o777)
	out.Size = uint64(info.Size)
	mtime := info.ModTime
	if a := parseMeta(info.Meta); !a.mtime.IsZero() {
		mtime = a.mtime
	}
	out.SetTimes(&mtime, &mtime, &mtime)
}

var _ = (fusefs.NodeGetattrer)((*Symlink)(nil))

// Getattr implements fusefs.NodeGetattrer.
func (s *Symlink) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	s.fillAttr(&out.Attr)
	out.SetTimeout(s.root.opts.AttrTTL)
	return 0
}

// maxLinkTarget is the longest target a symbolic link can have: PATH_MAX (4096) less its NUL.
const maxLinkTarget = 4095

var _ = (fusefs.NodeReadlinker)((*Symlink)(nil))

// Readlink implements fusefs.NodeReadlinker. An object claimed as a link whose content is longer
// than maxLinkTarget fails with ENAMETOOLONG, without being read.
func (s *Symlink) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	defer s.root.op("readlink")()
	s.mu.Lock()
	info := s.info
	s.mu.Unlock()
	info.Key = s.root.fileKey(&s.Inode)
	if info.Size > maxLinkTarget {
		// Not a link any program made (symlink(2) refuses such targets): never fetched whole.
		s.root.log.Warn("readlink: the object is too large for a symbolic link's target; not read", "key", info.Key, "size", info.Size, "max", maxLinkTarget)
		return nil, syscall.ENAMETOOLONG
	}
	buf := make([]byte, info.Size)
	n, err := readObject(ctx, s.root.b, info, buf, 0) // a GET of info.Size bytes at most
	if err != nil {
		return nil, s.root.fail("readlink", info.Key, err)
	}
	return buf[:n], 0
}

var _ = (fusefs.NodeOnForgetter)((*Symlink)(nil))

// OnForget implements fusefs.NodeOnForgetter: the kernel and the tree no longer refer to the node.
func (s *Symlink) OnForget() { s.root.forgotten(&s.Inode) }

var _ = (fusefs.NodeSetattrer)((*Symlink)(nil))

// Setattr implements fusefs.NodeSetattrer: times and owner of a link (lutimes, lchown; rsync -a
// sets them) are stored on its object, like a file's, with a server-side copy onto itself.
func (s *Symlink) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = detached(ctx)
	if s.root.opts.ReadOnly {
		return syscall.EROFS
	}
	if update, _ := attrUpdate(in); update != nil {
		s.mu.Lock()
		a := attrsOf(s.info)
		s.mu.Unlock()
		update(&a)
		a.mode = syscall.S_IFLNK | 0o777 // a link's own mode never changes
		key := s.root.fileKey(&s.Inode)
		opts := a.putOptions()
		info, _, err := s.root.b.Copy(ctx, key, key, backend.Replace(opts))
		if err != nil {
			return s.root.fail("setattr", key, err)
		}
		s.setInfo(info)
		storedInParent(&s.Inode, false, info)
	}
	s.fillAttr(&out.Attr)
	out.SetTimeout(s.root.opts.AttrTTL)
	return 0
}
