package fs

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// TestUploadSlotsGrowWithThroughputAndStayBounded: while parts wait and each part sent keeps its
// rate, one more slot opens per part, up to the bound; when the rate of each part falls (a shared
// bottleneck), the slots close again down to where they started.
func TestUploadSlotsGrowWithThroughputAndStayBounded(t *testing.T) {
	s := newUploadSlots(8, 32)
	ctx := context.Background()
	got := make(chan int, 40)
	for i := range 40 {
		go func() {
			if err := s.acquire(ctx); err == nil {
				got <- i
			}
		}()
	}
	recv := func() {
		t.Helper()
		select {
		case <-got:
		case <-time.After(10 * time.Second): // a hang guard, not a measure of speed
			limit, peak := s.state()
			t.Fatalf("no slot granted: %d open, %d taken at most", limit, peak)
		}
	}
	for range 8 {
		recv()
	}
	waitQueued(t, s, 32)
	const part = 8 << 20
	for want := 9; want <= 32; want++ {
		s.observe(part, 320*time.Millisecond) // 25 MiB/s per part, whatever the count
		recv()                                // one more part starts
		if limit, peak := s.state(); limit != want || peak != want {
			t.Fatalf("after %d parts: %d slots open, %d in flight; want %d", want-8, limit, peak, want)
		}
	}
	s.observe(part, 320*time.Millisecond)
	if limit, peak := s.state(); limit != 32 || peak != 32 {
		t.Fatalf("past the bound: %d slots open, %d in flight; want 32", limit, peak)
	}
	// Each part slows to an eighth: the link is shared; back to the start, not below.
	for range 40 {
		s.observe(part, 8*320*time.Millisecond)
	}
	if limit, _ := s.state(); limit != 8 {
		t.Fatalf("with slow parts %d slots open, want 8", limit)
	}
	for range 32 {
		s.release()
	}
	for range 8 { // the last waiters get the slots given back, 8 at a time
		recv()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy != 8 || len(s.waiters) != 0 {
		t.Errorf("%d slots taken and %d waiters at the end, want 8 and 0", s.busy, len(s.waiters))
	}
}

// gatedBackend holds every part upload until the test lets it go, and counts the parts in flight
// and those sent from memory.
type gatedBackend struct {
	*memback.Backend
	started chan int32
	proceed chan struct{}

	mu                  sync.Mutex
	inflight, fromMem   int
	peak, peakFromMem   int
	fromFile, partsSent int
}

func (g *gatedBackend) NewUpload(ctx context.Context, key string, opts backend.PutOptions) (backend.Upload, error) {
	u, err := g.Backend.NewUpload(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	return &gatedUpload{Upload: u, g: g}, nil
}

type gatedUpload struct {
	backend.Upload
	g *gatedBackend
}

func (u *gatedUpload) UploadPart(ctx context.Context, n int32, body io.ReadSeeker, size int64) error {
	g := u.g
	_, mem := body.(*bytes.Reader)
	g.mu.Lock()
	g.inflight++
	g.peak = max(g.peak, g.inflight)
	if mem {
		g.fromMem++
		g.peakFromMem = max(g.peakFromMem, g.fromMem)
	} else {
		g.fromFile++
	}
	g.mu.Unlock()
	g.started <- n
	<-g.proceed
	err := u.Upload.UploadPart(ctx, n, body, size)
	g.mu.Lock()
	g.inflight--
	if mem {
		g.fromMem--
	}
	g.partsSent++
	g.mu.Unlock()
	return err
}

// TestPartUploadsGrowPastTheBuffersAndStayBounded: a writer's parts start UploadConcurrency at a
// time; while each part keeps its rate, more go out at once, up to MaxUploadConcurrency and never
// more; at most UploadConcurrency of them are read into memory, the others are sent from the
// staging file; the object is the bytes written.
func TestPartUploadsGrowPastTheBuffersAndStayBounded(t *testing.T) {
	g := &gatedBackend{Backend: memback.New(), started: make(chan int32, 64), proceed: make(chan struct{})}
	opts := writeOptions()
	opts.StagingDir = t.TempDir()
	opts.UploadConcurrency, opts.MaxUploadConcurrency = 2, 6
	r, err := NewRoot(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.uploads.partTime = 200 * time.Millisecond // every part at the same rate
	d, err := newEmptyDirtyFile(r, func() string { return "big" }, backend.ObjectInfo{}, attrs{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.release()
	defer close(g.proceed) // first of the defers: a test that failed lets the held parts go
	const parts = 16
	p := opts.PartSize
	data := randomData(5, int(parts*p))
	for i := range parts { // each write fills a part, which starts uploading
		if _, err := d.write(context.Background(), data[int64(i)*p:int64(i+1)*p], int64(i)*p); err != nil {
			t.Fatal(err)
		}
	}
	// Let the parts go one at a time; after each, wait for those the slots let start.
	startedN := 0
	recv := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-g.started:
				startedN++
			case <-time.After(10 * time.Second): // a hang guard, not a measure of speed
				limit, _ := r.uploads.state()
				t.Fatalf("%d parts started, want %d more (%d slots open)", startedN, n, limit)
			}
		}
	}
	waitQueued(t, r.uploads, parts-2)
	recv(2)
	for k := 1; k <= parts; k++ {
		g.proceed <- struct{}{}
		inFlight := min(2+k, 6, parts-k) // one more slot per part done, up to the bound
		recv(k + inFlight - startedN)
	}
	done := make(chan error, 1)
	go func() { _, _, err := d.commit(context.Background()); done <- err }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.peak != 6 {
		t.Errorf("at most %d parts in flight, want 6 (grown from 2 to the bound)", g.peak)
	}
	if g.peakFromMem > 2 {
		t.Errorf("%d parts in memory at once, want at most UploadConcurrency (2)", g.peakFromMem)
	}
	if g.fromFile == 0 {
		t.Error("no part was sent from the staging file")
	}
	if got := objectBytes(t, g.Backend, "big"); !bytes.Equal(got, data) {
		t.Error("the object differs from the bytes written")
	}
}

// waitQueued waits (up to 10 s) until n acquires wait for a slot of s.
func waitQueued(t *testing.T, s *uploadSlots, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		queued := len(s.waiters)
		s.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d wait for a slot, want %d", queued, n)
		}
	}
}

// TestReadaheadWindowGrowsOnlyWhileTheReaderStarves: a sequential reader's window grows to
// freeWindow as it reads on; beyond, only while its reads find blocks fetched ahead still in
// flight (connections slower than the reader), up to MaxReadahead, with more GETs in flight than
// freeWindow holds and never more bytes ahead than the budget. A reader slower than the network
// stays at freeWindow.
func TestReadaheadWindowGrowsOnlyWhileTheReaderStarves(t *testing.T) {
	old := freeWindow
	freeWindow = 4 << 20
	t.Cleanup(func() { freeWindow = old })
	const mib = 1 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), 48*mib/16)
	for _, slow := range []bool{false, true} {
		b := memback.New()
		b.PutBytes("obj", data)
		opts := DefaultOptions()
		opts.CacheSize = 0
		opts.StagingDir = t.TempDir()
		opts.ReadPartSize = mib
		opts.MaxReadahead, opts.ReadaheadBudget = 16*mib, 32*mib // the budget no bound here
		if slow {
			b.SetBodyRate(16 * mib) // each GET's body, as a capped connection (slow enough to starve the reader under -race too)
		}
		root, err := NewRoot(b, opts)
		if err != nil {
			t.Fatal(err)
		}
		info, err := b.Head(context.Background(), "obj")
		if err != nil {
			t.Fatal(err)
		}
		rd := newReader(root, info)
		var maxWindow, maxHeld int64
		maxGets := 0
		for off := int64(0); off < int64(len(data)); off += mib {
			if !slow {
				// A reader slower than the network: everything fetched ahead has arrived.
				rd.mu.Lock()
				ahead := make([]*block, 0, len(rd.ahead))
				for _, b := range rd.ahead {
					ahead = append(ahead, b)
				}
				rd.mu.Unlock()
				for _, b := range ahead {
					<-b.done
				}
			}
			vecs, blocks, err := rd.read(context.Background(), off, mib)
			if err != nil || !bytes.Equal(bytes.Join(vecs, nil), data[off:off+mib]) {
				t.Fatalf("slow=%v: read at %d MiB: %v, or bytes that differ", slow, off/mib, err)
			}
			releaseAll(blocks)
			rd.mu.Lock()
			maxWindow, maxHeld = max(maxWindow, rd.window), max(maxHeld, rd.budget)
			rd.mu.Unlock()
			maxGets = max(maxGets, len(root.cache.gets))
		}
		rd.close()
		root.Close()
		if maxHeld > opts.ReadaheadBudget {
			t.Errorf("slow=%v: %d MiB held ahead, over the budget of %d", slow, maxHeld/mib, opts.ReadaheadBudget/mib)
		}
		if !slow && maxWindow != freeWindow {
			t.Errorf("a reader slower than the network: window up to %d MiB, want %d", maxWindow/mib, freeWindow/mib)
		}
		if slow && (maxWindow != opts.MaxReadahead || maxGets <= int(freeWindow/opts.ReadPartSize)) {
			t.Errorf("a starving reader: window up to %d MiB with %d GETs in flight at most; want %d MiB, more than %d GETs",
				maxWindow/mib, maxGets, opts.MaxReadahead/mib, freeWindow/opts.ReadPartSize)
		}
		if slow && root.readahead.starved.Load() == 0 {
			t.Error("no read waited for read-ahead")
		}
	}
}
