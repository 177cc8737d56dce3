package fs

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/s3mount/s3mount/fs/backend"
)

// Dir is a directory: a key prefix, with an optional marker object ("dir/") that carries its
// attributes.
type Dir struct {
	fusefs.Inode
	noXattrs
	root *Root
	lc   listingCache // the last listing, for the lookups that follow it

	mu    sync.Mutex // protects attrs
	attrs attrs
}

func newDir(r *Root, marker backend.ObjectInfo) *Dir {
	return &Dir{root: r, attrs: attrsOf(marker)}
}

// setAttrs takes the attributes stored on the directory's marker (its info from a HEAD).
func (d *Dir) setAttrs(marker backend.ObjectInfo) {
	if marker.Meta == nil && marker.Headers == (backend.Headers{}) {
		return // a listing or lookup that did not read the marker: keep what we know
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attrs = attrsOf(marker)
}

func (d *Dir) fillAttr(out *fuse.Attr) {
	d.mu.Lock()
	a := d.attrs
	d.mu.Unlock()
	d.root.fillAttrs(out, a, syscall.S_IFDIR, d.root.opts.DirMode)
	out.Size = 4096
	out.Nlink = 2
	mtime := a.mtime
	if mtime.IsZero() {
		mtime = d.root.started
	}
	out.SetTimes(&mtime, &mtime, &mtime)
}

// key returns the directory's key prefix ("" or ending in "/").
func (d *Dir) key() string { return d.root.dirKey(&d.Inode) }

var _ = (fusefs.NodeGetattrer)((*Dir)(nil))

// Getattr implements fusefs.NodeGetattrer.
func (d *Dir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fillAttr(&out.Attr)
	out.SetTimeout(d.root.opts.AttrTTL)
	return 0
}

var _ = (fusefs.NodeLookuper)((*Dir)(nil))

// Lookup implements fusefs.NodeLookuper. A child that exists only here (created and not yet
// committed) or has local changes is answered from memory; anything else from S3.
func (d *Dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	// Not interruptible: Go programs get runtime signals all the time, and the kernel turns them
	// into FUSE interrupts, so an interruptible lookup made their stat, open or rmdir fail with
	// EINTR now and then. A lookup is bounded by the S3 client's timeouts anyway.
	ctx = detached(ctx)
	defer d.root.op("lookup")()
	if ch := d.localChild(name); ch != nil {
		d.root.setEntryTimeouts(out)
		fillEntry(ch, out)
		return ch, 0
	}
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG // before the listing's answer: no such name can exist
	}
	if ce, absent := d.listed(ctx, name); ce != nil || absent {
		if absent {
			d.root.rememberMissing(childKey(d.key(), name)) // for the create that may follow
			// Not cached by the kernel (a timeout of its own keeps go-fuse from applying
			// NegativeTTL): the listing says how long it holds, and a name another client
			// creates shows within the listing's life, not that plus the kernel's.
			out.SetEntryTimeout(time.Nanosecond)
			return nil, syscall.ENOENT
		}
		return d.listedChild(ctx, ce.e, ce, out)
	}
	e, err := d.askS3(ctx, name)
	if err != nil {
		return nil, d.root.fail("lookup", d.Path(nil)+"/"+name, err)
	}
	return d.root.newChild(ctx, &d.Inode, e, out), 0
}

// askS3 looks name up in S3 (see Root.lookupEntry), for a name the directory's listing does not
// answer, and counts the lookup towards listing the directory (see listingCache.refreshIfStale).
func (d *Dir) askS3(ctx context.Context, name string) (dirEntry, error) {
	d.lc.missed(d.root.listingTTL())
	return d.root.lookupEntry(ctx, d.key(), name)
}

// listed returns what the directory's listing says of name (see listingCache.find), listing the
// directory first if its complete listing has just expired or lookups have been asking S3 for its
// names (see refreshIfStale).
func (d *Dir) listed(ctx context.Context, name string) (ce *cachedEntry, absent bool) {
	d.lc.refreshIfStale(ctx, d.root, d.key())
	return d.lc.find(name, d.root.listingTTL())
}

// listedChild answers a lookup of an entry a listing just showed (ce is its entry in the listing
// cache, or nil): a directory from the listing alone, a file with its HEAD when one was started
// ahead (else the lookup's GET, see Root.statObject), or with the listing's attributes under
// Options.ListingAttrs. An entry this mount stored, or whose node holds the listed version's
// attributes, needs nothing more.
func (d *Dir) listedChild(ctx context.Context, e dirEntry, ce *cachedEntry, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if ce != nil && ce.stored {
		e = ce.e // newer than what a listing in progress showed
	}
	if ce != nil && ce.known && !e.isDir {
		if f := d.fileChild(e.name); f != nil && f.holdsVersion(e.info) {
			d.root.setEntryTimeouts(out)
			fillEntry(&f.Inode, out)
			return &f.Inode, 0
		}
	}
	switch {
	case e.isDir, ce != nil && ce.stored:
	case d.root.opts.ListingAttrs:
		e.listed = true
	default:
		var info backend.ObjectInfo
		var err error
		if ce != nil {
			info, err = d.lc.head(ctx, d.root, ce)
		} else {
			info, err = d.root.statObject(ctx, e.info.Key)
		}
		if err != nil {
			return nil, d.root.fail("lookup", d.Path(nil)+"/"+e.name, err)
		}
		e.info = info
	}
	return d.root.newChild(ctx, &d.Inode, e, out), 0
}

// addListed records an entry of the listing in progress (see listingCache.add), noting whether the
// tree's node for it already holds the attributes stored on the version listed.
func (d *Dir) addListed(e dirEntry) {
	known := false
	if !e.isDir {
		f := d.fileChild(e.name)
		known = f != nil && f.holdsVersion(e.info)
	}
	d.lc.add(e, known)
}

// holdsVersion reports whether the file holds the stored attributes of the version a listing
// shows: it has no local changes, and the same ETag, size and modification time (to the second,
// HEAD's precision) as listed. A copy of the object onto itself with new metadata (how other S3
// clients change attributes) has a new modification time.
func (f *File) holdsVersion(listed backend.ObjectInfo) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirty == nil && !f.localOnly && !f.attrsUnknown && listed.ETag != "" && f.info.ETag == listed.ETag &&
		f.info.Size == listed.Size && !f.info.ModTime.IsZero() &&
		f.info.ModTime.Truncate(time.Second).Equal(listed.ModTime.Truncate(time.Second))
}

// fileChild returns the file the tree holds as child name, or nil.
func (d *Dir) fileChild(name string) *File {
	if ch := d.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*File); ok {
			return f
		}
	}
	return nil
}

// localChild returns the child node name if it has local state that S3 does not show yet.
func (d *Dir) localChild(name string) *fusefs.Inode {
	ch := d.GetChild(name)
	if ch == nil {
		return nil
	}
	if f, ok := ch.Operations().(*File); ok && f.hasLocalState() {
		return ch
	}
	return nil
}

// localOnlyNames returns the sorted names of children that S3 does not have yet.
func (d *Dir) localOnlyNames() []string {
	var names []string
	for name, ch := range d.Children() {
		if f, ok := ch.Operations().(*File); ok && f.isLocalOnly() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

var _ = (fusefs.NodeSetattrer)((*Dir)(nil))

// Setattr implements fusefs.NodeSetattrer: chmod, chown and utimes of a directory are stored on
// its marker object (created if the directory had none).
func (d *Dir) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = detached(ctx)
	if d.root.opts.ReadOnly {
		return syscall.EROFS
	}
	if update, _ := attrUpdate(in); update != nil && !d.IsRoot() {
		d.mu.Lock()
		a := d.attrs
		d.mu.Unlock()
		if a.mode == 0 {
			a.mode = syscall.S_IFDIR | d.root.opts.DirMode
		}
		update(&a)
		info, err := d.root.b.Put(ctx, d.key(), bytes.NewReader(nil), 0, a.putOptions())
		if err != nil {
			return d.root.fail("setattr", d.key(), err)
		}
		d.mu.Lock()
		d.attrs = a
		d.mu.Unlock()
		storedInParent(&d.Inode, true, info)
	}
	d.fillAttr(&out.Attr)
	out.SetTimeout(d.root.opts.AttrTTL)
	return 0
}

var _ = (fusefs.NodeOpendirHandler)((*Dir)(nil))

// OpendirHandle implements fusefs.NodeOpendirHandler: listing happens lazily, page by page, as
// the kernel reads the directory.
func (d *Dir) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	defer d.root.op("opendir")()
	return &dirHandle{dir: d}, 0, 0
}

var _ = (fusefs.NodeStatfser)((*Dir)(nil))

// Statfs implements fusefs.NodeStatfser.
func (d *Dir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	d.root.statfs(out)
	return 0
}

// dirHandle is an open directory. It streams the listing, merged with the children that exist only
// here so far, and answers READDIRPLUS lookups for the entries it just returned.
type dirHandle struct {
	dir *Dir

	// The kernel serialises calls on one directory handle (go-fuse holds a lock per handle).
	l     *lister
	local []string // local-only names not yet merged in, sorted
	next  *dirEntry
	last  dirEntry // the entry Readdirent returned last, for Lookup
	pos   uint64   // entries returned so far
}

// nextEntry returns the next name in order from the listing and the local-only names.
func (h *dirHandle) nextEntry(ctx context.Context) (dirEntry, bool, error) {
	if h.next == nil {
		e, ok, err := h.l.next(ctx)
		if err != nil {
			return dirEntry{}, false, err
		}
		if ok {
			h.next = &e
		}
	}
	switch {
	case len(h.local) > 0 && (h.next == nil || h.local[0] < h.next.name):
		name := h.local[0]
		h.local = h.local[1:]
		return dirEntry{name: name}, true, nil
	case h.next != nil:
		e := *h.next
		h.next = nil
		if len(h.local) > 0 && h.local[0] == e.name {
			h.local = h.local[1:]
		}
		return e, true, nil
	}
	return dirEntry{}, false, nil
}

var _ = (fusefs.FileReaddirenter)((*dirHandle)(nil))

// Readdirent implements fusefs.FileReaddirenter.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	// Listing is not interruptible: go-fuse and the kernel replay interrupted READDIRs from
	// offsets, which is fragile; a page request is bounded by the S3 client's timeouts anyway.
	ctx = detached(ctx)
	r := h.dir.root
	if h.l == nil {
		h.l = newLister(r.b, h.dir.key(), r.opts.ListPageSize)
		h.local = h.dir.localOnlyNames()
		h.dir.lc.reset(r)
		h.l.onEntry = h.dir.addListed // whole pages, so that lookups can HEAD ahead
	}
	e, ok, err := h.nextEntry(ctx)
	if err != nil {
		h.dir.lc.forget()
		return nil, r.fail("readdir", h.dir.Path(nil), err)
	}
	if !ok {
		h.dir.lc.complete()
		return nil, 0
	}

	h.last = e
	h.pos++
	mode := uint32(syscall.S_IFREG)
	if e.isDir {
		mode = syscall.S_IFDIR
	}
	return &fuse.DirEntry{Name: e.name, Mode: mode, Ino: r.ino(childKey(h.l.prefix, e.name), mode), Off: h.pos}, 0
}

var _ = (fusefs.FileLookuper)((*dirHandle)(nil))

// Lookup implements fusefs.FileLookuper for READDIRPLUS: the entry just returned is answered from
// the listing (see listedChild).
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	// Not interruptible, see Readdirent.
	ctx = detached(ctx)
	d := h.dir
	if name != h.last.name || h.last.name == "" || d.localChild(name) != nil {
		return d.Lookup(ctx, name, out)
	}
	// The entry was just listed, however long the listing has taken so far: answer from it (with
	// the file's HEAD, started ahead).
	defer d.root.op("lookup")()
	ce, _ := d.lc.find(name, maxDuration)
	return d.listedChild(ctx, h.last, ce, out)
}

const maxDuration = time.Duration(1<<63 - 1)

var _ = (fusefs.FileSeekdirer)((*dirHandle)(nil))

// Seekdir implements fusefs.FileSeekdirer: it restarts the listing and skips to entry off.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.l, h.next, h.pos = nil, nil, 0
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

var _ = (fusefs.FileFsyncdirer)((*dirHandle)(nil))

// Fsyncdir implements fusefs.FileFsyncdirer. Directory entries are durable as soon as the
// operation that made them returned (mkdir, rename, unlink write to S3 before returning; a new
// file is durable at its close or fsync), so there is nothing left to do.
func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return 0 }

var _ = (fusefs.NodeOnForgetter)((*Dir)(nil))

// OnForget implements fusefs.NodeOnForgetter: the kernel and the tree no longer refer to the node.
func (d *Dir) OnForget() { d.root.forgotten(&d.Inode) }
