package fs

import "math/bits"

// Read-around: a read served from the disk cache also puts the rest of its aligned region into
// the kernel's page cache (FUSE_NOTIFY_STORE), after the reply, so that the reads that follow in
// that region are answered by the kernel without a FUSE request. A FUSE request costs two thread
// wake-ups and a round trip through the daemon; copying the region costs less than the requests it
// saves as soon as a reader comes back near where it read, as random readers of columnar files and
// databases do. The region is at most aroundFactor times the read, so a reader of small blocks
// (4 KiB pages of a database) brings in 32 KiB, not 2 MiB. At most maxStores stores are in flight;
// a read that finds them all busy stores nothing (the reads outpace the copies, and a queue would
// only hold buffers and land late).
//
// The kernel's page cache of a file is shared by its handles, so a region is stored only while it
// is the file's current content: no handle is open for writing (File.writers), the file has no
// local changes, and the reader's version is the file's and every open handle's (see File.Open). A
// store in flight keeps opens and truncates waiting, and none starts while one of them is under
// way (File.storeMu): the kernel drops a file's page cache at every open (s3mount does not ask it
// to keep it), so a store overtaken by an open could leave an older version's bytes in the cache
// that open just cleared.
const (
	aroundMax    = 2 << 20 // the largest region
	aroundFactor = 8       // a region is at most this many times the read that starts it
	maxStores    = 2       // stores in flight, per mount
)

// aroundRegion returns the aligned region [lo, hi) to store around a read of n bytes at off in an
// object of size bytes; hi-lo > n when there is anything to store.
func aroundRegion(off int64, n int, size int64) (lo, hi int64) {
	if n <= 0 || off >= size {
		return 0, 0
	}
	r := int64(aroundMax)
	if want := uint64(aroundFactor * n); want < aroundMax {
		r = int64(1) << bits.Len64(want-1) // the power of two at or above want
	}
	lo = off &^ (r - 1)
	return lo, min(lo+r, size)
}

// storeAround stores the region around a read of n bytes at off, which the disk cache object o
// served, into the kernel's page cache (see the top of this file). It runs after the read's reply
// was sent, and holds a reference to o that it drops.
func (h *fileHandle) storeAround(o *diskObject, off int64, n int) {
	dc := h.f.root.cache.disk
	defer dc.releaseObj(o)
	lo, hi := aroundRegion(off, n, o.size)
	end := off + int64(n)
	if hi-lo <= int64(n) || (off <= lo && end >= hi) {
		return
	}
	f := h.f
	select {
	case f.root.stores <- struct{}{}:
		defer func() { <-f.root.stores }()
	default:
		return
	}
	if !f.storeMu.TryRLock() {
		return // an open or a truncate of the file is under way
	}
	defer f.storeMu.RUnlock()
	rd, _ := h.reader()
	etag := rd.version()
	f.mu.Lock()
	ok := f.writers == 0 && f.dirty == nil && f.info.ETag == etag && !f.otherVersionOpen(etag, nil) && !f.storing[lo]
	if ok {
		if f.storing == nil {
			f.storing = map[int64]bool{}
		}
		f.storing[lo] = true
	}
	f.mu.Unlock()
	if !ok {
		return
	}
	defer func() {
		f.mu.Lock()
		delete(f.storing, lo)
		f.mu.Unlock()
	}()
	if dc.acquire(o.id, lo/blockSize, (hi-1)/blockSize) == nil {
		return // not all of the region is here yet
	}
	defer dc.releaseObj(o)
	pool := poolOf(aroundMax)
	buf := pool.get()
	defer pool.put(buf)
	buf = buf[:hi-lo]
	if _, err := o.f.ReadAt(buf, lo); err != nil {
		return
	}
	// The read's own pages are in the kernel's cache already.
	stored := 0
	if off > lo {
		if f.WriteCache(lo, buf[:off-lo]) == 0 {
			stored += int(off - lo)
		}
	}
	if end < hi {
		if f.WriteCache(end, buf[end-lo:]) == 0 {
			stored += int(hi - end)
		}
	}
	f.root.opts.Metrics.Add("s3mount_read_around_bytes_total",
		"bytes put into the kernel's page cache around reads served from the disk cache", float64(stored))
}
