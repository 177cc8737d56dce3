package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
	"github.com/s3mount/s3mount/fs/metrics"
)

func init() { poisonRecycled = true } // a recycled buffer still in use shows as wrong bytes

// TestDifferentialReads compares reads at random offsets and lengths (across block and part
// boundaries, at and past EOF) with the object's bytes, for fixed seeds, in each cache setting.
func TestDifferentialReads(t *testing.T) {
	data := randomData(7, 5*blockSize+12345)
	for _, cacheSize := range []int64{0, 2 * blockSize, 64 << 20} {
		t.Run(fmt.Sprintf("cache=%d", cacheSize), func(t *testing.T) {
			b := memback.New()
			b.PutBytes("obj", data)
			opts := DefaultOptions()
			opts.CacheSize = cacheSize
			opts.ReadPartSize = 2 * blockSize
			mnt := testMount(t, b, opts)
			f, err := os.Open(filepath.Join(mnt, "obj"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, seed := range []int64{1, 2, 3, 4} {
				rng := rand.New(rand.NewSource(seed))
				for i := 0; i < 200; i++ {
					off := rng.Int63n(int64(len(data)) + blockSize)
					if i%10 == 0 {
						off = int64(rng.Intn(6)) * blockSize // exactly on a block boundary
					}
					buf := make([]byte, 1+rng.Intn(3*blockSize))
					n, err := f.ReadAt(buf, off)
					if err != nil && err != io.EOF {
						t.Fatalf("seed %d: ReadAt(%d, %d): %v", seed, off, len(buf), err)
					}
					want := data[min(off, int64(len(data))):min(off+int64(len(buf)), int64(len(data)))]
					if !bytes.Equal(buf[:n], want) {
						t.Fatalf("seed %d: ReadAt(%d, %d) returned %d bytes that differ", seed, off, len(buf), n)
					}
				}
			}
		})
	}
}

func TestConcurrentReadersOfOneAndManyFiles(t *testing.T) {
	b := memback.New()
	files := map[string][]byte{}
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("f%d", i)
		files[name] = randomData(byte(i), 3<<20+i*777)
		b.PutBytes(name, files[name])
	}
	opts := DefaultOptions()
	opts.CacheSize = 4 * blockSize // far smaller than the data: eviction under load
	opts.ReadaheadBudget = 4 << 20
	mnt := testMount(t, b, opts)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for r := 0; r < 12; r++ {
		name := fmt.Sprintf("f%d", r%4)
		if r >= 8 {
			name = "f0" // several readers of one file
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := os.ReadFile(filepath.Join(mnt, name))
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, files[name]) {
				errs <- fmt.Errorf("%s: %d bytes differ from the object", name, len(got))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSequentialReadUsesLargeGets(t *testing.T) {
	b := memback.New()
	data := randomData(9, 32<<20)
	b.PutBytes("big", data)
	opts := DefaultOptions()
	mnt := testMount(t, b, opts)
	b.ResetCalls()
	var mu sync.Mutex
	var spanning []string
	b.SetGetFault(func(key string, off, n int64) error {
		if n < 0 || off/opts.ReadPartSize != (off+n-1)/opts.ReadPartSize {
			mu.Lock()
			spanning = append(spanning, fmt.Sprintf("[%d, %d)", off, off+n))
			mu.Unlock()
		}
		return nil
	})
	got, err := os.ReadFile(filepath.Join(mnt, "big"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the object", len(got), err)
	}
	// 32 MiB in 8 MiB read-ahead GETs, plus a few small ones while the window grows; not one GET
	// per kernel read (which would be 256 or more).
	if n := b.Calls(memback.OpGet); n > 16 {
		t.Errorf("%d GETs for a 32 MiB sequential read, want at most 16", n)
	}
	// Each GET keeps to one part of ReadPartSize (S3 serves part-aligned ranges best).
	mu.Lock()
	defer mu.Unlock()
	if len(spanning) > 0 {
		t.Errorf("GETs that span two parts of %d bytes: %v", opts.ReadPartSize, spanning)
	}
	// The kernel's requests arrive out of order (it sends its read-ahead in parallel): a block
	// fetched ahead stays held until the reads are well past it, and is not fetched again.
	if got := b.BytesRequested(); got != int64(len(data)) {
		t.Errorf("fetched %d bytes for a read of %d: some blocks twice", got, len(data))
	}
}

// mountAndOpen mounts b with opts and opens name on it (closed when the test ends).
func mountAndOpen(t *testing.T, b *memback.Backend, opts Options, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(testMount(t, b, opts), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestLateReadsFindTheirBlocks: the kernel's requests for a sequential reader arrive out of order,
// some of them late; blocks fetched ahead stay held until the reads are keepBehind past them, so a
// request 2-4 MiB behind the latest read finds its blocks, and no byte is fetched twice.
func TestLateReadsFindTheirBlocks(t *testing.T) {
	b := memback.New()
	data := randomData(8, 32<<20)
	b.PutBytes("big", data)
	f := mountAndOpen(t, b, DefaultOptions(), "big")
	b.ResetCalls()
	const mib = 1 << 20
	for _, r := range [][2]int64{{0, 10}, {12, 14}, {10, 12}, {14, 32}} { // 10-12 MiB comes late
		for off := r[0] * mib; off < r[1]*mib; off += mib {
			buf := make([]byte, mib)
			if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+mib]) {
				t.Fatalf("read at %d MiB: %v, or bytes that differ", off/mib, err)
			}
		}
	}
	// The first block came with the lookup, before the count started.
	if got := b.BytesRequested(); got > int64(len(data)) {
		t.Errorf("fetched %d bytes for a read of %d: some blocks twice", got, len(data))
	}
}

// TestRunStartArrivingEarlyIsNotFetchedAgain: the kernel sends the first read of a file and its own
// read-ahead request in parallel, and the read-ahead one may arrive first; that read starts the
// sequential run and fetches its blocks itself, and the read-ahead of the read that follows it
// (from the file's start) does not fetch them again. The shared cache is off, so nothing but the
// reader can remember them.
func TestRunStartArrivingEarlyIsNotFetchedAgain(t *testing.T) {
	b := memback.New()
	data := randomData(9, 16<<20)
	b.PutBytes("obj", data)
	opts := DefaultOptions()
	opts.CacheSize = 0
	opts.StagingDir = t.TempDir()
	root, err := NewRoot(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(root.Close)
	info, err := b.Head(context.Background(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	rd := newReader(root, info)
	defer rd.close()
	b.ResetCalls()
	const mib = 1 << 20
	for _, off := range []int64{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} {
		vecs, blocks, err := rd.read(context.Background(), off*mib, mib)
		if err != nil || !bytes.Equal(bytes.Join(vecs, nil), data[off*mib:(off+1)*mib]) {
			t.Fatalf("read at %d MiB: %v, or bytes that differ", off, err)
		}
		releaseAll(blocks)
	}
	if got := b.BytesRequested(); got != int64(len(data)) {
		t.Errorf("fetched %d bytes for a read of %d: some blocks twice", got, len(data))
	}
}

// TestReadaheadBudgetIsShared: a reader holds at most an equal share of the read-ahead budget among
// the readers that hold some or asked for some, so one that came first cannot starve the others;
// a reader leaves when it holds nothing.
func TestReadaheadBudgetIsShared(t *testing.T) {
	const mib = 1 << 20
	b := &byteBudget{limit: 96 * mib}
	if b.keepBehind(2<<20) != 8*mib {
		t.Errorf("keepBehind for one reader %d MiB, want 8", b.keepBehind(2<<20)/mib)
	}
	steps := []struct {
		name         string
		joined       bool
		held, n      int64
		want         bool
		wantSharing  int
		wantUsedMiBs int64
	}{
		{"A alone takes most of it", false, 0, 64 * mib, true, 1, 64},
		{"B asks, and fits", false, 0, 8 * mib, true, 2, 72},
		{"A is over its share of two", true, 64 * mib, 8 * mib, false, 2, 72},
		{"C asks while the budget is short: refused, but counted", false, 0, 32 * mib, false, 3, 72},
		{"B grows to its share of three", true, 8 * mib, 24 * mib, true, 3, 96},
	}
	for _, s := range steps {
		if got := b.tryAcquire(s.joined, s.held, s.n); got != s.want || b.sharing != s.wantSharing || b.used != s.wantUsedMiBs*mib {
			t.Fatalf("%s: got %v, %d sharing, %d MiB used; want %v, %d, %d", s.name, got, b.sharing, b.used/mib, s.want, s.wantSharing, s.wantUsedMiBs)
		}
	}
	if b.keepBehind(2<<20) != 8*mib {
		t.Errorf("keepBehind for three readers %d MiB, want 8 (a quarter of 32)", b.keepBehind(2<<20)/mib)
	}
	b.release(64*mib, true) // A is done
	if !b.tryAcquire(true, 0, 32*mib) || b.tryAcquire(true, 32*mib, 16*mib+1) {
		t.Error("C did not get its share of two, or got more")
	}
	for i := 0; i < 10; i++ {
		b.tryAcquire(false, 0, 0)
	}
	if b.keepBehind(2<<20) != 2*mib {
		t.Errorf("keepBehind for twelve readers %d MiB, want the floor of 2", b.keepBehind(2<<20)/mib)
	}
}

// TestRandomReadsFetchNoReadAhead: 256 KiB reads at random offsets (which the kernel splits into
// adjacent requests) turn the handle random and fetch what they read, not a read-ahead window
// after each of them; a sequential run afterwards gets read-ahead back.
func TestRandomReadsFetchNoReadAhead(t *testing.T) {
	b := memback.New()
	data := randomData(11, 80<<20)
	b.PutBytes("obj", data)
	opts := DefaultOptions()
	opts.DiskCacheSize = 0   // the object is not copied whole: every read is a GET of its own
	opts.KernelReadahead = 0 // the kernel's 128 KiB requests: one GET each without read-ahead
	mnt := testMount(t, b, opts)
	f, err := os.Open(filepath.Join(mnt, "obj"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewSource(1))
	const reads = 100
	buf := make([]byte, blockSize)
	seen := map[int64]bool{}
	for i := 0; i < reads; i++ {
		off := rng.Int63n(64<<20/blockSize) * blockSize // the last 16 MiB are for the sequential run
		seen[off] = true
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+blockSize]) {
			t.Fatalf("ReadAt(%d) differs from the object", off)
		}
	}
	// The kernel adds a request of its own after each read (its read-ahead, 128 KiB), so each
	// read may cost two blocks; a read-ahead window of ours would cost 1 MiB more.
	// (Two random reads may land close enough to look like the start of a stream: a few MiB.)
	if got, limit := b.BytesRequested(), int64(2*len(seen))*blockSize+8<<20; got > limit {
		t.Errorf("%d random reads of %d distinct blocks fetched %d MiB, want at most %d MiB: read-ahead after random reads",
			reads, len(seen), got>>20, limit>>20)
	}
	b.ResetCalls()
	// A sequential run: after initialWindow bytes, read-ahead fetches in large GETs again.
	for off := int64(64 << 20); off < 80<<20; off += blockSize {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Calls(memback.OpGet); n > 40 {
		t.Errorf("%d GETs for a 16 MiB sequential run after random reads, want read-ahead (at most 40; 64 without)", n)
	}
}

// TestStridedReadsFetchNoReadAhead: a random handle reading 256 KiB at every MiB going forward
// (a columnar file's chunks, or random reads that happen to land close together) stays random:
// read-ahead would fetch the gaps it skips.
func TestStridedReadsFetchNoReadAhead(t *testing.T) {
	b := memback.New()
	data := randomData(12, 64<<20)
	b.PutBytes("obj", data)
	opts := DefaultOptions()
	opts.DiskCacheSize = 0
	opts.KernelReadahead = 0
	mnt := testMount(t, b, opts)
	f, err := os.Open(filepath.Join(mnt, "obj"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, blockSize)
	read := func(off int64) {
		t.Helper()
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+blockSize]) {
			t.Fatalf("ReadAt(%d) differs from the object", off)
		}
	}
	for _, off := range []int64{60 << 20, 40 << 20, 50 << 20, 30 << 20} { // seeks: the handle turns random
		read(off)
	}
	b.ResetCalls()
	const reads = 24
	for i := int64(0); i < reads; i++ {
		read(i << 20)
	}
	// Each read may cost two blocks (its own and the kernel's read-ahead request after it); under
	// load a block may be fetched again before the cache admits it. A read-ahead window would
	// cost initialWindow, doubling.
	if got, limit := b.BytesRequested(), int64(2*reads)*blockSize+initialWindow/2; got > limit {
		t.Errorf("%d strided reads fetched %d KiB, want at most %d KiB: read-ahead after strided reads",
			reads, got>>10, limit>>10)
	}
}

// TestLookupBringsTheFirstBlock: a lookup by name GETs the object's first block instead of
// HEADing it, so opening and reading the start of the file right after costs no request more;
// with Options.LookupHead, or with the cache off, it is a HEAD and a GET. If that GET fails for another reason than a
// missing object, HEAD answers; a missing object needs no HEAD.
func TestLookupBringsTheFirstBlock(t *testing.T) {
	data := randomData(13, 1<<20)
	small := randomData(14, 5000)
	for _, c := range []struct {
		name       string
		lookupHead bool
		cacheSize  int64
		heads      int
		gets       int
	}{{"default", false, DefaultOptions().CacheSize, 0, 1}, {"lookup_head", true, DefaultOptions().CacheSize, 1, 1}, {"cache off", false, 0, 1, 1}} {
		b := memback.New()
		b.PutBytes("dir/big", data)
		b.PutBytes("dir/small", small)
		b.PutBytes("listed", small) // in the root's listing, taken at mount
		opts := DefaultOptions()
		opts.LookupHead, opts.CacheSize = c.lookupHead, c.cacheSize
		mnt := testMount(t, b, opts)
		for _, f := range []struct {
			name string
			want []byte
		}{{"dir/big", data[:4096]}, {"dir/small", small}, {"listed", small}} {
			b.ResetCalls()
			fh, err := os.Open(filepath.Join(mnt, f.name))
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(f.want))
			_, err = io.ReadFull(fh, got)
			fh.Close()
			if err != nil || !bytes.Equal(got, f.want) {
				t.Fatalf("%s: reading the start of %s: %v", c.name, f.name, err)
			}
			if h, g := b.Calls(memback.OpHead), b.Calls(memback.OpGet); h != c.heads || g != c.gets {
				t.Errorf("%s: lookup, open and first read of %s: %d HEADs and %d GETs, want %d and %d", c.name, f.name, h, g, c.heads, c.gets)
			}
		}
	}

	b := memback.New()
	b.PutBytes("dir/archived", small)
	mnt := testMount(t, b, DefaultOptions())
	b.SetFault(func(op memback.Op, key string) error {
		if op == memback.OpGet {
			return errors.New("injected: InvalidObjectState")
		}
		return nil
	})
	b.ResetCalls()
	if fi, err := os.Stat(filepath.Join(mnt, "dir", "archived")); err != nil || fi.Size() != int64(len(small)) {
		t.Errorf("stat when the lookup's GET fails: %v, %v; want HEAD's answer", fi, err)
	}
	b.SetFault(nil)
	b.ResetCalls()
	if _, err := os.Stat(filepath.Join(mnt, "dir", "missing")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a missing name: %v", err)
	}
	if n := b.Calls(memback.OpHead); n != 0 {
		t.Errorf("a missing name cost %d HEADs after its GET, want 0", n)
	}
}

// TestLookupBlocksAreBounded: the cache keeps the first blocks of the last firstBlocks lookups
// only, and serves them to reads of that version alone.
func TestLookupBlocksAreBounded(t *testing.T) {
	bc, err := newBlockCache(memback.New(), nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	info := func(i int) backend.ObjectInfo {
		return backend.ObjectInfo{Key: fmt.Sprintf("k%d", i), ETag: `"e"`, Size: int64(len(fmt.Sprint(i)))}
	}
	for i := 0; i < firstBlocks+4; i++ {
		bc.loadFirst(info(i), io.NopCloser(strings.NewReader(fmt.Sprint(i))))
		<-bc.fetch(info(i), 0, 0, false)[0].done // loaded in the background
	}
	if len(bc.first) != firstBlocks || len(bc.firstKeys) != firstBlocks {
		t.Fatalf("%d blocks kept (%d keys), want %d", len(bc.first), len(bc.firstKeys), firstBlocks)
	}
	last := info(firstBlocks + 3)
	if blk := bc.fetch(last, 0, 0, false)[0]; string(blk.data) != fmt.Sprint(firstBlocks+3) {
		t.Errorf("the newest lookup's block: %q", blk.data)
	}
	if _, ok := bc.first[blockKey(info(0), 0)]; ok {
		t.Error("the oldest lookup's block is still kept")
	}
	other := last
	other.ETag = `"f"`
	if _, ok := bc.first[blockKey(other, 0)]; ok {
		t.Error("a block is kept for another version")
	}
}

// TestFirstBlockLoadsInTheBackground: a lookup's GET answers once its headers are in; block 0
// arrives in the background, and a read meanwhile waits for it instead of sending a GET of its
// own. A body that breaks off is fetched again, and the waiting read gets the block.
func TestFirstBlockLoadsInTheBackground(t *testing.T) {
	b := memback.New()
	m := metrics.New()
	bc, err := newBlockCache(b, m, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, broken := range []bool{false, true} {
		key := fmt.Sprintf("k%v", broken)
		info, err := b.Put(ctx, key, strings.NewReader("hello"), 5, backend.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.ResetCalls()
		pr, pw := io.Pipe()
		bc.loadFirst(info, pr) // returns before the body is read
		blk := bc.fetch(info, 0, 0, false)[0]
		select {
		case <-blk.done:
			t.Fatalf("broken=%v: block 0 complete before its body arrived", broken)
		default:
		}
		if broken {
			pw.Write([]byte("he"))
			pw.CloseWithError(errors.New("connection reset"))
		} else {
			pw.Write([]byte("hello"))
			pw.Close()
		}
		<-blk.done
		if blk.err != nil || string(blk.data) != "hello" {
			t.Errorf("broken=%v: block 0 %q, %v", broken, blk.data, blk.err)
		}
		if want := map[bool]int{false: 0, true: 1}[broken]; b.Calls(memback.OpGet) != want {
			t.Errorf("broken=%v: %d GETs, want %d", broken, b.Calls(memback.OpGet), want)
		}
	}
	// Each read joined the load in flight: a hit, not a GET of its own.
	if got := m.Value("s3mount_cache_hits_total"); got != 2 {
		t.Errorf("%v cache hits, want 2", got)
	}
}

// TestFirstBlockLoadsAreBounded: at most firstLoads first blocks load in the background; with
// that many loading, the next lookup reads its block before it answers.
func TestFirstBlockLoadsAreBounded(t *testing.T) {
	bc, err := newBlockCache(memback.New(), nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	info := func(i int) backend.ObjectInfo {
		return backend.ObjectInfo{Key: fmt.Sprintf("k%d", i), ETag: `"e"`, Size: 5}
	}
	var writers []*io.PipeWriter
	for i := 0; i < firstLoads; i++ {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		bc.loadFirst(info(i), pr) // returns at once: loads in the background
	}
	bc.loadFirst(info(firstLoads), io.NopCloser(strings.NewReader("hello")))
	bc.mu.Lock()
	_, kept := bc.first[blockKey(info(firstLoads), 0)]
	loading := len(bc.inflight)
	bc.mu.Unlock()
	if !kept || loading != firstLoads {
		t.Errorf("with %d loading, the next block was kept %v before the lookup answered; %d loading, want %d", firstLoads, kept, loading, firstLoads)
	}
	for _, pw := range writers {
		pw.Write([]byte("hello"))
		pw.Close()
	}
}

// TestFirstReadFetchesOnlyWhatItNeeds: a handle's first read sends one GET for the kernel's
// request alone (so that it has the server to itself: the time to first byte); read-ahead starts
// with the reads that follow.
func TestFirstReadFetchesOnlyWhatItNeeds(t *testing.T) {
	b := memback.New()
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(7)).Read(data)
	b.PutBytes("big", data)
	f := mountAndOpen(t, b, DefaultOptions(), "big")
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(f, buf); err != nil || !bytes.Equal(buf, data[:4096]) {
		t.Fatalf("first read: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // nothing more is on its way
	if got, max := b.BytesRequested(), int64(1<<20); got > max || b.Calls(memback.OpGet) != 1 {
		t.Errorf("after the first read: %d GETs of %d bytes, want one of at most the kernel's %d", b.Calls(memback.OpGet), got, max)
	}
	rest, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(rest, data[4096:]) {
		t.Fatalf("reading on: %v", err)
	}
	if n := b.Calls(memback.OpGet); n > 32 { // 64 without read-ahead, one per 1 MiB request
		t.Errorf("reading 64 MiB took %d GETs: read-ahead did not start", n)
	}
}

// TestOpenFileReadsOnAfterRename: a file renamed (by itself or with its directory) while open for
// reading reads on from its new name, as on a local disk.
func TestOpenFileReadsOnAfterRename(t *testing.T) {
	b := memback.New()
	data := randomData(9, 3<<20)
	b.PutBytes("x", data)
	b.PutBytes("d/y", data)
	mnt := testMount(t, b, DefaultOptions())
	for _, mv := range [][3]string{{"x", "x", "x2"}, {"d/y", "d", "d2"}} {
		f, err := os.Open(filepath.Join(mnt, mv[0]))
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 1000)
		if _, err := io.ReadFull(f, head); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(mnt, mv[1]), filepath.Join(mnt, mv[2])); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(append(head, rest...), data) {
			t.Errorf("%s, read on after renaming %s: %d bytes, %v", mv[0], mv[1], 1000+len(rest), err)
		}
		f.Close()
	}
}

// TestCacheClosesBesideSets: Root.Close frees the block cache while fetches may still offer
// blocks to it (ristretto's own Close would panic beside a Set); after it, lookups miss.
func TestCacheClosesBesideSets(t *testing.T) {
	bc, err := newBlockCache(memback.New(), nil, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	info := backend.ObjectInfo{Key: "k", ETag: `"e"`, Size: 4 * blockSize}
	bc.keep(info, 0, make([]byte, 16))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				bc.keep(info, i%4, make([]byte, 16))
				bc.cached(info, i%4)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	bc.close()
	bc.close() // twice is harmless
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	bc.keep(info, 0, make([]byte, 16))
	if _, ok := bc.cached(info, 0); ok {
		t.Error("a closed cache returned a block")
	}
}
