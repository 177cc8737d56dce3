package fs

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/s3mount/s3mount/fs/backend"
)

// Read-ahead. Each open handle watches its own reads: while they are sequential (each lands within
// 2*initialWindow of the furthest point read so far: the kernel's asynchronous reads arrive
// slightly out of order, and small skips forward and re-reads stay sequential), the read-ahead
// window doubles from initialWindow up to freeWindow, and the blocks ahead are fetched in
// parallel, in GETs of up to Options.ReadPartSize. Beyond freeWindow the window doubles only when
// a read finds a block fetched ahead still in flight (the reader starved: it consumes faster than
// the GETs in flight deliver, as on a network whose connections are each slower than the reader),
// up to Options.MaxReadahead and the reader's share of the budget. The GETs in flight are the
// window over ReadPartSize, so a window that grows is throughput that grows (25 MiB/s per
// connection and 20 ms to the first byte need some 100 MiB ahead for a reader of 300 MiB/s); a
// reader slower than its window never starves and never holds more than freeWindow. After randomMisses reads in a row that are
// not sequential, the handle turns random: the window is dropped, only the blocks a read needs
// are fetched, and the whole object is copied to the disk cache in the background if it fits
// there. A random handle turns sequential again after a forward run in which it read
// initialWindow bytes, at least three quarters of the run's span (not after one read the kernel
// split into adjacent requests, nor after strided reads such as a columnar file's chunks). Blocks
// fetched ahead are held by the handle until the reads are 2*initialWindow past them (a request
// the kernel sent earlier may arrive late), within a mount-wide budget of
// Options.ReadaheadBudget bytes (beyond it, no read-ahead); they stay out of the shared cache,
// and their buffers are reused once the reads that used them are sent (see block).
const initialWindow = 1 << 20

// freeWindow is how far a sequential reader's window grows without starving. A variable only so
// that tests reach the growth beyond it with little data.
var freeWindow int64 = 64 << 20

// randomMisses is how many non-sequential reads in a row turn a handle random.
const randomMisses = 3

// reader serves the reads of one handle of one object version.
type reader struct {
	r    *Root
	info backend.ObjectInfo
	id   string // in the disk cache

	mu       sync.Mutex // protects the following
	lastEnd  int64      // the furthest point read so far
	window   int64      // current read-ahead in bytes; 0 in random mode
	misses   int        // non-sequential reads in a row
	random   bool       // turned random: no read-ahead until a sequential run of initialWindow
	runStart int64      // where the current sequential run started, in random mode
	runBytes int64      // bytes read in the current run, in random mode
	ahead    map[int64]*block
	// recent are the blocks of the last read and prev those of the one before: the kernel's next
	// requests (the rest of a read it split, which may arrive after its read-ahead request) often
	// need them again, before the shared cache has admitted them.
	recent, prev map[int64]*block
	next         int64 // first block not yet requested ahead
	starved      bool  // a read since the window last grew found a block fetched ahead still in flight
	budget       int64 // bytes of the budget this reader holds
	sharing      bool  // counted among the readers sharing the budget (see byteBudget)
}

func newReader(r *Root, info backend.ObjectInfo) *reader {
	return &reader{r: r, info: info, id: r.cache.diskID(info), lastEnd: 0, ahead: map[int64]*block{}}
}

// diskRead returns a reply for a read of n bytes at off that the disk cache holds entirely (see
// diskReadResult), or nil.
func (rd *reader) diskRead(off int64, n int) *diskReadResult {
	if off >= rd.info.Size {
		return nil
	}
	rd.mu.Lock()
	id := rd.id
	rd.mu.Unlock()
	return rd.r.cache.disk.read(id, off, int(min(int64(n), rd.info.Size-off)))
}

// version is the ETag of the version the reader reads.
func (rd *reader) version() string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.info.ETag
}

// moved points the reader at the copy a rename made of its object version (same content; the
// copy's key and ETag).
func (rd *reader) moved(key, etag string) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.info.Key, rd.info.ETag = key, etag
	rd.id = rd.r.cache.diskID(rd.info)
}

// read returns the n bytes at off (fewer only at the end of the object) as slices of the blocks
// that hold them, which do not change while referenced: the reply is written from them without
// a copy. The caller releases the returned blocks once the reply is sent (see blockReply).
func (rd *reader) read(ctx context.Context, off int64, n int) ([][]byte, []*block, error) {
	size := rd.info.Size
	if off >= size || n == 0 {
		return nil, nil, nil
	}
	end := min(off+int64(n), size)
	first, last := off/blockSize, (end-1)/blockSize
	blocks := rd.plan(off, end, first, last)
	out := make([][]byte, 0, len(blocks))
	for i, b := range blocks {
		select {
		case <-b.done:
		case <-ctx.Done():
			releaseAll(blocks)
			return nil, nil, ctx.Err()
		}
		if b.err != nil {
			releaseAll(blocks)
			return nil, nil, b.err
		}
		idx := first + int64(i)
		lo := max(off, idx*blockSize) - idx*blockSize
		hi := min(end, (idx+1)*blockSize) - idx*blockSize
		out = append(out, b.data[lo:hi])
	}
	return out, blocks, nil
}

// plan updates the access pattern, starts read-ahead, and returns the blocks [first, last], with
// a reference to each for the caller.
func (rd *reader) plan(off, end, first, last int64) []*block {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	// The kernel's own read-ahead (--kernel-readahead, 1 MiB by default, in requests it sends in
	// parallel) reorders reads: within about 2 MiB by default, and by up to four times a larger
	// read-ahead (16 MiB with 4 MiB, measured). A read further away is a seek, however large the
	// window has grown.
	slack := int64(2 * initialWindow)
	if ra := rd.r.opts.KernelReadahead; ra > initialWindow {
		slack = 4 * ra
	}
	sequential := off >= rd.lastEnd-slack && off <= rd.lastEnd+slack
	// The first read of a sequential run fetches only what it needs, so that its GET does not
	// share the server with read-ahead (which shortens the time to the first byte); the kernel's
	// own read-ahead request follows at once and starts the window.
	runStarts := rd.window == 0
	switch {
	case rd.random:
		// The kernel splits one large read into several adjacent requests, so adjacency alone
		// does not mean a stream: read-ahead comes back after initialWindow bytes in a row.
		// Forward gaps may be pages the kernel still caches, and does not ask for; but reads
		// that cover less than three quarters of their span are strided (or random reads that
		// happen to land close together, each followed by the kernel's own read-ahead
		// request), and read-ahead would fetch more than they use.
		if off < rd.lastEnd-blockSize || off > rd.lastEnd+initialWindow {
			rd.runStart, rd.runBytes = off, 0
		}
		rd.lastEnd = end
		rd.runBytes += end - off
		if rd.runBytes >= initialWindow && 4*rd.runBytes >= 3*(end-rd.runStart) {
			rd.random, rd.window, rd.misses = false, initialWindow, 0
		}
	case sequential:
		rd.misses = 0
		rd.lastEnd = max(rd.lastEnd, end)
		if rd.window == 0 {
			rd.window = initialWindow
		} else if end > rd.lastEnd-blockSize {
			limit := min(rd.r.opts.MaxReadahead, freeWindow)
			if rd.starved {
				limit = rd.r.opts.MaxReadahead
			}
			rd.window = max(rd.window, min(2*rd.window, limit))
		}
		rd.starved = false
	case rd.misses+1 >= randomMisses:
		rd.dropAhead()
		rd.window, rd.misses, rd.lastEnd, rd.random, rd.runStart, rd.runBytes = 0, 0, end, true, off, end-off
		// Random reads of an object that fits the disk cache are served from a local copy,
		// fetched whole in the background.
		rd.r.cache.fetchWhole(rd.r.ctx, rd.info, rd.r.opts.ReadPartSize)
	default:
		rd.misses++
	}
	blocks := make([]*block, 0, last-first+1)
	var missing []int64
	for idx := first; idx <= last; idx++ {
		b, ok := rd.ahead[idx]
		if !ok {
			b, ok = rd.recent[idx]
		}
		if !ok {
			b, ok = rd.prev[idx]
		}
		if ok {
			if _, ahead := rd.ahead[idx]; ahead && !rd.random {
				select {
				case <-b.done:
				default:
					// The read will wait for a block fetched ahead: the reader consumes faster
					// than the GETs in flight deliver.
					rd.starved = true
					rd.r.readahead.starved.Add(1)
				}
			}
			b.acquire()
			blocks = append(blocks, b)
			continue
		}
		blocks = append(blocks, nil)
		missing = append(missing, idx)
	}
	// Fetch each run of missing blocks (the ones between runs are held here already).
	for len(missing) > 0 {
		run := 1
		for run < len(missing) && missing[run] == missing[0]+int64(run) {
			run++
		}
		copy(blocks[missing[0]-first:], rd.r.cache.fetch(rd.info, missing[0], missing[run-1], false))
		missing = missing[run:]
	}
	recent := make(map[int64]*block, len(blocks))
	for i, b := range blocks {
		b.acquire()
		recent[first+int64(i)] = b
	}
	for _, b := range rd.prev {
		b.release()
	}
	rd.prev, rd.recent = rd.recent, recent
	// Blocks more than keepBehind behind the one being read are done with; the ones within it
	// may still be read by a request of the kernel's that arrives late. (Random readers hold none,
	// and skip the mount-wide budget's lock.)
	if len(rd.ahead) > 0 {
		behind := rd.r.readahead.keepBehind(slack)
		for idx, b := range rd.ahead {
			if idx < first-behind/blockSize {
				b.release()
				delete(rd.ahead, idx)
				rd.release(blockSize)
			}
		}
	}
	switch {
	case rd.window == 0:
	case runStarts:
		// Read-ahead starts past this read's blocks: the kernel's requests may arrive out of
		// order, and read-ahead for an earlier one would fetch these again.
		rd.next = max(rd.next, last+1)
	default:
		rd.readAhead(last+1, min(rd.info.Size, end+rd.window))
	}
	return blocks
}

// readAhead requests the blocks from block from up to byte until, in GETs of ReadPartSize.
// Must hold mu.
//
// The GETs keep to the object's parts, counted in ReadPartSize from its start: none spans two.
// S3 serves ranges aligned to the parts an object was uploaded in best (AWS advises it), and
// s3mount's own uploads use the same size by default; a server also reads and checks whole
// blocks of its own, which aligned ranges do not cut. On MinIO, unaligned 8 MiB GETs cost it
// more CPU per byte than the Downloader's aligned ones.
func (rd *reader) readAhead(from, until int64) {
	rd.next = max(rd.next, from)
	lastBlock := (until - 1) / blockSize
	perGet := max(1, rd.r.opts.ReadPartSize/blockSize)
	// A GET asks for whole chunks (counted from the part's start), so the reader waits until one
	// is unrequested before asking again: otherwise, once the window stops growing, each read
	// would move it by one read and send GETs of that size, and the cost of a request would
	// dominate. A chunk is a whole part once the window holds two; in a smaller window, a quarter
	// of it. (Four readers sharing the budget have windows of three parts: a quarter of that
	// would cut each part in two GETs.)
	chunk := perGet
	if rd.window < 2*perGet*blockSize {
		chunk = min(perGet, max(1, rd.window/blockSize/4))
	}
	for rd.next <= lastBlock {
		partStart := rd.next / perGet * perGet
		end := partStart + perGet - 1
		if end > lastBlock {
			if until >= rd.info.Size {
				end = lastBlock // the object's tail
			} else {
				end = partStart + (lastBlock+1-partStart)/chunk*chunk - 1 // the last whole chunk
			}
		}
		if end < rd.next {
			return
		}
		count := end - rd.next + 1
		if !rd.reserve(count * blockSize) {
			// Over the mount-wide budget (other readers hold it): shrink this reader's window to
			// what it holds, so that its next batches are small enough to fit; readers sharing
			// the budget settle on a share each instead of starving one another.
			rd.window = max(initialWindow, rd.budget)
			return
		}
		for i, b := range rd.r.cache.fetch(rd.info, rd.next, rd.next+count-1, true) {
			if old, ok := rd.ahead[rd.next+int64(i)]; ok {
				old.release()
			}
			rd.ahead[rd.next+int64(i)] = b
		}
		rd.next += count
	}
}

// dropAhead forgets the blocks held ahead. Must hold mu.
func (rd *reader) dropAhead() {
	for _, b := range rd.ahead {
		b.release()
	}
	clear(rd.ahead)
	rd.release(rd.budget)
	rd.next = 0
}

func (rd *reader) reserve(n int64) bool {
	ok := rd.r.readahead.tryAcquire(rd.sharing, rd.budget, n)
	rd.sharing = true
	if ok {
		rd.budget += n
	}
	return ok
}

func (rd *reader) release(n int64) {
	n = min(n, rd.budget)
	rd.budget -= n
	leave := rd.sharing && rd.budget == 0
	if n > 0 || leave {
		rd.r.readahead.release(n, leave)
	}
	if leave {
		rd.sharing = false
	}
}

// close gives back the read-ahead budget and the blocks held.
func (rd *reader) close() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.dropAhead()
	for _, m := range []map[int64]*block{rd.recent, rd.prev} {
		for _, b := range m {
			b.release()
		}
	}
	rd.recent, rd.prev = nil, nil
}

// byteBudget is the read-ahead budget: the bytes that sequential readers may hold, shared by all
// of them. Each reader holds at most its share, an equal part among the readers that hold some or
// asked for some: a reader that got in first does not keep the others' windows from growing (with
// four readers, half of the reads that missed read-ahead were at the front of a window starved of
// budget).
type byteBudget struct {
	starved atomic.Int64 // reads that waited for a block fetched ahead (tests)

	mu      sync.Mutex
	limit   int64
	used    int64
	sharing int // readers sharing it
}

// tryAcquire takes n bytes more for a reader holding held bytes, if they fit the limit and the
// reader's share. A reader not yet sharing the budget (joined false) shares it from now on,
// whether it gets the bytes or not, until it leaves (release).
func (b *byteBudget) tryAcquire(joined bool, held, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !joined {
		b.sharing++
	}
	if b.used+n > b.limit || held+n > b.limit/int64(b.sharing) {
		return false
	}
	b.used += n
	return true
}

// release gives back n bytes of a reader's; leave: the reader holds none now, and stops sharing.
func (b *byteBudget) release(n int64, leave bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if leave {
		b.sharing--
	}
}

// keepBehind is how far behind a sequential reader's latest read its blocks fetched ahead are
// kept: a quarter of a reader's share, from 2 to 8 MiB, or the reordering slack of the kernel's
// requests if that is more, but never more than half a share. The kernel sends its read requests
// in parallel, and the goroutines that handle them may run late on busy cores: on the benchmark
// machine requests came in more than 2 MiB after requests beyond them, and with 2 MiB kept some
// 20 of each GiB's blocks had been recycled by then and were fetched again while the kernel
// waited (none with 8 MiB).
func (b *byteBudget) keepBehind(slack int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	share := b.limit / int64(max(1, b.sharing))
	return min(max(min(8<<20, max(2<<20, share/4)), slack), share/2)
}

// blockReply is a read's reply from blocks: go-fuse writes it with writev(2) straight from the
// blocks' memory (it has Slices), and the blocks stay referenced until it is sent (Done).
type blockReply struct {
	vecs   [][]byte
	blocks []*block
}

var _ fuse.ReadResult = (*blockReply)(nil)

func (r *blockReply) Size() int {
	n := 0
	for _, v := range r.vecs {
		n += len(v)
	}
	return n
}

// Bytes implements fuse.ReadResult, when go-fuse cannot write the slices directly.
func (r *blockReply) Bytes(buf []byte) ([]byte, fuse.Status) {
	buf = buf[:0]
	for _, v := range r.vecs {
		buf = append(buf, v...)
	}
	return buf, fuse.OK
}

// Slices lets go-fuse write the reply with writev(2).
func (r *blockReply) Slices() ([][]byte, fuse.Status) { return r.vecs, fuse.OK }

// Done implements fuse.ReadResult: the reply was sent.
func (r *blockReply) Done() { releaseAll(r.blocks) }
