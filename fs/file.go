package fs

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend"
)

// File is a regular file: an object, plus local content while it is being written.
type File struct {
	fusefs.Inode
	noXattrs
	root *Root

	mu    sync.Mutex         // protects the following
	info  backend.ObjectInfo // the committed version, as last seen or written
	attrs attrs              // stored attributes of that version
	dirty *dirtyFile         // local content; nil when the file has none
	opens int                // open handles
	// localOnly: created by this mount and not yet committed; S3 does not have it.
	localOnly bool
	// unlinked: removed while open (link count 0).
	unlinked bool
	// attrsUnknown: info came from a listing (Options.ListingAttrs), so attrs are the defaults,
	// not what the object stores; they are read (HEAD) before anything is written back.
	attrsUnknown bool
	// readers are the open handles' readers, which a rename moves to the new key.
	readers map[*reader]struct{}
	writers int            // open handles that may write; changed with storeMu held too
	storing map[int64]bool // regions being stored into the kernel's page cache (readaround.go)

	// storeMu keeps opens and truncates from overtaking a store into the kernel's page cache
	// (readaround.go): stores hold it for reading, they for writing.
	storeMu sync.RWMutex
}

func newFile(r *Root, info backend.ObjectInfo) *File {
	f := &File{root: r}
	f.adopt(info)
	return f
}

// adopt makes info, with the attributes stored on it, the file's committed version. Its metadata
// and headers are kept only in attrs, parsed (and the headers shared): a node lives as long as
// the kernel remembers the name. Must hold mu, or own f.
func (f *File) adopt(info backend.ObjectInfo) {
	f.attrs, f.attrsUnknown = attrsOf(info), false
	info.Meta, info.Headers = nil, backend.Headers{}
	f.info = info
}

func (f *File) setInfo(info backend.ObjectInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dirty != nil {
		return // local content wins until it is committed
	}
	f.adopt(info)
}

// setListedInfo is setInfo with what a listing says (Options.ListingAttrs): attributes already
// read for the same version are kept.
func (f *File) setListedInfo(info backend.ObjectInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dirty != nil || (!f.attrsUnknown && f.info.ETag == info.ETag) {
		return
	}
	f.info, f.attrs, f.attrsUnknown = info, attrs{}, true
}

// hasLocalState reports whether the file has content or attributes S3 does not show yet.
func (f *File) hasLocalState() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.localOnly || f.dirty != nil
}

// isLocalOnly reports whether the file was created here and not yet committed.
func (f *File) isLocalOnly() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.localOnly
}

func (f *File) getInfo() backend.ObjectInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

// key returns the file's current object key.
func (f *File) key() string { return f.root.fileKey(&f.Inode) }

// state returns the current size, attributes and modification time, local content first.
func (f *File) state() (size int64, a attrs, mtime time.Time) {
	f.mu.Lock()
	d, info, a := f.dirty, f.info, f.attrs
	f.mu.Unlock()
	size, mtime = info.Size, info.ModTime
	if d != nil {
		size, a, _ = d.stat()
	}
	if !a.mtime.IsZero() {
		mtime = a.mtime
	}
	return size, a, mtime
}

func (f *File) fillAttr(out *fuse.Attr) {
	size, a, mtime := f.state()
	f.root.fillAttrs(out, a, syscall.S_IFREG, f.root.opts.FileMode)
	f.mu.Lock()
	if f.unlinked {
		out.Nlink = 0
	}
	f.mu.Unlock()
	out.Size = uint64(size)
	out.Blocks = (out.Size + 511) / 512
	out.SetTimes(&mtime, &mtime, &mtime)
}

// dirtyState returns the file's local content, creating it from the committed version if needed.
func (f *File) dirtyState() (*dirtyFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dirty != nil {
		return f.dirty, nil
	}
	if err := f.root.writable(); err != nil {
		return nil, err
	}
	if f.attrsUnknown {
		// Known from a listing only: read the stored attributes, which the commit writes back.
		info, err := f.root.b.Head(f.root.ctx, f.key())
		if err != nil {
			return nil, err
		}
		f.adopt(info)
	}
	info := f.info
	info.Key = f.key()
	d, err := newDirtyFile(f.root, f.key, info, f.attrs)
	if err != nil {
		return nil, err
	}
	d.unlinked = f.unlinked // removed: its content lives on for its handles, never committed
	f.dirty = d
	f.root.track(f, true)
	return d, nil
}

// commit writes local changes to S3, if any, and returns when they are there.
func (f *File) commit(ctx context.Context) error {
	f.mu.Lock()
	d := f.dirty
	f.mu.Unlock()
	if d == nil {
		return nil
	}
	info, changed, err := d.commit(ctx)
	if err != nil || changed {
		f.root.noteCommit(f.key(), err)
	}
	if err != nil || !changed {
		return err
	}
	f.mu.Lock()
	f.adopt(info)
	f.localOnly = false
	unlinked := f.unlinked
	f.mu.Unlock()
	if !unlinked {
		storedInParent(&f.Inode, false, info)
	}
	return nil
}

// releaseHandle drops one open handle; the last one commits what is left (a failure is logged:
// the application was told at flush) and frees the local content.
func (f *File) releaseHandle() {
	f.mu.Lock()
	f.opens--
	d := f.dirty
	last := f.opens == 0
	f.mu.Unlock()
	if !last || d == nil {
		return
	}
	if err := d.failedCommit(); err != nil {
		// The application was told at close or fsync; do not retry behind its back.
		f.root.log.Warn("dropping changes that could not be written to S3", "key", f.key(), "err", err)
	} else {
		// Every close commits, so this only catches changes no close covered.
		ctx, cancel := context.WithTimeout(f.root.ctx, 10*time.Minute)
		if err := f.commit(ctx); err != nil {
			f.root.log.Error("changes not written to S3 and dropped at release", "key", f.key(), "err", err)
		}
		cancel()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opens == 0 && f.dirty == d {
		d.release()
		f.dirty = nil
		f.root.track(f, false)
		if f.localOnly && !f.unlinked {
			// Its first commit failed: S3 does not have the file, so neither does the mount.
			go f.dropUncommitted()
		}
	}
}

// dropUncommitted removes a file created here whose content was dropped before any commit
// succeeded, so that this mount shows what S3 and other mounts show: no such file. It runs
// outside the request that released the file, since it notifies the kernel (which may hold the
// directory's lock in a request in flight).
func (f *File) dropUncommitted() {
	name, parent := f.Parent()
	if parent == nil {
		return
	}
	f.mu.Lock()
	if f.opens > 0 || f.dirty != nil || !f.localOnly || f.unlinked {
		f.mu.Unlock()
		return // opened again meanwhile: its next close commits
	}
	f.unlinked = true // a handle opened through a name the kernel still had commits nothing
	f.mu.Unlock()
	if parent.GetChild(name) != &f.Inode {
		return
	}
	f.root.retire(&f.Inode)
	parent.RmChild(name)
	_ = parent.NotifyEntry(name)
}

var _ = (fusefs.NodeGetattrer)((*File)(nil))

// Getattr implements fusefs.NodeGetattrer.
func (f *File) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	defer f.root.op("getattr")()
	f.fillAttr(&out.Attr)
	out.SetTimeout(f.root.opts.AttrTTL)
	return 0
}

var _ = (fusefs.NodeOpener)((*File)(nil))

// Open implements fusefs.NodeOpener. Reads are pinned to the version (ETag) seen at open.
func (f *File) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	defer f.root.op("open")()
	write := flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0
	if (write || flags&syscall.O_TRUNC != 0) && f.root.opts.ReadOnly {
		return nil, 0, syscall.EROFS
	}
	snapshot := f.getInfo()
	snapshot.Key = f.key()
	h := newFileHandle(f, snapshot)
	h.write = write || flags&syscall.O_TRUNC != 0
	var fuseFlags uint32
	f.storeMu.Lock()
	f.mu.Lock()
	f.opens++
	if h.write {
		f.writers++
	}
	if f.dirty == nil && f.otherVersionOpen(snapshot.ETag, h.rd) {
		// The kernel's page cache is the file's, not the handle's: while another handle reads
		// an older version through it, this one reads past it.
		fuseFlags = fuse.FOPEN_DIRECT_IO
	}
	f.mu.Unlock()
	f.storeMu.Unlock()
	if flags&syscall.O_TRUNC != 0 && write {
		if errno := f.truncate(ctx, 0); errno != 0 {
			f.releaseHandle()
			return nil, 0, errno
		}
	}
	return h, fuseFlags, 0
}

// otherVersionOpen reports whether an open handle other than the one reading with except reads a
// version other than etag. Must hold f.mu.
func (f *File) otherVersionOpen(etag string, except *reader) bool {
	for rd := range f.readers {
		if rd != except && rd.version() != etag {
			return true
		}
	}
	return false
}

func (f *File) truncate(ctx context.Context, size int64) syscall.Errno {
	d, err := f.dirtyState()
	if err == nil {
		err = d.truncate(ctx, size)
	}
	if err != nil {
		return f.root.fail("truncate", f.key(), err)
	}
	return 0
}

var _ = (fusefs.NodeSetattrer)((*File)(nil))

// Setattr implements fusefs.NodeSetattrer: truncate, chmod, chown and utimes. On a file without
// local changes, attribute changes are written to S3 at once (a server-side copy onto itself).
func (f *File) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	defer f.root.op("setattr")()
	if f.root.opts.ReadOnly {
		return syscall.EROFS
	}
	ctx = detached(ctx)
	// Hold the file as an open handle would, until the change is committed: the kernel sends a
	// close's RELEASE asynchronously, so a utimes right after close (rsync) can overtake it, and
	// that release must not free the local state this change goes into before it is committed.
	f.mu.Lock()
	f.opens++
	f.mu.Unlock()
	defer f.releaseHandle()
	size, hasSize := in.GetSize()
	update, mtime := attrUpdate(in)
	if hasSize {
		f.storeMu.Lock()
		errno := f.truncate(ctx, int64(size))
		f.storeMu.Unlock()
		if errno != 0 {
			return errno
		}
	}
	if update != nil {
		d, err := f.dirtyState()
		if err != nil {
			return f.root.fail("setattr", f.key(), err)
		}
		d.setAttrs(update, mtime)
	}
	if fh == nil && (hasSize || update != nil) {
		// truncate/chmod/chown/utimes by path: no close of ours follows, so the change goes to S3
		// before the call returns (with other handles open, like an fsync of theirs). O_TRUNC at
		// open does not come here: it arrives with the open (atomic O_TRUNC).
		if err := f.commit(ctx); err != nil {
			return f.root.fail("setattr", f.key(), err)
		}
	}
	f.fillAttr(&out.Attr)
	out.SetTimeout(f.root.opts.AttrTTL)
	return 0
}

// attrUpdate turns the attribute part of a setattr into an update of attrs; mtime reports whether
// it sets the modification time.
func attrUpdate(in *fuse.SetAttrIn) (update func(*attrs), mtime bool) {
	mode, hasMode := in.GetMode()
	uid, hasUID := in.GetUID()
	gid, hasGID := in.GetGID()
	mt, hasMtime := in.GetMTime()
	if !hasMode && !hasUID && !hasGID && !hasMtime {
		return nil, false
	}
	return func(a *attrs) {
		if hasMode {
			a.mode = a.fileType() | mode&07777
		}
		if hasUID {
			a.uid = &uid
		}
		if hasGID {
			a.gid = &gid
		}
		if hasMtime {
			a.mtime = mt
		}
	}, hasMtime
}

var _ = (fusefs.NodeAllocater)((*File)(nil))

// Allocate implements fusefs.NodeAllocater: mode 0 grows the file (zero-filled);
// FALLOC_FL_KEEP_SIZE only reserves space, which S3 does not need, so it succeeds doing nothing.
func (f *File) Allocate(ctx context.Context, fh fusefs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	switch mode {
	case 0:
	case unix.FALLOC_FL_KEEP_SIZE:
		return 0
	default:
		return syscall.EOPNOTSUPP
	}
	cur, _, _ := f.state()
	if end := int64(off + size); end > cur {
		return f.truncate(ctx, end)
	}
	return 0
}

// fileHandle is an open file.
type fileHandle struct {
	f     *File
	write bool // opened for writing (counted in File.writers)

	mu       sync.Mutex         // protects the following
	snapshot backend.ObjectInfo // the version seen at open, for reads before any write
	rd       *reader            // reads of that version, with read-ahead
	// served: a read returned bytes of the pinned version, so the handle stays on it (ESTALE
	// once it is gone); until then a replaced version is swapped for the current one (repin).
	served bool
}

func newFileHandle(f *File, snapshot backend.ObjectInfo) *fileHandle {
	h := &fileHandle{f: f, snapshot: snapshot, rd: newReader(f.root, snapshot)}
	f.mu.Lock()
	if f.readers == nil {
		f.readers = map[*reader]struct{}{}
	}
	f.readers[h.rd] = struct{}{}
	f.mu.Unlock()
	return h
}

var _ = (fusefs.FileReader)((*fileHandle)(nil))

// Read implements fusefs.FileReader: local content if the file has any, else the version pinned
// at open.
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	defer h.f.root.op("read")()
	h.f.mu.Lock()
	d := h.f.dirty
	h.f.mu.Unlock()
	var n int
	var err error
	rd, key := h.reader()
	if d != nil {
		n, err = d.readAt(ctx, dest, off)
	} else if rr := rd.diskRead(off, len(dest)); rr != nil {
		h.servedBytes()
		rr.after = h.storeAround
		return rr, 0 // spliced from the disk cache
	} else {
		vecs, blocks, err := rd.read(ctx, off, len(dest))
		if errors.Is(err, backend.ErrStale) && h.repin(ctx, rd) {
			rd, key = h.reader()
			vecs, blocks, err = rd.read(ctx, off, len(dest))
		}
		if err != nil {
			return nil, h.f.root.fail("read", key, err)
		}
		h.servedBytes()
		return &blockReply{vecs: vecs, blocks: blocks}, 0
	}
	if err != nil {
		return nil, h.f.root.fail("read", key, err)
	}
	// writev(2): fuse.ReadResultData would try splice(2) first, which fails with a log line for
	// a reply of 1 MiB (a pipe holds no more), the size of every sequential read.
	return fuse.ReadResultVector([][]byte{dest[:n]}), 0
}

// reader returns the handle's reader and the key it reads.
func (h *fileHandle) reader() (*reader, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rd, h.snapshot.Key
}

// servedBytes records that the handle returned bytes of its pinned version.
func (h *fileHandle) servedBytes() {
	h.mu.Lock()
	h.served = true
	h.mu.Unlock()
}

// repin moves a handle that has not returned a byte yet from its version, which S3 no longer has
// (stale was reading it), to the object's current version, so that an open that raced with a
// replacement (the open found the version in a cache) reads the new version rather than failing
// with ESTALE. It reports whether it did; it does not while another handle reads an older version
// through the kernel's page cache, whose pages this one would share.
func (h *fileHandle) repin(ctx context.Context, stale *reader) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.served {
		return false
	}
	if h.rd != stale {
		return true // a concurrent read of this handle repinned it
	}
	info, err := h.f.root.b.Head(ctx, h.snapshot.Key)
	if err != nil || info.ETag == h.snapshot.ETag {
		return false
	}
	f := h.f
	f.mu.Lock()
	if f.dirty != nil || f.unlinked || f.otherVersionOpen(info.ETag, stale) {
		f.mu.Unlock()
		return false
	}
	f.adopt(info)
	info.Meta, info.Headers = nil, backend.Headers{}
	rd := newReader(f.root, info)
	delete(f.readers, stale)
	f.readers[rd] = struct{}{}
	f.mu.Unlock()
	stale.close()
	h.rd, h.snapshot = rd, info
	storedInParent(&f.Inode, false, info)
	if info.Size > stale.info.Size {
		// The kernel reads no further than the old size: have it ask for the size again when it
		// gets there. Not when the new version is smaller: the kernel takes the size from the
		// short read then, unless attributes changed meanwhile, and it would fill up to the old
		// size with zeros if they had.
		_ = f.NotifyContent(-1, 0)
	}
	return true
}

var _ = (fusefs.FileWriter)((*fileHandle)(nil))

// Write implements fusefs.FileWriter.
func (h *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	defer h.f.root.op("write")()
	ctx = detached(ctx) // a write may download the object first; do not leave it half-loaded
	d, err := h.f.dirtyState()
	if err != nil {
		return 0, h.f.root.fail("write", h.f.key(), err)
	}
	n, err := d.write(ctx, data, off)
	if err != nil {
		return uint32(n), h.f.root.fail("write", h.f.key(), err)
	}
	return uint32(n), 0
}

var _ = (fusefs.FileFlusher)((*fileHandle)(nil))

// Flush implements fusefs.FileFlusher; it runs at every close(2), which therefore returns only
// once the data is in S3, or with the error that kept it out.
func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	defer h.f.root.op("flush")()
	if err := h.f.commit(detached(ctx)); err != nil {
		return h.f.root.fail("close", h.f.key(), err)
	}
	return 0
}

var _ = (fusefs.FileFsyncer)((*fileHandle)(nil))

// Fsync implements fusefs.FileFsyncer: like close, it returns once the data is in S3.
func (h *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	defer h.f.root.op("fsync")()
	if err := h.f.commit(detached(ctx)); err != nil {
		return h.f.root.fail("fsync", h.f.key(), err)
	}
	return 0
}

var _ = (fusefs.FileReleaser)((*fileHandle)(nil))

// Release implements fusefs.FileReleaser.
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	defer h.f.root.op("release")()
	rd, _ := h.reader()
	h.f.mu.Lock()
	delete(h.f.readers, rd)
	if h.write {
		h.f.writers--
	}
	h.f.mu.Unlock()
	rd.close()
	h.f.releaseHandle()
	return 0
}

var _ = (fusefs.FileGetattrer)((*fileHandle)(nil))

// Getattr implements fusefs.FileGetattrer (fstat).
func (h *fileHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	defer h.f.root.op("getattr")()
	h.f.fillAttr(&out.Attr)
	out.SetTimeout(h.f.root.opts.AttrTTL)
	return 0
}

var _ = (fusefs.NodeOnForgetter)((*File)(nil))

// OnForget implements fusefs.NodeOnForgetter: the kernel and the tree no longer refer to the node.
func (f *File) OnForget() { f.root.forgotten(&f.Inode) }
