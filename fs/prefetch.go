package fs

import (
	"context"
	"sync"

	"github.com/s3mount/s3mount/fs/backend"
)

// Read-ahead. Each open handle watches its own reads: while they are sequential (each lands near
// the furthest point read so far: the kernel's asynchronous reads arrive slightly out of order,
// and small skips forward and re-reads stay within the window), the read-ahead window doubles from
// initialWindow up to Options.MaxReadahead, and the blocks ahead are fetched in parallel, in GETs
// of up to Options.ReadPartSize. After randomMisses reads in a row that are not sequential, the
// handle turns random: the window is dropped and only the blocks a read needs are fetched, and the
// whole object is copied to the disk cache in the background if it fits there. Blocks fetched ahead are held by the handle until read (the shared cache may evict
// them), within a mount-wide budget of Options.ReadaheadBudget bytes; beyond it, no read-ahead.
const initialWindow = 1 << 20

// randomMisses is how many non-sequential reads in a row turn a handle random.
const randomMisses = 3

// reader serves the reads of one handle of one object version.
type reader struct {
	r    *Root
	info backend.ObjectInfo

	mu      sync.Mutex // protects the following
	lastEnd int64      // the furthest point read so far
	window  int64      // current read-ahead in bytes; 0 in random mode
	misses  int        // non-sequential reads in a row
	ahead   map[int64]*block
	next    int64 // first block not yet requested ahead
	budget  int64 // bytes of the budget this reader holds
}

func newReader(r *Root, info backend.ObjectInfo) *reader {
	return &reader{r: r, info: info, lastEnd: 0, ahead: map[int64]*block{}}
}

// readAt reads into dest from off, short only at the end of the object.
func (rd *reader) readAt(ctx context.Context, dest []byte, off int64) (int, error) {
	size := rd.info.Size
	if off >= size || len(dest) == 0 {
		return 0, nil
	}
	end := min(off+int64(len(dest)), size)
	first, last := off/blockSize, (end-1)/blockSize
	blocks := rd.plan(off, end, first, last)
	n := 0
	for i, b := range blocks {
		select {
		case <-b.done:
		case <-ctx.Done():
			return n, ctx.Err()
		}
		if b.err != nil {
			return n, b.err
		}
		idx := first + int64(i)
		lo := max(off, idx*blockSize) - idx*blockSize
		hi := min(end, (idx+1)*blockSize) - idx*blockSize
		n += copy(dest[n:], b.data[lo:hi])
	}
	return n, nil
}

// plan updates the access pattern, starts read-ahead, and returns the blocks [first, last].
func (rd *reader) plan(off, end, first, last int64) []*block {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	slack := max(rd.window, initialWindow)
	sequential := off >= rd.lastEnd-slack && off <= rd.lastEnd+slack
	switch {
	case sequential:
		rd.misses = 0
		rd.lastEnd = max(rd.lastEnd, end)
		if rd.window == 0 {
			rd.window = initialWindow
		} else if end > rd.lastEnd-blockSize {
			rd.window = min(2*rd.window, rd.r.opts.MaxReadahead)
		}
	case rd.misses+1 >= randomMisses:
		rd.dropAhead()
		rd.window, rd.misses, rd.lastEnd = 0, 0, end
		// Random reads of an object that fits the disk cache are served from a local copy,
		// fetched whole in the background.
		rd.r.cache.fetchWhole(rd.r.ctx, rd.info, rd.r.opts.ReadPartSize)
	default:
		rd.misses++
	}
	blocks := make([]*block, 0, last-first+1)
	var missing []int64
	for idx := first; idx <= last; idx++ {
		if b, ok := rd.ahead[idx]; ok {
			blocks = append(blocks, b)
			continue
		}
		blocks = append(blocks, nil)
		missing = append(missing, idx)
	}
	if len(missing) > 0 {
		got := rd.r.cache.fetch(rd.info, missing[0], missing[len(missing)-1])
		for _, idx := range missing {
			blocks[idx-first] = got[idx-missing[0]]
		}
	}
	// Blocks before the one being read are done with.
	for idx := range rd.ahead {
		if idx < first {
			delete(rd.ahead, idx)
			rd.release(blockSize)
		}
	}
	if rd.window > 0 {
		rd.readAhead(last+1, min(rd.info.Size, end+rd.window))
	}
	return blocks
}

// readAhead requests the blocks from block from up to byte until, in GETs of ReadPartSize.
// Must hold mu.
func (rd *reader) readAhead(from, until int64) {
	rd.next = max(rd.next, from)
	lastBlock := (until - 1) / blockSize
	perGet := max(1, rd.r.opts.ReadPartSize/blockSize)
	// Wait until a quarter of the window (up to a whole part) is unrequested before asking again:
	// otherwise, once the window stops growing, each read would move it by one read and send
	// GETs of that size, and the cost of a request would dominate.
	batch := min(perGet, max(1, rd.window/blockSize/4))
	if lastBlock-rd.next+1 < batch && until < rd.info.Size {
		return
	}
	for rd.next <= lastBlock {
		count := min(perGet, lastBlock-rd.next+1)
		if !rd.reserve(count * blockSize) {
			// Over the mount-wide budget (other readers hold it): shrink this reader's window to
			// what it holds, so that its next batches are small enough to fit; readers sharing
			// the budget settle on a share each instead of starving one another.
			rd.window = max(initialWindow, rd.budget)
			return
		}
		for i, b := range rd.r.cache.fetch(rd.info, rd.next, rd.next+count-1) {
			rd.ahead[rd.next+int64(i)] = b
		}
		rd.next += count
	}
}

// dropAhead forgets the blocks held ahead. Must hold mu.
func (rd *reader) dropAhead() {
	clear(rd.ahead)
	rd.release(rd.budget)
	rd.next = 0
}

func (rd *reader) reserve(n int64) bool {
	if !rd.r.readahead.tryAcquire(n) {
		return false
	}
	rd.budget += n
	return true
}

func (rd *reader) release(n int64) {
	n = min(n, rd.budget)
	rd.budget -= n
	rd.r.readahead.release(n)
}

// close gives back the read-ahead budget.
func (rd *reader) close() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.dropAhead()
}

// byteBudget is a counter of bytes that may be held, shared by all readers.
type byteBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64
}

func (b *byteBudget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}
