package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// cachedObjects returns the object files of the disk caches under dir.
func cachedObjects(t *testing.T, dir string) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, diskCachePrefix+"*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if filepath.Base(f) != "lock" {
			out = append(out, f)
		}
	}
	return out
}

// openWithDiskCache mounts b with a 64 MiB disk cache and a memory cache too small to matter, and
// opens its object "obj" (closed when the test ends).
func openWithDiskCache(t *testing.T, b *memback.Backend, readPartSize int64) (*os.File, Options) {
	t.Helper()
	opts := withDiskCache(t, DefaultOptions(), readPartSize)
	return mountAndOpen(t, b, opts, "obj"), opts
}

// withDiskCache is o with a 64 MiB disk cache and a memory cache too small to matter.
func withDiskCache(t *testing.T, o Options, readPartSize int64) Options {
	o.CacheSize = 2 * blockSize
	o.ReadPartSize = readPartSize
	o.DiskCacheDir = t.TempDir()
	o.DiskCacheSize = 64 << 20
	return o
}

// TestRandomReaderIsServedFromDisk: a handle that reads at random gets the whole object copied to
// the disk cache in the background; once it is there, reads make no GET, and every read returns
// the object's bytes (before, during and after the copy).
func TestRandomReaderIsServedFromDisk(t *testing.T) {
	b := memback.New()
	data := randomData(3, 6<<20+4321)
	b.PutBytes("obj", data)
	f, opts := openWithDiskCache(t, b, 1<<20)
	rng := rand.New(rand.NewSource(5))
	check := func(reads int) {
		t.Helper()
		for i := 0; i < reads; i++ {
			off := rng.Int63n(int64(len(data)))
			buf := make([]byte, 1+rng.Intn(2*blockSize))
			n, err := f.ReadAt(buf, off)
			if err != nil && err != io.EOF {
				t.Fatalf("ReadAt(%d, %d): %v", off, len(buf), err)
			}
			if want := data[off:min(off+int64(len(buf)), int64(len(data)))]; !bytes.Equal(buf[:n], want) {
				t.Fatalf("ReadAt(%d, %d): %d bytes that differ from the object", off, len(buf), n)
			}
		}
	}
	check(50)
	waitCopied(t, opts, int64(len(data)))
	b.ResetCalls()
	check(300)
	if n := b.Calls(memback.OpGet); n != 0 {
		t.Errorf("%d GETs after the object was copied to disk, want 0", n)
	}
}

// waitCopied waits for the background copy of the one object being read to the disk cache: the
// sparse cache file holds every byte.
func waitCopied(t *testing.T, opts Options, size int64) {
	t.Helper()
	waitCopiedN(t, opts, 1, size)
}

// waitCopiedN is waitCopied for n objects of size bytes each.
func waitCopiedN(t *testing.T, opts Options, n int, size int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		objs := cachedObjects(t, opts.DiskCacheDir)
		if len(objs) > n {
			t.Fatalf("disk cache holds %v, want %d objects", objs, n)
		}
		var full []string
		for _, o := range objs {
			var st syscall.Stat_t
			if syscall.Stat(o, &st) == nil && st.Blocks*512 >= size {
				full = append(full, o)
			}
		}
		if len(full) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background copy did not finish: %d of %d objects whole (%v)", len(full), n, objs)
		}
	}
	time.Sleep(50 * time.Millisecond) // the last block's bookkeeping follows its write
}

// TestSequentialReaderLeavesDiskAlone: sequential readers use read-ahead and the memory cache only,
// and fetch each byte once; also with the kernel's read-ahead raised (--kernel-readahead 4M), when
// its requests arrive out of order by several MiB.
func TestSequentialReaderLeavesDiskAlone(t *testing.T) {
	for _, ra := range []int64{DefaultOptions().KernelReadahead, 4 << 20} {
		t.Run(fmt.Sprintf("kernel read-ahead %d MiB", ra>>20), func(t *testing.T) {
			b := memback.New()
			data := randomData(4, 64<<20)
			b.PutBytes("obj", data)
			opts := DefaultOptions()
			opts.DiskCacheDir = t.TempDir()
			opts.KernelReadahead = ra
			mnt := testMount(t, b, opts)
			b.ResetCalls()
			got, err := os.ReadFile(filepath.Join(mnt, "obj"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes (%v), want the object", len(got), err)
			}
			if objs := cachedObjects(t, opts.DiskCacheDir); len(objs) != 0 {
				t.Errorf("disk cache holds %v after a sequential read, want nothing", objs)
			}
			if n := b.BytesRequested(); n > int64(len(data)) {
				t.Errorf("fetched %d bytes for a read of %d", n, len(data))
			}
		})
	}
}

// TestDiskCacheBoundAndLifecycle: the cache never reserves more than its limit, evicts the least
// recently used object not in use, skips what does not fit, removes a crashed mount's directory
// and its own at close.
func TestDiskCacheBoundAndLifecycle(t *testing.T) {
	parent := t.TempDir()
	stale := filepath.Join(parent, diskCachePrefix+"crashed")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stale, "lock"), nil, 0o600)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dc, err := openDiskCache(parent, 2*blockSize, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a crashed mount's cache directory is still there (%v)", err)
	}
	// A second cache in the same parent leaves the live one alone.
	other, err := openDiskCache(parent, blockSize, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dc.dir); err != nil {
		t.Fatalf("opening a second cache removed the first: %v", err)
	}
	other.close()

	a := backend.ObjectInfo{Key: "a", ETag: "1", Size: blockSize}
	b := backend.ObjectInfo{Key: "b", ETag: "1", Size: blockSize}
	c := backend.ObjectInfo{Key: "c", ETag: "1", Size: blockSize}
	big := backend.ObjectInfo{Key: "big", ETag: "1", Size: 3 * blockSize}
	block := bytes.Repeat([]byte{7}, blockSize)
	if !dc.admit(diskID(a), a) || !dc.admit(diskID(b), b) {
		t.Fatal("objects that fit were not admitted")
	}
	if dc.admit(diskID(a), a) {
		t.Error("an object already cached was admitted again")
	}
	if dc.admit(diskID(big), big) {
		t.Error("an object larger than the cache was admitted")
	}
	if _, ok := dc.get(diskID(a), 0); ok {
		t.Error("a block never stored was found")
	}
	if ok, _ := dc.put(diskID(a), 0, block); !ok {
		t.Fatal("put of an admitted object failed")
	}
	if got, ok := dc.get(diskID(a), 0); !ok || !bytes.Equal(got, block) {
		t.Fatal("stored block not read back")
	}
	if ok, _ := dc.put(diskID(c), 0, block); ok {
		t.Error("put of an object never admitted was stored")
	}
	// Objects being copied are not evicted.
	if dc.admit(diskID(c), c) {
		t.Fatal("c was admitted by evicting an object being copied")
	}
	dc.endFill(diskID(a))
	dc.endFill(diskID(b))
	// b is in use: admitting c evicts a even though a was used more recently.
	inUse := dc.acquire(diskID(b), 0, -1)
	if !dc.admit(diskID(c), c) {
		t.Fatal("c was not admitted by evicting a")
	}
	if tracks(dc, a) || !tracks(dc, b) || !tracks(dc, c) {
		t.Errorf("after eviction: a=%v b=%v c=%v, want false true true", tracks(dc, a), tracks(dc, b), tracks(dc, c))
	}
	if dc.used > dc.limit {
		t.Errorf("reserved %d bytes over the limit of %d", dc.used, dc.limit)
	}
	dc.releaseObj(inUse)
	dir := dc.dir
	dc.close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cache directory left after close (%v)", err)
	}
}

// tracks reports whether the cache holds (or is filling) info.
func tracks(dc *diskCache, info backend.ObjectInfo) bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	_, ok := dc.objects[diskID(info)]
	return ok
}

// TestReadsDuringCopy: while the whole object is being copied to the disk cache, a read of a block
// that one of the copy's GETs is about to bring waits for it instead of sending a GET beside it; a
// read of a block farther on fetches it at once with a GET of its own rather than waiting until
// the copy gets there. If the copy stops early (its GETs fail), every read fetches its block.
func TestReadsDuringCopy(t *testing.T) {
	for _, copyFails := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy runs", true: "copy fails"}[copyFails], func(t *testing.T) {
			b := memback.New()
			data := randomData(4, 32<<20)
			b.PutBytes("obj", data)
			f, opts := openWithDiskCache(t, b, 8<<20) // its lookup's GET is not counted
			if n := int64(len(data)) / opts.ReadPartSize; n > int64(opts.ReadConcurrency/2) {
				t.Fatalf("the test needs all %d parts copied at once", n)
			}
			// A slow network: a block takes 64 ms, a part (32 blocks) 2 s; the copy's four GETs
			// stay near their parts' first blocks while the reads below run.
			b.SetBodyRate(4 << 20)
			var copyGets, readGets atomic.Int32 // the copy's GETs of 8 MiB, the reads' of a block
			b.SetGetFault(func(key string, off, n int64) error {
				if n < opts.ReadPartSize {
					readGets.Add(1)
					return nil
				}
				copyGets.Add(1)
				if copyFails {
					return errors.New("injected: GET failed")
				}
				return nil
			})
			read := func(block int64) {
				buf := make([]byte, 4096)
				off := block*blockSize + 100
				if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
					t.Errorf("read of block %d: %v, or bytes that differ", block, err)
				}
			}
			for _, blk := range []int64{100, 20, 70} { // three seeks: the handle turns random
				read(blk)
			}
			// The third read started the copy: its four GETs (parts from blocks 0, 32, 64 and 96),
			// or, when they fail, at least one.
			started := int32(4)
			if copyFails {
				started = 1
			}
			for deadline := time.Now().Add(10 * time.Second); copyGets.Load() < started; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d GETs of the copy, want %d", copyGets.Load(), started)
				}
			}
			readGets.Store(0)
			var wg sync.WaitGroup
			near, far := []int64{2, 34, 67}, []int64{28, 60, 90, 124}
			for _, blk := range append(near, far...) {
				wg.Add(1)
				go func() { defer wg.Done(); read(blk) }()
			}
			wg.Wait()
			want := int32(len(far)) // the near blocks come with the copy
			if copyFails {
				want = int32(len(near) + len(far))
			}
			if n := readGets.Load(); n != want {
				t.Errorf("%d GETs for the reads during the copy, want %d", n, want)
			}
		})
	}
}
