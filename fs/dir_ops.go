package fs

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/s3mount/s3mount/fs/backend"
)

// exists reports whether name exists in d, locally or in S3 (as far as a fresh listing knows).
func (d *Dir) exists(ctx context.Context, name string) (dirEntry, bool, error) {
	if ch := d.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*File); ok && f.hasLocalState() {
			return dirEntry{name: name}, true, nil
		}
	}
	if ce, absent := d.listed(ctx, name); absent {
		return dirEntry{}, false, nil
	} else if ce != nil && ce.stored {
		return ce.e, true, nil
	}
	e, err := d.askS3(ctx, name)
	if errors.Is(err, syscall.ENOENT) {
		return dirEntry{}, false, nil
	}
	return e, err == nil, err
}

// mustBeNew fails with EEXIST if name exists in d (locally or in S3), for op.
func (d *Dir) mustBeNew(ctx context.Context, op, name string) syscall.Errno {
	_, ok, err := d.exists(ctx, name)
	switch {
	case err != nil:
		return d.root.fail(op, d.Path(nil)+"/"+name, err)
	case ok:
		return syscall.EEXIST
	}
	return 0
}

var _ = (fusefs.NodeCreater)((*Dir)(nil))

// Create implements fusefs.NodeCreater. The new file exists here at once and in S3 from its first
// commit (close or fsync). With O_EXCL the empty object is created in S3 at once with a
// conditional write (If-None-Match: *), so that two hosts cannot both create it.
func (d *Dir) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	defer d.root.op("create")()
	ctx = detached(ctx)
	r := d.root
	if err := r.writable(); err != nil {
		return nil, nil, 0, syscall.EROFS
	}
	if !validName(name) {
		return nil, nil, 0, syscall.EINVAL
	}
	if !keyFits(childKey(d.key(), name)) {
		return nil, nil, 0, syscall.ENAMETOOLONG
	}
	excl := flags&syscall.O_EXCL != 0
	if !r.recentlyMissing(childKey(d.key(), name)) || excl {
		e, ok, err := d.exists(ctx, name)
		if err != nil {
			return nil, nil, 0, r.fail("create", d.Path(nil)+"/"+name, err)
		}
		if ok && excl {
			return nil, nil, 0, syscall.EEXIST
		}
		if ok {
			// The kernel thought it missing; open the existing file instead of replacing it.
			if e.isDir {
				return nil, nil, 0, syscall.EISDIR
			}
			ch := r.newChild(ctx, &d.Inode, e, out)
			fh, fl, errno := ch.Operations().(*File).Open(ctx, flags)
			return ch, fh, fl, errno
		}
	}
	key := childKey(d.key(), name)
	a := newAttrs(ctx, syscall.S_IFREG|mode&07777)
	f := &File{root: r, info: backend.ObjectInfo{Key: key}, attrs: a, localOnly: true, opens: 1, writers: 1}
	dirty, err := newEmptyDirtyFile(r, f.key, f.info, a)
	if err != nil {
		return nil, nil, 0, r.fail("create", key, err)
	}
	f.dirty = dirty
	r.track(f, true)
	if excl {
		opts := a.contentOptions(key) // typed as a new file's commit is: it may stay empty
		opts.IfNoneMatch = true
		info, err := r.b.Put(ctx, key, bytes.NewReader(nil), 0, opts)
		if err != nil {
			dirty.release()
			r.track(f, false)
			return nil, nil, 0, r.fail("create", key, err)
		}
		f.adopt(info)
		f.localOnly = false
		dirty.base, dirty.dirty = info, false
		d.lc.stored(dirEntry{name: name, info: info})
	}
	r.forgetMissing(key)
	ch := r.newInode(ctx, &d.Inode, f, syscall.S_IFREG, key)
	r.setEntryTimeouts(out)
	f.fillAttr(&out.Attr)
	h := newFileHandle(f, f.info)
	h.write = true
	return ch, h, 0, 0
}

var _ = (fusefs.NodeMkdirer)((*Dir)(nil))

// Mkdir implements fusefs.NodeMkdirer: it writes the marker "name/" with a conditional write, so
// mkdir of an existing name fails with EEXIST also when another host made it at the same time.
func (d *Dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	defer d.root.op("mkdir")()
	ctx = detached(ctx)
	r := d.root
	if r.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	if !validName(name) {
		return nil, syscall.EINVAL
	}
	if !keyFits(dirPrefix(childKey(d.key(), name))) {
		return nil, syscall.ENAMETOOLONG // the marker "name/" is the longest key mkdir writes
	}
	if errno := d.mustBeNew(ctx, "mkdir", name); errno != 0 {
		return nil, errno
	}
	key := childKey(d.key(), name)
	a := newAttrs(ctx, syscall.S_IFDIR|mode&07777)
	info, err := r.b.Put(ctx, dirPrefix(key), bytes.NewReader(nil), 0, backend.PutOptions{IfNoneMatch: true, Meta: a.toMeta()})
	if err != nil {
		return nil, r.fail("mkdir", key, err)
	}
	r.forgetMissing(key)
	e := dirEntry{name: name, isDir: true, info: info}
	d.lc.stored(e)
	ch := r.newChild(ctx, &d.Inode, e, out)
	if nd, ok := ch.Operations().(*Dir); ok {
		nd.lc.seedEmpty(r) // mustBeNew found nothing under the prefix (in S3, or in a fresh listing)
	}
	return ch, 0
}

var _ = (fusefs.NodeRmdirer)((*Dir)(nil))

// Rmdir implements fusefs.NodeRmdirer: only an empty directory is removed (its marker deleted).
func (d *Dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	defer d.root.op("rmdir")()
	ctx = detached(ctx)
	r := d.root
	if r.opts.ReadOnly {
		return syscall.EROFS
	}
	prefix := dirPrefix(childKey(d.key(), name))
	if err := r.checkEmpty(ctx, d.GetChild(name), prefix); err != nil {
		return r.fail("rmdir", prefix, err)
	}
	err := r.b.Delete(ctx, prefix)
	d.lc.removed(name, err == nil)
	if err != nil {
		return r.fail("rmdir", prefix, err)
	}
	r.retire(d.GetChild(name))
	return 0
}

// checkEmpty fails with ENOTEMPTY if the directory with key prefix has any entry, in S3 or
// locally (node may be nil when the kernel has not looked inside).
func (r *Root) checkEmpty(ctx context.Context, node *fusefs.Inode, prefix string) error {
	if node != nil {
		if dir, ok := node.Operations().(*Dir); ok && len(dir.localOnlyNames()) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	p, err := r.b.List(ctx, backend.ListInput{Prefix: prefix, Delimiter: "/", MaxKeys: 2})
	if err != nil {
		return err
	}
	if len(p.Prefixes) > 0 || len(p.Objects) > 1 || (len(p.Objects) == 1 && p.Objects[0].Key != prefix) {
		return syscall.ENOTEMPTY
	}
	return nil
}

var _ = (fusefs.NodeUnlinker)((*Dir)(nil))

// Unlink implements fusefs.NodeUnlinker. The object is deleted at once; a file that is still open
// keeps its content locally (downloaded first if needed), so open handles read on until closed.
func (d *Dir) Unlink(ctx context.Context, name string) syscall.Errno {
	defer d.root.op("unlink")()
	ctx = detached(ctx)
	r := d.root
	if r.opts.ReadOnly {
		return syscall.EROFS
	}
	key := childKey(d.key(), name)
	localOnly := false
	f := d.fileChild(name)
	if f != nil {
		var err error
		if localOnly, err = f.detach(ctx); err != nil {
			return r.fail("unlink", key, err)
		}
	}
	if !localOnly {
		err := r.b.Delete(ctx, key)
		d.lc.removed(name, err == nil)
		if err != nil {
			if f != nil {
				f.reattach() // still there: its handles' writes are committed again
			}
			return r.fail("unlink", key, err)
		}
	}
	r.retire(d.GetChild(name))
	return 0
}

// detach prepares an unlinked file: its content stays available to open handles but is never
// committed. It reports whether the file existed only here.
func (f *File) detach(ctx context.Context) (localOnly bool, err error) {
	f.mu.Lock()
	opens, localOnly := f.opens, f.localOnly
	f.mu.Unlock()
	if opens == 0 {
		return localOnly, nil
	}
	d, err := f.dirtyState()
	if err != nil {
		return false, err
	}
	if err := d.keepForHandles(ctx); err != nil {
		return false, err // nothing changed: the file is committed as before
	}
	f.mu.Lock()
	f.unlinked = true
	f.mu.Unlock()
	return localOnly, nil
}

// keepForHandles loads the whole content and stops committing it (see File.detach).
func (d *dirtyFile) keepForHandles(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.waitIdle()
	if err := d.ensureLoaded(ctx); err != nil {
		return err
	}
	d.waitInflight()
	d.abortUpload()
	d.unlinked = true
	return nil
}

// reattach undoes detach when the unlink or rename that called it failed: the file is still
// there, and its handles' writes are committed as before.
func (f *File) reattach() {
	f.mu.Lock()
	f.unlinked = false
	d := f.dirty
	f.mu.Unlock()
	if d != nil {
		d.mu.Lock()
		d.unlinked = false
		d.mu.Unlock()
	}
}

var _ = (fusefs.NodeSymlinker)((*Dir)(nil))

// Symlink implements fusefs.NodeSymlinker: an object holding the target, with mode S_IFLNK.
func (d *Dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	defer d.root.op("symlink")()
	ctx = detached(ctx)
	r := d.root
	if r.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	if !keyFits(childKey(d.key(), name)) {
		return nil, syscall.ENAMETOOLONG
	}
	if errno := d.mustBeNew(ctx, "symlink", name); errno != 0 {
		return nil, errno
	}
	key := childKey(d.key(), name)
	a := newAttrs(ctx, syscall.S_IFLNK|0o777)
	info, err := r.b.Put(ctx, key, strings.NewReader(target), int64(len(target)), backend.PutOptions{IfNoneMatch: true, Meta: a.toMeta()})
	if err != nil {
		return nil, r.fail("symlink", key, err)
	}
	r.forgetMissing(key)
	e := dirEntry{name: name, info: info}
	d.lc.stored(e)
	return r.newChild(ctx, &d.Inode, e, out), 0
}

var _ = (fusefs.NodeLinker)((*Dir)(nil))

// Link implements fusefs.NodeLinker: S3 has no hard links, so link(2) fails with EPERM, the errno
// POSIX gives for "the file system does not support hard links".
func (d *Dir) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	defer d.root.op("link")()
	return nil, syscall.EPERM
}
