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
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/s3mount/s3mount/fs/backend"
)

// Root is the mount-wide state.
type Root struct {
	// read only after NewRoot
	b       backend.Backend
	opts    Options
	log     *slog.Logger
	dir     *Dir // the root directory node
	staging *staging
	journal *journal
	// started is when the mount started: the time of directories that store none.
	started time.Time
	// ctx is cancelled when the filesystem shuts down; background uploads use it.
	ctx    context.Context
	cancel context.CancelFunc
	// uploads bounds the concurrent part uploads and PUTs; partBufs bounds the part buffers
	// (UploadConcurrency), which bufs recycles.
	uploads  *uploadSlots
	partBufs chan struct{}
	bufs     *bufPool // shared by the mounts with the same part size (poolOf)
	// cache holds object content; readahead bounds what readers fetch ahead.
	cache     *blockCache
	readahead *byteBudget
	// heads bounds the HEAD requests started ahead of lookups that follow a listing (headsInFlight).
	heads chan struct{}
	// stores bounds the stores into the kernel's page cache in flight (readaround.go).
	stores chan struct{}
	// listings are the directories' listings that hold entries, freed once of no more use.
	listings listingSet
	// rootListed: ListRoot ran (Mount need not list the root again).
	rootListed atomic.Bool
	// events are the recent errors and the last commit, for Status.
	events eventLog

	mu      sync.Mutex           // protects the following
	missing map[string]time.Time // keys recently found missing (see rememberMissing)
	// retired are the inode numbers of live nodes that no longer sit at the key their number was
	// made from (renamed, removed, replaced): a new node at that key must get another number.
	retired map[uint64]struct{}
	active  map[*File]struct{} // files with local content (see File.dirtyState)
	closing bool               // shutting down: no new writers
}

// NewRoot builds the filesystem for b. It makes no request.
func NewRoot(b backend.Backend, opts Options) (*Root, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.PartSize < backend.MinPartSize {
		return nil, fmt.Errorf("part size %d is below S3's minimum of 5 MiB", opts.PartSize)
	}
	st, err := newStaging(filepath.Join(opts.StagingDir, "files"), opts.StagingSize, opts.StagingWait)
	if err != nil {
		return nil, err
	}
	j, err := openJournal(filepath.Join(opts.StagingDir, "journal"), log)
	if err != nil {
		return nil, err
	}
	r := &Root{b: b, opts: opts, log: log, staging: st, journal: j, missing: map[string]time.Time{}, retired: map[uint64]struct{}{}, active: map[*File]struct{}{},
		uploads:  newUploadSlots(opts.UploadConcurrency, opts.MaxUploadConcurrency),
		partBufs: make(chan struct{}, max(1, opts.UploadConcurrency))}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.started = time.Now()
	r.dir = &Dir{root: r}
	if r.cache, err = newBlockCache(b, opts.Metrics, opts.CacheSize, opts.ReadConcurrency); err != nil {
		return nil, err
	}
	cacheDir := opts.DiskCacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(opts.StagingDir, "cache")
	}
	if r.cache.disk, err = openDiskCache(cacheDir, opts.DiskCacheSize, log); err != nil {
		return nil, err
	}
	r.readahead = &byteBudget{limit: opts.ReadaheadBudget}
	r.bufs = poolOf(int(opts.PartSize))
	r.heads = make(chan struct{}, headsInFlight)
	r.stores = make(chan struct{}, maxStores)
	go r.sweepListings()
	return r, nil
}

// sweepListings frees the listings of no more use (see listingSet) every listing TTL (at least
// every second), until the filesystem shuts down.
func (r *Root) sweepListings() {
	ttl := r.listingTTL()
	t := time.NewTicker(max(ttl, time.Second))
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.listings.sweep(ttl)
		}
	}
}

// RecoverUploads aborts the multipart uploads that earlier mounts with the same staging
// directory started and never finished (they crashed). It returns how many it aborted.
func (r *Root) RecoverUploads(ctx context.Context) (int, error) {
	return recoverJournals(ctx, filepath.Join(r.opts.StagingDir, "journal"), r.b, r.log)
}

// Close releases what the filesystem holds after it was unmounted.
func (r *Root) Close() {
	r.cancel()
	r.journal.close()
	r.staging.close()
	r.cache.close()
	r.cache.disk.close()
}

// track records whether f has local content, for Shutdown.
func (r *Root) track(f *File, active bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if active {
		r.active[f] = struct{}{}
	} else {
		delete(r.active, f)
	}
}

// writable fails with EROFS while the filesystem shuts down or is mounted read-only.
func (r *Root) writable() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing || r.opts.ReadOnly {
		return syscall.EROFS
	}
	return nil
}

// Shutdown prepares an unmount without losing data: it refuses new writers, waits up to grace
// for files being written to be closed (each close commits), then commits what has no open
// handle and gives up on the rest. It returns the paths whose changes are not in S3.
func (r *Root) Shutdown(ctx context.Context, grace time.Duration) []string {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	deadline := time.Now().Add(grace)
	for {
		r.mu.Lock()
		n := len(r.active)
		r.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.mu.Lock()
	var files []*File
	for f := range r.active {
		files = append(files, f)
	}
	r.mu.Unlock()
	var lost []string
	for _, f := range files {
		f.mu.Lock()
		open, d := f.opens > 0, f.dirty
		f.mu.Unlock()
		if d == nil {
			continue
		}
		if !open && d.failedCommit() == nil {
			if err := f.commit(ctx); err == nil {
				continue
			}
		}
		_, _, dirty := d.stat()
		if dirty {
			lost = append(lost, f.key())
		}
		d.release()
	}
	sort.Strings(lost)
	return lost
}

// detached returns ctx without its cancellation. Operations that change S3 (commits, mkdir,
// rename, unlink...) must not stop half-way because the kernel interrupted the request (a signal
// to the calling thread, even Go's own preemption signal): close(2) is never retried, and a
// half-done rename is worse than a slow one. The S3 client's timeouts and retries bound them.
func detached(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// acquireUpload waits for a free upload slot (see uploadSlots).
func (r *Root) acquireUpload(ctx context.Context) error { return r.uploads.acquire(ctx) }

func (r *Root) releaseUpload() { r.uploads.release() }

// partBuffer returns a buffer of n bytes (at most PartSize), or nil if UploadConcurrency of them
// are in use: the caller then sends from the staging file, so that the memory of uploads stays
// within UploadConcurrency × PartSize however many are in flight. Buffers of the base part size
// are recycled.
func (r *Root) partBuffer(n int64) []byte {
	select {
	case r.partBufs <- struct{}{}:
	default:
		return nil
	}
	if n == r.opts.PartSize {
		return r.bufs.get()[:n]
	}
	return make([]byte, n)
}

// freePartBuffer gives back a buffer from partBuffer (nil is allowed).
func (r *Root) freePartBuffer(b []byte) {
	if b == nil {
		return
	}
	if int64(cap(b)) == r.opts.PartSize && int64(len(b)) == r.opts.PartSize {
		r.bufs.put(b)
	}
	<-r.partBufs
}

// ino returns the stable inode number of the node of type typ (S_IFREG, S_IFDIR, S_IFLNK) at
// key: a 64-bit hash of both, so that concurrent lookups of one name agree (go-fuse deduplicates
// on it), a key that changes type gets a new number, and no table grows with the number of keys
// seen (a million entries cost nothing here). Numbers 0 and 1 (the root) are never produced.
func (r *Root) ino(key string, typ uint32) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte{byte(typ >> 12)})
	_, _ = h.Write([]byte(key))
	if n := h.Sum64(); n > 1 {
		return n
	}
	return 2
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

// fillAttrs fills the attributes every node shares: type, permissions and owner, from the stored
// attributes where there are any, else the mount's defaults.
func (r *Root) fillAttrs(out *fuse.Attr, a attrs, fileType, defaultPerm uint32) {
	perm := defaultPerm
	if a.mode != 0 {
		perm = a.mode & 07777
	}
	if !r.opts.Suid {
		perm &^= syscall.S_ISUID | syscall.S_ISGID
	}
	out.Mode = fileType | perm
	out.Uid, out.Gid = r.opts.UID, r.opts.GID
	if a.uid != nil {
		out.Uid = *a.uid
	}
	if a.gid != nil {
		out.Gid = *a.gid
	}
	out.Nlink = 1
	out.Blksize = 1 << 20
}

// newAttrs returns the attributes of a node created now by the caller in ctx.
func newAttrs(ctx context.Context, mode uint32) attrs {
	a := attrs{mode: mode, mtime: time.Now()}
	if c, ok := fuse.FromContext(ctx); ok {
		uid, gid := c.Uid, c.Gid
		a.uid, a.gid = &uid, &gid
	}
	return a
}

// listingTTL is how long lookups trust a directory's last listing for which names exist:
// five times the metadata TTL (5 s by default; 0 when caching is off), long enough for the stat of
// every name that follows a listing of a large directory. Attributes still come from a HEAD.
func (r *Root) listingTTL() time.Duration { return 5 * r.opts.EntryTTL }

// setEntryTimeouts applies the kernel cache TTLs to a lookup answer.
func (r *Root) setEntryTimeouts(out *fuse.EntryOut) {
	out.SetEntryTimeout(r.opts.EntryTTL)
	out.SetAttrTimeout(r.opts.AttrTTL)
}

// newChild returns the node for a directory entry, filling out. A node the tree already has for
// that name and type is updated in place: go-fuse keeps the first node registered for an inode
// number and would discard a new one together with its fresh info.
func (r *Root) newChild(ctx context.Context, parent *fusefs.Inode, e dirEntry, out *fuse.EntryOut) *fusefs.Inode {
	key := childKey(r.dirKey(parent), e.name)
	typ := syscall.S_IFDIR
	if !e.isDir {
		typ = int(parseMeta(e.info.Meta).fileType())
	}
	r.setEntryTimeouts(out)
	// A node of the same type already under this name keeps its identity (and inode number, which
	// may be the hash of the name it had before a rename).
	if ch := parent.GetChild(e.name); ch != nil && ch.StableAttr().Mode == uint32(typ) {
		switch n := ch.Operations().(type) {
		case *File:
			if e.listed {
				n.setListedInfo(e.info)
			} else {
				n.setInfo(e.info)
			}
		case *Dir:
			n.setAttrs(e.info)
		case *Symlink:
			n.setInfo(e.info)
		}
		fillEntry(ch, out)
		return ch
	}
	var node fusefs.InodeEmbedder
	switch typ {
	case syscall.S_IFDIR:
		node = newDir(r, e.info)
	case syscall.S_IFLNK:
		node = &Symlink{root: r, info: e.info}
	default:
		f := newFile(r, e.info)
		f.attrsUnknown = e.listed
		node, typ = f, syscall.S_IFREG
	}
	ch := r.newInode(ctx, parent, node, uint32(typ), key)
	fillEntry(ch, out)
	return ch
}

// newInode makes node a new inode under parent. Its number is the hash of type and key (see
// ino), unless that number is retired: a node renamed away from key keeps the number of its old
// name, and a removed file still open keeps its own, and go-fuse would answer the number with
// that inode, making two files one. (A number in use by a node at key itself is go-fuse's
// deduplication of lookups, and returns that node.)
func (r *Root) newInode(ctx context.Context, parent *fusefs.Inode, node fusefs.InodeEmbedder, typ uint32, key string) *fusefs.Inode {
	ino := r.ino(key, typ)
	for i := 1; r.isRetired(ino); i++ {
		ino = r.ino(key+"\x00"+strconv.Itoa(i), typ)
	}
	return parent.NewInode(ctx, node, fusefs.StableAttr{Mode: typ, Ino: ino})
}

// retire records that node (and, for a directory, every node below it) no longer sits at the
// key its inode number was made from; nil is ignored.
func (r *Root) retire(node *fusefs.Inode) {
	if node == nil {
		return
	}
	r.mu.Lock()
	r.retired[node.StableAttr().Ino] = struct{}{}
	r.mu.Unlock()
	for _, ch := range node.Children() {
		r.retire(ch)
	}
}

func (r *Root) isRetired(ino uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.retired[ino]
	return ok
}

// forgotten is called when go-fuse drops a node (OnForget): its number is free again.
func (r *Root) forgotten(n *fusefs.Inode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.retired, n.StableAttr().Ino)
}

// fillEntry fills the attributes of a lookup answer from the node.
func fillEntry(n *fusefs.Inode, out *fuse.EntryOut) {
	switch n := n.Operations().(type) {
	case *File:
		n.fillAttr(&out.Attr)
	case *Dir:
		n.fillAttr(&out.Attr)
	case *Symlink:
		n.fillAttr(&out.Attr)
	}
}

// Statfs reports a large, mostly free filesystem: S3 has no capacity limit to report.
func (r *Root) statfs(out *fuse.StatfsOut) {
	const blocks = 1 << 40 // 4 PiB of 4 KiB blocks
	out.Bsize, out.Frsize = 4096, 4096
	out.Blocks, out.Bfree, out.Bavail = blocks, blocks, blocks
	out.Files, out.Ffree = 1<<40, 1<<40
	out.NameLen = maxNameLen
}
