package fs

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend/memback"
	"github.com/s3mount/s3mount/fs/metrics"
)

func TestAroundRegion(t *testing.T) {
	for _, c := range []struct {
		off      int64
		n        int
		size     int64
		lo, hi   int64
		describe string
	}{
		{off: 5<<20 + 100, n: 256 << 10, size: 1 << 30, lo: 4 << 20, hi: 6 << 20, describe: "256 KiB read: its 2 MiB"},
		{off: 5<<20 + 100, n: 4096, size: 1 << 30, lo: 5 << 20, hi: 5<<20 + 32<<10, describe: "4 KiB read: 32 KiB"},
		{off: 3<<20 + 7, n: 1 << 20, size: 1 << 30, lo: 2 << 20, hi: 4 << 20, describe: "1 MiB read: at most 2 MiB"},
		{off: 9 << 20, n: 256 << 10, size: 9<<20 + 300<<10, lo: 8 << 20, hi: 9<<20 + 300<<10, describe: "clipped at the end"},
		{off: 9 << 20, n: 256 << 10, size: 9 << 20, describe: "at the end: nothing"},
		{off: 0, n: 0, size: 1 << 20, describe: "empty read: nothing"},
	} {
		lo, hi := aroundRegion(c.off, c.n, c.size)
		if lo != c.lo || hi != c.hi {
			t.Errorf("%s: aroundRegion(%d, %d, %d) = [%d, %d), want [%d, %d)", c.describe, c.off, c.n, c.size, lo, hi, c.lo, c.hi)
		}
	}
}

// TestReadAroundFillsTheKernelCache: once a file is in the disk cache, a read served from it
// brings the rest of its 2 MiB region into the kernel's page cache, and the reads that follow in
// that region are answered without a FUSE request, with the object's bytes. While a handle is
// open for writing nothing is stored.
func TestReadAroundFillsTheKernelCache(t *testing.T) {
	b := memback.New()
	data := randomData(11, 8<<20)
	b.PutBytes("obj", data)
	opts := withDiskCache(t, DefaultOptions(), 1<<20)
	m := metrics.New()
	opts.Metrics = m
	dir := testMount(t, b, opts)
	f, err := os.Open(filepath.Join(dir, "obj"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Reads of exactly what is asked, as fio and databases ask for random reads.
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(3))
	buf := make([]byte, 256<<10)
	readAt := func(off int64) {
		t.Helper()
		n, err := f.ReadAt(buf, off)
		if err != nil || !bytes.Equal(buf[:n], data[off:off+int64(n)]) || n != len(buf) {
			t.Fatalf("ReadAt(%d): %d bytes, %v, or bytes that differ from the object", off, n, err)
		}
	}
	for i := 0; i < 20; i++ {
		readAt(rng.Int63n(int64(len(data)) - int64(len(buf))))
	}
	waitCopied(t, opts, int64(len(data)))
	stored := func() float64 { return m.Value("s3mount_read_around_bytes_total") }
	waitStored := func(want float64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); stored() < want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%v bytes stored around reads, want %v", stored(), want)
			}
		}
	}
	reads := func() float64 { return m.Value("s3mount_fuse_ops_total", "op", "read") }
	// dropCache drops the file's pages from the kernel's cache, once the stores that earlier
	// reads started have landed.
	dropCache := func() {
		t.Helper()
		for last := -1.0; stored() != last; time.Sleep(200 * time.Millisecond) {
			last = stored()
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
	}

	dropCache()
	before := stored()
	readAt(2<<20 + 512<<10) // in the region [2 MiB, 4 MiB)
	waitStored(before + 2<<20 - 256<<10)
	r0 := reads()
	for off := int64(2 << 20); off < 4<<20; off += int64(len(buf)) {
		readAt(off)
	}
	if r := reads(); r != r0 {
		t.Errorf("%v FUSE reads in the region stored around the first, want 0", r-r0)
	}
	readAt(5 << 20) // another region
	if r := reads(); r != r0+1 {
		t.Errorf("%v FUSE reads for a read in the next region, want 1", r-r0)
	}
	waitStored(before + 2*(2<<20-256<<10))

	// A handle open for writing: reads are served as before, nothing is stored.
	w, err := os.OpenFile(filepath.Join(dir, "obj"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	dropCache()
	before, r0 = stored(), reads()
	readAt(6 << 20)
	readAt(6<<20 + 512<<10)
	time.Sleep(100 * time.Millisecond)
	if s := stored(); s != before {
		t.Errorf("%v bytes stored around reads while a writer is open, want 0", s-before)
	}
	if r := reads(); r != r0+2 {
		t.Errorf("%v FUSE reads while a writer is open, want 2", r-r0)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReadAroundWaitsForOlderVersionsToClose: while a handle pinned to an older version of the
// file is open, a handle on the new version stores nothing around its reads (the page cache is
// the file's, and the old handle reads through it), and each handle reads its own version; once
// the old handle is closed, stores resume.
func TestReadAroundWaitsForOlderVersionsToClose(t *testing.T) {
	b := memback.New()
	const size = 8 << 20
	va, vb := randomData(21, size), randomData(22, size)
	b.PutBytes("obj", va)
	opts := withDiskCache(t, noCacheOptions(), 1<<20)
	m := metrics.New()
	opts.Metrics = m
	dir := testMount(t, b, opts)
	path := filepath.Join(dir, "obj")
	buf := make([]byte, 256<<10)
	open := func() *os.File {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
			t.Fatal(err)
		}
		return f
	}
	readAt := func(f *os.File, off int64, want []byte) {
		t.Helper()
		n, err := f.ReadAt(buf, off)
		if err != nil || n != len(buf) || !bytes.Equal(buf, want[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d): %d bytes, %v, or bytes of another version", off, n, err)
		}
	}
	// Reads far enough apart to count as random, which has the disk cache copy the version.
	randomReads := func(f *os.File, want []byte) {
		t.Helper()
		for _, off := range []int64{7 << 20, 4 << 20, 6 << 20, 3 << 20, 5 << 20} {
			readAt(f, off, want)
		}
	}
	stored := func() float64 { return m.Value("s3mount_read_around_bytes_total") }

	old := open()
	defer old.Close()
	randomReads(old, va)
	waitCopied(t, opts, size)
	b.PutBytes("obj", vb)
	cur := open()
	defer cur.Close()
	randomReads(cur, vb)
	waitCopiedN(t, opts, 2, size)
	before := stored()
	for off := int64(0); off < size; off += 1 << 20 {
		readAt(cur, off, vb)
		readAt(old, off+512<<10, va)
	}
	time.Sleep(200 * time.Millisecond)
	if s := stored(); s != before {
		t.Errorf("%v bytes stored around reads while a handle on the older version was open, want 0", s-before)
	}
	for off := int64(0); off < size; off += 1 << 20 {
		readAt(old, off, va)
		readAt(cur, off+512<<10, vb)
	}

	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	again := open()
	defer again.Close()
	readAt(again, 3<<20, vb)
	for deadline := time.Now().Add(10 * time.Second); stored() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing stored around reads after the older version's handle closed")
		}
	}
	for off := int64(0); off < size; off += 256 << 10 {
		readAt(again, off, vb)
	}
}
