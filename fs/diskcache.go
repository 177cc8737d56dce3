package fs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/internal/safepath"
)

// diskCache keeps whole object versions that are read at random on local disk, the way s3fs
// serves every file from a local copy, but only for the readers that need it: when a handle
// turns random (see reader), the whole object is fetched in the background, in parallel parts,
// into a sparse file here, and every read of a block already there is a local read. A read of a
// block the copy has not brought yet waits for it if one of the copy's GETs is about to bring it
// (awaitAhead); a block farther on the read fetches itself, so that random reads during the copy
// are not held up until it reaches them (the copy fetches those blocks again, unless they lead
// its part). Sequential readers never write here (their blocks are fetched ahead into reused
// buffers).
//
// Files are named by a hash of key and ETag, so, like the memory cache, content never needs
// invalidating. Space is reserved for a whole object before its fetch starts; the least recently
// used objects that no read is using are removed to make room, and an object that does not fit is
// not cached. Each mount uses its own subdirectory, locked while mounted and removed at unmount;
// one left behind by a crashed mount is removed by the next mount using the same directory.
type diskCache struct {
	dir    string        // this mount's subdirectory (for messages and tests)
	parent *safepath.Dir // the cache directory, checked (see internal/safepath)
	d      *safepath.Dir // dir: every file is made through it, never by path
	lock   *os.File      // flock held on dir/lock while mounted
	limit  int64
	log    *slog.Logger

	mu      sync.Mutex // protects the following
	used    int64      // bytes reserved by objects
	objects map[string]*diskObject
}

// diskObject is one object version in the disk cache.
type diskObject struct {
	id      string
	f       *os.File
	size    int64
	present []bool // by block index
	have    int    // blocks present
	refs    int    // reads and writes in progress; an object in use is not evicted
	used    time.Time
	// filling: the whole object is being copied here (fetchWhole) by the GETs in streams; reads
	// of blocks one of them is about to bring wait for it (waiters) instead of sending GETs of
	// their own beside it.
	filling bool
	streams map[*fillStream]bool
	waiters map[int64][]*block
}

// fillStream is one GET of a copy in progress: it brings the blocks [next, last], in order.
type fillStream struct {
	next atomic.Int64
	last int64
}

// awaitAhead is how far ahead of a copy's GET (in blocks) a read waits for it rather than fetching
// its block itself: about a GET's latency at the rate of one of the copy's parallel GETs.
const awaitAhead = 4

const diskCachePrefix = "s3mount-cache-"

// openDiskCache creates this mount's subdirectory of parent (removing those of crashed mounts).
// A limit of 0 turns the disk cache off (nil, nil).
func openDiskCache(parent string, limit int64, log *slog.Logger) (*diskCache, error) {
	if parent == "" || limit <= 0 {
		return nil, nil
	}
	pd, err := safepath.MkdirAll(parent)
	if err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	removeStaleCaches(pd, log)
	d, name, err := pd.MkdirTemp(diskCachePrefix)
	if err != nil {
		pd.Close()
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	lock, err := d.Create("lock", os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		d.Close()
		pd.RemoveAll(name)
		pd.Close()
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	dir := filepath.Join(parent, name)
	var st unix.Statfs_t
	if d.Statfs(&st) == nil {
		// Never take more than half of the space that is free now.
		if free := int64(st.Bavail) * st.Bsize / 2; free < limit {
			log.Info("disk cache smaller than configured: half the free space", "dir", parent, "bytes", free)
			limit = free
		}
	}
	return &diskCache{dir: dir, parent: pd, d: d, lock: lock, limit: limit, log: log, objects: map[string]*diskObject{}}, nil
}

// removeStaleCaches removes the subdirectories of parent whose mount is gone (not locked).
func removeStaleCaches(parent *safepath.Dir, log *slog.Logger) {
	names, _ := parent.ReadDirNames()
	for _, name := range names {
		if !strings.HasPrefix(name, diskCachePrefix) {
			continue
		}
		d, err := parent.OpenSub(name)
		if err != nil {
			continue
		}
		f, err := d.OpenFile("lock", os.O_RDONLY, 0)
		if err == nil {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			f.Close()
		}
		d.Close()
		if err == nil || errors.Is(err, os.ErrNotExist) {
			log.Info("removing the disk cache of an earlier mount", "dir", filepath.Join(parent.Path(), name))
			parent.RemoveAll(name)
		}
	}
}

// close removes the cache.
func (dc *diskCache) close() {
	if dc == nil {
		return
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	for id, o := range dc.objects {
		o.f.Close()
		delete(dc.objects, id)
	}
	dc.parent.RemoveAll(filepath.Base(dc.dir))
	dc.lock.Close()
	dc.d.Close()
	dc.parent.Close()
}

// diskID names an object version in the disk cache.
func diskID(info backend.ObjectInfo) string {
	sum := sha256.Sum256([]byte(info.Key + "\x00" + info.ETag + "\x00" + strconv.FormatInt(info.Size, 10)))
	return hex.EncodeToString(sum[:16])
}

// admit makes room for info's whole content and starts caching it. It returns false when the
// object is cached already, or does not fit.
func (dc *diskCache) admit(id string, info backend.ObjectInfo) bool {
	if dc == nil || info.Size <= 0 {
		return false
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if _, ok := dc.objects[id]; ok || info.Size > dc.limit {
		return false
	}
	for dc.used+info.Size > dc.limit {
		if !dc.evictOne() {
			return false
		}
	}
	f, err := dc.d.OpenFile(id, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		dc.log.Warn("disk cache", "err", err)
		return false
	}
	n := (info.Size + blockSize - 1) / blockSize
	dc.objects[id] = &diskObject{id: id, f: f, size: info.Size, present: make([]bool, n), used: time.Now(),
		filling: true, streams: map[*fillStream]bool{}, waiters: map[int64][]*block{}}
	dc.used += info.Size
	return true
}

// evictOne removes the least recently used object not in use. Must hold mu.
func (dc *diskCache) evictOne() bool {
	var victim *diskObject
	for _, o := range dc.objects {
		if o.refs == 0 && !o.filling && (victim == nil || o.used.Before(victim.used)) {
			victim = o
		}
	}
	if victim == nil {
		return false
	}
	dc.remove(victim)
	return true
}

// remove drops o. Must hold mu, and o must not be in use.
func (dc *diskCache) remove(o *diskObject) {
	o.f.Close()
	dc.d.Remove(o.id)
	delete(dc.objects, o.id)
	dc.used -= o.size
}

// acquire returns object id, in use, if it is cached here and has the blocks [first, last]
// (none are needed when last < first).
func (dc *diskCache) acquire(id string, first, last int64) *diskObject {
	if dc == nil {
		return nil
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o, ok := dc.objects[id]
	if !ok || last >= int64(len(o.present)) {
		return nil
	}
	for idx := first; idx <= last; idx++ {
		if !o.present[idx] {
			return nil
		}
	}
	o.refs++
	o.used = time.Now()
	return o
}

func (dc *diskCache) releaseObj(o *diskObject) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o.refs--
}

// get returns block idx of object id if it is here.
func (dc *diskCache) get(id string, idx int64) ([]byte, bool) {
	o := dc.acquire(id, idx, idx)
	if o == nil {
		return nil, false
	}
	defer dc.releaseObj(o)
	buf := make([]byte, min(blockSize, o.size-idx*blockSize))
	if _, err := o.f.ReadAt(buf, idx*blockSize); err != nil {
		dc.log.Warn("disk cache read", "err", err)
		return nil, false
	}
	return buf, true
}

// await registers b to be completed when a GET of the copy of object id in progress brings block
// idx, if one is at most awaitAhead blocks before it; it reports false if none is, or the block is
// here already.
func (dc *diskCache) await(id string, idx int64, b *block) bool {
	if dc == nil {
		return false
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o, ok := dc.objects[id]
	if !ok || !o.filling || idx >= int64(len(o.present)) || o.present[idx] {
		return false
	}
	for s := range o.streams {
		// A stream's next moves past a block only after put marked it present (under mu, as
		// here), so a block not present at or after next is still to come from that stream.
		if next := s.next.Load(); next <= idx && idx <= s.last && idx < next+awaitAhead {
			o.waiters[idx] = append(o.waiters[idx], b)
			return true
		}
	}
	return false
}

// startStream registers a GET of the copy of object id that brings the blocks [first, last]; nil
// if the object is not being copied.
func (dc *diskCache) startStream(id string, first, last int64) *fillStream {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o, ok := dc.objects[id]
	if !ok || !o.filling {
		return nil
	}
	s := &fillStream{last: last}
	s.next.Store(first)
	o.streams[s] = true
	return s
}

// endStream unregisters s. The blocks it did not bring that reads wait for are fetched when the
// whole copy ends (endFill).
func (dc *diskCache) endStream(id string, s *fillStream) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if o, ok := dc.objects[id]; ok && o.streams != nil {
		delete(o.streams, s)
	}
}

// endFill marks the copy of object id finished, and returns the blocks still waiting (the copy
// stopped early): their reads must fetch them themselves.
func (dc *diskCache) endFill(id string) map[int64][]*block {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o, ok := dc.objects[id]
	if !ok {
		return nil
	}
	w := o.waiters
	o.filling, o.waiters, o.streams = false, nil, nil
	return w
}

// has reports whether block idx of object id is here.
func (dc *diskCache) has(id string, idx int64) bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o, ok := dc.objects[id]
	return ok && idx < int64(len(o.present)) && o.present[idx]
}

// put stores block idx of object id if it is being cached here; it reports whether it did, and
// returns the reads waiting for the block (see await), which the caller completes.
func (dc *diskCache) put(id string, idx int64, data []byte) (bool, []*block) {
	o := dc.acquire(id, 0, -1)
	if o == nil {
		return false, nil
	}
	dc.mu.Lock()
	there := o.present[idx]
	dc.mu.Unlock()
	if there {
		dc.releaseObj(o)
		return true, nil
	}
	_, err := o.f.WriteAt(data, idx*blockSize)
	dc.mu.Lock()
	defer dc.mu.Unlock()
	o.refs--
	if err != nil {
		// A full disk or an I/O error: stop caching this object.
		dc.log.Warn("disk cache write", "err", err)
		if o.refs == 0 && !o.filling && dc.objects[o.id] == o {
			dc.remove(o)
		}
		return false, nil
	}
	if !o.present[idx] {
		o.present[idx] = true
		o.have++
	}
	w := o.waiters[idx]
	delete(o.waiters, idx)
	return true, w
}

// readResult serves a read from a cached object without copying: go-fuse splices the bytes from
// the file into the kernel's reply. The object stays in use (not evicted) until the reply is sent.
type diskReadResult struct {
	dc  *diskCache
	o   *diskObject
	off int64
	sz  int
	// after, if set, runs once the reply was sent, in its own goroutine, with the reply's
	// reference to o, which it must release.
	after func(o *diskObject, off int64, n int)
}

// read returns a reply of n bytes at off of object id, if the cache holds all of them.
func (dc *diskCache) read(id string, off int64, n int) *diskReadResult {
	if dc == nil || n <= 0 {
		return nil
	}
	o := dc.acquire(id, off/blockSize, (off+int64(n)-1)/blockSize)
	if o == nil {
		return nil
	}
	return &diskReadResult{dc: dc, o: o, off: off, sz: n}
}

// Seekable lets go-fuse splice from the file.
func (r *diskReadResult) Seekable() (fd uintptr, off int64, sz int) {
	return r.o.f.Fd(), r.off, r.sz
}

// Bytes implements fuse.ReadResult, when go-fuse cannot splice.
func (r *diskReadResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	n, err := r.o.f.ReadAt(buf[:min(len(buf), r.sz)], r.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fuse.EIO
	}
	return buf[:n], fuse.OK
}

// Size implements fuse.ReadResult.
func (r *diskReadResult) Size() int { return r.sz }

// Done implements fuse.ReadResult: the reply was sent.
func (r *diskReadResult) Done() {
	if r.after != nil {
		go r.after(r.o, r.off, r.sz)
		return
	}
	r.dc.releaseObj(r.o)
}
