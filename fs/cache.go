package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/metrics"
)

// blockSize is the unit of the block cache and of reads from S3.
const blockSize = 256 << 10

// blockCache holds object content in blocks keyed by object key, ETag and block index, so cached
// content belongs to exactly one version and never needs invalidating. It also deduplicates
// fetches: a block being fetched is waited for, not fetched again.
//
// Memory: the ristretto cache is bounded by its size (cost in bytes); blocks being fetched or held
// by a reader's read-ahead are bounded by readahead (see reader).
type blockCache struct {
	b     backend.Backend
	m     *metrics.Registry
	c     *ristretto.Cache[string, []byte] // nil when the cache is off
	disk  *diskCache                       // nil when off
	gets  chan struct{}                    // bounds concurrent GETs
	retry int                              // times a broken body is resumed

	// closeMu guards c against close: ristretto's Close may not run beside a Set (it closes the
	// channel Set sends on), and fetches still finishing may offer blocks after the unmount.
	closeMu sync.RWMutex
	closed  bool

	mu       sync.Mutex        // protects inflight, first and firstKeys
	inflight map[string]*block // blocks being fetched
	// first holds the first blocks of objects that lookups fetched (see Root.statObject), for
	// the open and read that usually follow a lookup: the last firstBlocks of them, apart from
	// the cache (whose admission policy may turn a block seen once away).
	first     map[string][]byte
	firstKeys []string      // in the order they came, oldest first
	loading   chan struct{} // bounds the first blocks read in the background (see loadFirst)
}

// firstBlocks is how many blocks fetched by lookups are kept (4 MiB).
const firstBlocks = 16

// firstLoads is how many first blocks are read in the background at most (1 MiB).
const firstLoads = 4

// block is a block being fetched (or fetched): done closes when data or err is set.
type block struct {
	done chan struct{}
	data []byte
	err  error
	// pooled: a block fetched ahead for a sequential reader. It stays out of the shared cache
	// (the kernel's page cache serves re-reads within an open file), so its buffer can go back
	// to blockPool as soon as nothing refers to it: refs counts the fetch in progress, the
	// readers holding it (read-ahead, last two reads) and the replies being sent from it. Recycling
	// spares the allocation and zeroing of 256 KiB per block, and the garbage collector the churn.
	pooled bool
	refs   atomic.Int32
	buf    []byte // from blockPool, once fetched
}

// blockPool holds the buffers of pooled blocks.
var blockPool = poolOf(blockSize)

// poisonRecycled makes recycled buffers hold a pattern (tests: a use after recycling shows as
// wrong bytes).
var poisonRecycled = false

func newBlock(pooled bool) *block {
	b := &block{done: make(chan struct{}), pooled: pooled}
	if pooled {
		b.refs.Store(2) // the fetch and the caller
	}
	return b
}

// doneBlock is a block already at hand (cached): complete, and not pooled.
func doneBlock(data []byte) *block {
	b := &block{done: make(chan struct{}), data: data}
	close(b.done)
	return b
}

// acquire adds a reference to a pooled block.
func (b *block) acquire() {
	if b.pooled {
		b.refs.Add(1)
	}
}

// release drops a reference to a pooled block; the last one recycles its buffer.
func (b *block) release() {
	if !b.pooled || b.refs.Add(-1) != 0 || b.buf == nil {
		return
	}
	if poisonRecycled {
		for i := range b.buf {
			b.buf[i] = 0xA5
		}
	}
	blockPool.put(b.buf)
}

// releaseAll releases every block of bs.
func releaseAll(bs []*block) {
	for _, b := range bs {
		b.release()
	}
}

func newBlockCache(b backend.Backend, m *metrics.Registry, size int64, concurrency int) (*blockCache, error) {
	bc := &blockCache{b: b, m: m, gets: make(chan struct{}, max(1, concurrency)), retry: 3, inflight: map[string]*block{},
		first: map[string][]byte{}, loading: make(chan struct{}, firstLoads)}
	if size <= 0 {
		return bc, nil
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: max(1000, 10*size/blockSize), // ten counters per block that fits, as ristretto advises
		MaxCost:     size,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("block cache: %w", err)
	}
	bc.c = c
	return bc, nil
}

func blockKey(info backend.ObjectInfo, idx int64) string {
	return info.Key + "\x00" + info.ETag + "\x00" + strconv.FormatInt(idx, 10)
}

// cached returns block idx if the cache holds it.
func (bc *blockCache) cached(info backend.ObjectInfo, idx int64) ([]byte, bool) {
	if bc.c == nil {
		return nil, false
	}
	bc.closeMu.RLock()
	defer bc.closeMu.RUnlock()
	if bc.closed {
		return nil, false
	}
	return bc.c.Get(blockKey(info, idx))
}

// keep offers a complete block to the cache.
func (bc *blockCache) keep(info backend.ObjectInfo, idx int64, data []byte) {
	if bc.c == nil {
		return
	}
	bc.closeMu.RLock()
	defer bc.closeMu.RUnlock()
	if !bc.closed {
		bc.c.Set(blockKey(info, idx), data, int64(cap(data)))
	}
}

// close frees the cache and stops its goroutines; later lookups miss and offers are dropped.
func (bc *blockCache) close() {
	if bc.c == nil {
		return
	}
	bc.closeMu.Lock()
	defer bc.closeMu.Unlock()
	if !bc.closed {
		bc.closed = true
		bc.c.Close()
	}
}

// loadFirst reads block 0 of info from body (which a lookup's GET returned) and keeps it (see
// keepFirst), then closes body. It reads in the background, so that the lookup answers as soon as
// the headers are in and the rest of the block arrives while the kernel sends the open and the
// read; a read of block 0 meanwhile waits for it. With firstLoads blocks already loading, it reads
// before returning. A body that breaks off is fetched again as a read would.
func (bc *blockCache) loadFirst(info backend.ObjectInfo, body io.ReadCloser) {
	read := func() ([]byte, error) {
		defer body.Close()
		data := make([]byte, min(info.Size, blockSize))
		_, err := io.ReadFull(body, data)
		return data, err
	}
	k := blockKey(info, 0)
	b := newBlock(false)
	bc.mu.Lock()
	_, loading := bc.inflight[k]
	_, kept := bc.first[k]
	if loading || kept {
		bc.mu.Unlock()
		body.Close()
		return
	}
	select {
	case bc.loading <- struct{}{}:
		bc.inflight[k] = b
		bc.mu.Unlock()
	default:
		bc.mu.Unlock()
		if data, err := read(); err == nil {
			bc.mu.Lock()
			bc.keepFirst(k, data)
			bc.mu.Unlock()
		}
		return
	}
	go func() {
		defer func() { <-bc.loading }()
		data, err := read()
		if err != nil {
			bc.get(info, bc.diskID(info), 0, []*block{b})
			return
		}
		b.data = data
		bc.mu.Lock()
		delete(bc.inflight, k)
		bc.keepFirst(k, data)
		bc.mu.Unlock()
		close(b.done)
	}()
}

// keepFirst keeps data as the block with key k, block 0 of an object that a lookup fetched, among
// the last firstBlocks of them. Must hold mu.
func (bc *blockCache) keepFirst(k string, data []byte) {
	if _, ok := bc.first[k]; ok {
		return
	}
	if len(bc.firstKeys) == firstBlocks {
		delete(bc.first, bc.firstKeys[0])
		bc.firstKeys = append(bc.firstKeys[:0], bc.firstKeys[1:]...)
	}
	bc.first[k] = data
	bc.firstKeys = append(bc.firstKeys, k)
}

// fetch returns the blocks [first, last] of info, starting one GET for the ones that are neither
// cached nor being fetched. The returned blocks complete as their bytes arrive. Blocks fetched
// ahead (for a sequential reader) are pooled (see block); the caller owns one reference to each
// pooled block returned, and releases it.
func (bc *blockCache) fetch(info backend.ObjectInfo, first, last int64, ahead bool) []*block {
	out := make([]*block, 0, last-first+1)
	id := bc.diskID(info)
	var todo []*block
	todoFirst := int64(-1)
	bc.mu.Lock()
	for idx := first; idx <= last; idx++ {
		data, ok := bc.cached(info, idx)
		if !ok && idx == 0 {
			data, ok = bc.first[blockKey(info, idx)]
		}
		if ok {
			bc.hit()
			out = append(out, doneBlock(data))
			continue
		}
		if data, ok := bc.disk.get(id, idx); ok {
			bc.m.Inc("s3mount_disk_cache_hits_total", "blocks served from the disk cache")
			out = append(out, doneBlock(data))
			continue
		}
		k := blockKey(info, idx)
		if b, ok := bc.inflight[k]; ok {
			bc.hit()
			b.acquire()
			out = append(out, b)
			continue
		}
		b := newBlock(ahead)
		bc.inflight[k] = b
		out = append(out, b)
		if bc.disk.await(id, idx, b) {
			continue // the copy of the whole object in progress brings it
		}
		bc.m.Inc("s3mount_cache_misses_total", "blocks fetched from S3")
		if todoFirst >= 0 && todoFirst+int64(len(todo)) != idx {
			go bc.get(info, id, todoFirst, todo)
			todo = nil
		}
		if len(todo) == 0 {
			todoFirst = idx
		}
		todo = append(todo, b)
	}
	bc.mu.Unlock()
	if len(todo) > 0 {
		go bc.get(info, id, todoFirst, todo)
	}
	return out
}

// hit counts a block a read gets without a GET of its own: from the cache, or from a fetch in
// flight (such as the first block a lookup is still receiving).
func (bc *blockCache) hit() {
	bc.m.Inc("s3mount_cache_hits_total", "blocks served from the block cache or a fetch in flight")
}

// get fetches consecutive blocks starting at block first with one ranged GET (pinned to the
// ETag), completing each block as its bytes arrive (id is the object's disk-cache id, computed
// once per fetch). A body that breaks off is resumed where it stopped, a few times.
func (bc *blockCache) get(info backend.ObjectInfo, id string, first int64, blocks []*block) {
	bc.gets <- struct{}{}
	defer func() { <-bc.gets }()
	off := first * blockSize
	end := min(info.Size, (first+int64(len(blocks)))*blockSize)
	ctx := context.Background()
	var body io.ReadCloser
	var err error
	attempts := 0
	i := 0
	for i < len(blocks) && err == nil {
		if body == nil {
			body, err = bc.b.Get(ctx, info.Key, off, end-off, info.ETag)
			if err != nil {
				break
			}
		}
		n := min(blockSize, end-off)
		var pooled, buf []byte
		if blocks[i].pooled {
			pooled = blockPool.get()
			buf = pooled[:n]
		} else {
			buf = make([]byte, n)
		}
		var got int
		got, err = io.ReadFull(body, buf)
		if err != nil && pooled != nil {
			blockPool.put(pooled)
		}
		if err != nil && !errors.Is(err, backend.ErrStale) && attempts < bc.retry && got < int(n) {
			// The body broke off: resume with a new GET from the start of this block.
			attempts++
			body.Close()
			body, err = nil, nil
			continue
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("object shorter than when opened: %w", backend.ErrStale)
			}
			break
		}
		blocks[i].buf = pooled
		bc.complete(info, id, first+int64(i), blocks[i], buf, nil)
		off += n
		i++
	}
	if body != nil {
		body.Close()
	}
	for ; i < len(blocks); i++ {
		bc.complete(info, id, first+int64(i), blocks[i], nil, err)
	}
}

// complete sets the outcome of block idx, wakes its readers and drops the fetch's reference. A
// block read at random is kept in the shared cache (or the disk cache copying its object).
func (bc *blockCache) complete(info backend.ObjectInfo, id string, idx int64, b *block, data []byte, err error) {
	b.data, b.err = data, err
	bc.mu.Lock()
	delete(bc.inflight, blockKey(info, idx))
	bc.mu.Unlock()
	if err == nil {
		stored, waiters := bc.disk.put(id, idx, data)
		if !stored && !b.pooled {
			bc.keep(info, idx, data)
		}
		if len(waiters) > 0 && b.pooled {
			data = append([]byte(nil), data...) // the waiters hold no reference to b
		}
		for _, w := range waiters {
			bc.complete(info, id, idx, w, data, nil)
		}
	}
	close(b.done)
	b.release()
}

// fetchWhole copies all of info into the disk cache in the background, in parallel GETs of
// partSize, unless it is there already or does not fit. Each body streams straight into the
// cache file through one reused buffer per GET, and each block can be read as soon as it is
// written. It stops when ctx ends or a GET fails (the reads that need the missing blocks then
// fetch them themselves, and see the error).
func (bc *blockCache) fetchWhole(ctx context.Context, info backend.ObjectInfo, partSize int64) {
	id := diskID(info)
	if !bc.disk.admit(id, info) {
		return
	}
	perPart := max(1, partSize/blockSize)
	blocks := (info.Size + blockSize - 1) / blockSize
	parts := make(chan int64)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(parts)
		for first := int64(0); first < blocks; first += perPart {
			select {
			case parts <- first:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Half of the GETs allowed mount-wide, so that the reads waiting for a block (and other
	// readers) still get through.
	var wg sync.WaitGroup
	for range max(1, cap(bc.gets)/2) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, blockSize)
			for first := range parts {
				if err := bc.fillPart(ctx, info, id, first, min(first+perPart, blocks)-1, buf); err != nil {
					bc.disk.log.Info("disk cache: copying the object stopped; reads fetch what is missing", "key", info.Key, "err", err)
					cancel()
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		cancel()
		// The copy stopped early: the reads still waiting fetch their blocks themselves.
		for idx, waiting := range bc.disk.endFill(id) {
			for _, b := range waiting {
				go bc.get(info, id, idx, []*block{b})
			}
		}
	}()
}

// fillPart copies the blocks [first, last] of info into the disk cache with one GET, skipping
// the blocks already there.
func (bc *blockCache) fillPart(ctx context.Context, info backend.ObjectInfo, id string, first, last int64, buf []byte) error {
	for first <= last && bc.disk.has(id, first) {
		first++
	}
	if first > last {
		return nil
	}
	select {
	case bc.gets <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-bc.gets }()
	stream := bc.disk.startStream(id, first, last)
	if stream == nil {
		return errors.New("the disk cache dropped the object")
	}
	defer bc.disk.endStream(id, stream)
	off, end := first*blockSize, min(info.Size, (last+1)*blockSize)
	body, err := bc.b.Get(ctx, info.Key, off, end-off, info.ETag)
	if err != nil {
		return err
	}
	defer body.Close()
	for idx := first; idx <= last; idx++ {
		n := min(blockSize, end-idx*blockSize)
		if _, err := io.ReadFull(body, buf[:n]); err != nil {
			return err
		}
		stored, waiters := bc.disk.put(id, idx, buf[:n])
		stream.next.Store(idx + 1)
		if !stored {
			return errors.New("the disk cache refused the block")
		}
		if len(waiters) > 0 {
			data := append([]byte(nil), buf[:n]...)
			for _, w := range waiters {
				bc.complete(info, id, idx, w, data, nil)
			}
		}
	}
	return nil
}

// diskID is diskID(info) when the disk cache is on (it costs a hash), "" otherwise.
func (bc *blockCache) diskID(info backend.ObjectInfo) string {
	if bc.disk == nil {
		return ""
	}
	return diskID(info)
}
