package fs

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

var fuseDebug = flag.Bool("fuse-debug", false, "log every FUSE request in tests")

// testMount mounts a filesystem over b in a temporary directory and unmounts it when the test
// ends, also when it fails.
func testMount(t *testing.T, b *memback.Backend, opts Options) string {
	t.Helper()
	dir, _ := testMountRoot(t, b, opts)
	return dir
}

// testMountRoot is testMount that also returns the filesystem's Root.
func testMountRoot(t *testing.T, b *memback.Backend, opts Options) (string, *Root) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	dir := t.TempDir()
	opts.Debug = opts.Debug || *fuseDebug
	if opts.StagingDir == DefaultOptions().StagingDir {
		opts.StagingDir = t.TempDir()
	}
	root, err := NewRoot(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Mount(dir, root)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	mounted.Lock()
	mounted.dirs[dir] = true
	mounted.Unlock()
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		// Wait for the server to stop and the root to release what it holds (the cache's
		// goroutines, the journal, the disk cache), as the daemon does.
		stopped := make(chan struct{})
		go func() { srv.Wait(); root.Close(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Errorf("the server did not stop within 10 s of the unmount")
		}
		mounted.Lock()
		delete(mounted.dirs, dir)
		mounted.Unlock()
	})
	return dir, root
}

// noCacheOptions turns kernel caching off so each step reaches the filesystem.
func noCacheOptions() Options {
	o := DefaultOptions()
	o.EntryTTL, o.AttrTTL, o.NegativeTTL = 0, 0, 0
	return o
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

// lsLong does what `ls -l` does in dir: reads the whole directory, then stats every name. It
// returns the entries and their stats.
func lsLong(t *testing.T, dir string) ([]os.DirEntry, []os.FileInfo) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	stats := make([]os.FileInfo, len(entries))
	for i, e := range entries {
		if stats[i], err = os.Lstat(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return entries, stats
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestListingMapsKeysToTree(t *testing.T) {
	b := memback.New()
	for _, k := range []string{
		"p/a.txt", "p/b/", "p/b/c.txt", "p/d/e/f.txt", // plain files, a marker, an implicit directory
		"p/x", "p/x-1", "p/x/y", // "x" is both a file and a prefix: the directory shadows it
		"p/", "p//bad", "p/./dot", "p/../up", // the mount's own marker and keys that cannot be names
		"other/z.txt", // outside the prefix
	} {
		b.PutBytes(k, []byte(k))
	}
	opts := noCacheOptions()
	opts.Prefix = "p/"
	opts.ListPageSize = 2 // force many pages, with the x / x-1 / x/ run across a page boundary
	mnt := testMount(t, b, opts)

	want := []string{"a.txt", "b/", "d/", "x/", "x-1"}
	if got := names(t, mnt); !equal(got, want) {
		t.Errorf("root listing = %q, want %q", got, want)
	}
	if got, want := names(t, filepath.Join(mnt, "x")), []string{"y"}; !equal(got, want) {
		t.Errorf("x/ listing = %q, want %q", got, want)
	}
	if got, want := names(t, filepath.Join(mnt, "d")), []string{"e/"}; !equal(got, want) {
		t.Errorf("d/ listing = %q, want %q", got, want)
	}
	st, err := os.Stat(filepath.Join(mnt, "x"))
	if err != nil || !st.IsDir() {
		t.Errorf("stat x: %v, dir=%v; want a directory", err, err == nil && st.IsDir())
	}
	for _, hidden := range []string{"..", "other", "bad"} {
		if _, err := os.Stat(filepath.Join(mnt, "b", hidden, "z.txt")); err == nil {
			t.Errorf("%s reachable through the mount", hidden)
		}
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "b", "c.txt")); err != nil || string(got) != "p/b/c.txt" {
		t.Errorf("read b/c.txt = %q, %v", got, err)
	}
}

func TestReadsAreByteIdentical(t *testing.T) {
	b := memback.New()
	rng := rand.New(rand.NewSource(1))
	sizes := map[string]int{"empty": 0, "one": 1, "odd": 3<<20 + 17, "big": 9 << 20}
	data := map[string][]byte{}
	for name, n := range sizes {
		buf := make([]byte, n)
		rng.Read(buf)
		data[name] = buf
		b.PutBytes(name, buf)
	}
	mnt := testMount(t, b, DefaultOptions())
	for name, want := range data {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes (err %v), want %d identical bytes", name, len(got), err, len(want))
		}
		st, err := os.Stat(filepath.Join(mnt, name))
		if err != nil || st.Size() != int64(len(want)) {
			t.Errorf("%s: stat size %v (err %v), want %d", name, st.Size(), err, len(want))
		}
	}
	// Random ranges, including across ends and past EOF.
	f, err := os.Open(filepath.Join(mnt, "odd"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := data["odd"]
	for i := 0; i < 50; i++ {
		off := rng.Int63n(int64(len(want)) + 100)
		buf := make([]byte, rng.Intn(300000))
		n, _ := f.ReadAt(buf, off)
		end := min(off+int64(len(buf)), int64(len(want)))
		if off > int64(len(want)) {
			end = off
		}
		if !bytes.Equal(buf[:n], want[min(off, int64(len(want))):end]) {
			t.Fatalf("ReadAt(%d, %d) returned %d bytes that differ from the object", off, len(buf), n)
		}
	}
}

func TestLsLongCostsOneHeadPerFile(t *testing.T) {
	b := memback.New()
	for i := 0; i < 300; i++ {
		b.PutBytes(filepath.Join("dir", string(rune('a'+i%26))+string(rune('a'+i/26))), []byte("x"))
	}
	for i := 0; i < 20; i++ {
		b.PutBytes(filepath.Join("dir", "sub"+string(rune('a'+i)), "f"), []byte("x"))
	}
	opts := DefaultOptions()
	opts.ListPageSize = 100
	mnt := testMount(t, b, opts)
	if _, err := os.Stat(filepath.Join(mnt, "dir")); err != nil {
		t.Fatal(err)
	}
	b.ResetCalls()
	entries, _ := lsLong(t, filepath.Join(mnt, "dir"))
	if len(entries) != 320 {
		t.Errorf("listed %d entries, want 320", len(entries))
	}
	// Files need their stored attributes (mode, owner, mtime): one request each (HEADs, started
	// ahead; the first file's lookup GETs its first block instead). Directories come from the
	// listing alone, and no entry costs a LIST of its own.
	if h, g := b.Calls(memback.OpHead), b.Calls(memback.OpGet); h+g != 300 || g > 1 {
		t.Errorf("ls -l made %d HEAD and %d GET requests, want 300 HEADs (one per file), or 299 and the first file's GET", h, g)
	}
	if n := b.Calls(memback.OpList); n != 4 {
		t.Errorf("ls -l made %d LIST requests, want 4 (the pages of the listing)", n)
	}
}

func TestMissingAndDeniedErrnos(t *testing.T) {
	b := memback.New()
	b.PutBytes("ok.txt", []byte("fine"))
	b.PutBytes("secret/key.txt", []byte("no"))
	b.SetFault(func(op memback.Op, key string) error {
		if filepath.Dir(key) == "secret" && op == memback.OpGet {
			return &os.PathError{Op: "get", Path: key, Err: os.ErrPermission}
		}
		return nil
	})
	mnt := testMount(t, b, noCacheOptions())
	if _, err := os.Stat(filepath.Join(mnt, "missing")); !os.IsNotExist(err) {
		t.Errorf("stat missing: %v, want ENOENT", err)
	}
	_, err := os.ReadFile(filepath.Join(mnt, "secret", "key.txt"))
	if !os.IsPermission(err) {
		t.Errorf("read denied object: %v, want EACCES", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, string(bytes.Repeat([]byte("n"), 256)))); !errorIs(err, syscall.ENAMETOOLONG) {
		t.Errorf("stat of a 256-byte name: %v, want ENAMETOOLONG", err)
	}
}

func errorIs(err error, errno syscall.Errno) bool {
	pe, ok := err.(*os.PathError)
	return ok && pe.Err == errno
}

func TestRemoteChangesAppearAfterTTL(t *testing.T) {
	b := memback.New()
	opts := DefaultOptions()
	opts.EntryTTL, opts.AttrTTL = 50*time.Millisecond, 50*time.Millisecond
	mnt := testMount(t, b, opts)
	b.PutBytes("new.txt", []byte("hello"))
	time.Sleep(100 * time.Millisecond)
	got := names(t, mnt)
	sort.Strings(got)
	if !equal(got, []string{"new.txt"}) {
		t.Errorf("listing after remote put = %q", got)
	}
}

func TestReplacedObjectUnderOpenHandleIsStale(t *testing.T) {
	b := memback.New()
	b.PutBytes("f", bytes.Repeat([]byte("a"), 1<<20))
	mnt := testMount(t, b, noCacheOptions())
	f, err := os.Open(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf[:1], 0); err != nil { // the handle has read the old version
		t.Fatal(err)
	}
	b.PutBytes("f", bytes.Repeat([]byte("b"), 1<<20))
	_, err = f.ReadAt(buf, 512<<10) // past the first block, which the lookup brought
	if !errorIs(err, syscall.ESTALE) {
		t.Errorf("read after the object was replaced: %v, want ESTALE", err)
	}
	// A new open sees the new version.
	got, err := os.ReadFile(filepath.Join(mnt, "f"))
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("b"), 1<<20)) {
		t.Errorf("reopen after replacement: %d bytes, %v", len(got), err)
	}
}

// TestPinnedHandleDoesNotLeakIntoANewVersion: the kernel's page cache is per file, not per handle.
// A handle pinned to the version it opened still reads that version's bytes from memory after the
// object is replaced; those bytes must never reach a handle opened on the new version, and the
// new version's bytes never the old handle.
func TestPinnedHandleDoesNotLeakIntoANewVersion(t *testing.T) {
	b := memback.New()
	const size = 1 << 20
	va, vb := bytes.Repeat([]byte("a"), size), bytes.Repeat([]byte("b"), size)
	b.PutBytes("f", va)
	mnt := testMount(t, b, noCacheOptions())
	path := filepath.Join(mnt, "f")
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	buf := make([]byte, size)
	readAll := func(f *os.File, want []byte, what string) {
		t.Helper()
		clear(buf)
		if n, err := f.ReadAt(buf, 0); n != size || err != nil && err != io.EOF {
			t.Fatalf("%s: read %d bytes: %v", what, n, err)
		}
		if i := firstDiff(buf, want); i >= 0 {
			t.Fatalf("%s: byte %d is %q, want %q", what, i, buf[i], want[i])
		}
	}
	readAll(old, va, "old handle, first read") // the whole version is now in memory
	b.PutBytes("f", vb)
	cur, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	readAll(old, va, "old handle after the replacement")
	readAll(cur, vb, "new handle")
	readAll(old, va, "old handle after the new handle's reads")
	readAll(cur, vb, "new handle, again")
}

// TestRenameDoesNotRepinAnOlderHandle: a rename moves the handles reading the version it copied to
// the copy; a handle pinned to an older version is not moved onto the copy of a newer one, even
// when the mount had not seen the newer one before the rename.
func TestRenameDoesNotRepinAnOlderHandle(t *testing.T) {
	b := memback.New()
	const size = 1 << 20
	b.PutBytes("f", bytes.Repeat([]byte("a"), size))
	mnt := testMount(t, b, noCacheOptions())
	old, err := os.Open(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	b.PutBytes("f", bytes.Repeat([]byte("b"), size)) // the mount has not seen it: the rename copies it
	if err := os.Rename(filepath.Join(mnt, "f"), filepath.Join(mnt, "g")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := old.ReadAt(buf, 512<<10) // past the first block, which the lookup brought
	if i := bytes.IndexByte(buf[:n], 'b'); i >= 0 {
		t.Fatalf("the old handle read the new version's bytes after the rename (%d bytes, %v)", n, err)
	}
	if !errorIs(err, syscall.ESTALE) {
		t.Errorf("the old handle read %d bytes of a version S3 no longer has (%v); want ESTALE", n, err)
	}
}

// firstDiff returns the first index where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestLsLongHEADsRunAhead: when a directory is listed (READDIRPLUS or a listing followed by a stat
// of every name), the files' HEADs run in parallel ahead of the lookups, not one after another.
// (Asserted on the number of HEADs in flight, not on time.)
func TestLsLongHEADsRunAhead(t *testing.T) {
	b := memback.New()
	for i := 0; i < 1000; i++ {
		b.PutBytes(fmt.Sprintf("list/obj-%05d", i), []byte("x"))
	}
	var inFlight, peak atomic.Int32
	b.SetFault(func(op memback.Op, key string) error {
		if op == memback.OpHead {
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Millisecond)
			inFlight.Add(-1)
		}
		return nil
	})
	mnt := testMount(t, b, DefaultOptions())
	if entries, _ := lsLong(t, filepath.Join(mnt, "list")); len(entries) != 1000 {
		t.Fatalf("listed %d entries, want 1000", len(entries))
	}
	if p := peak.Load(); p < 8 {
		t.Errorf("at most %d HEADs were in flight; want them to run ahead in parallel", p)
	}
	if n := b.Calls(memback.OpList); n > 2 {
		t.Errorf("%d LISTs: the lookups after the listing should need none", n)
	}
}

// TestLsLongWithListingAttrs: with ListingAttrs, `ls -l` costs the LIST pages alone, files show the
// listing's size and the default mode; a file changed through the mount keeps the attributes
// stored on it (they are read before the commit writes them back).
func TestLsLongWithListingAttrs(t *testing.T) {
	b := memback.New()
	for i := 0; i < 300; i++ {
		b.PutBytes(fmt.Sprintf("dir/f%03d", i), []byte("xy"))
	}
	stored := map[string]string{"mode": strconv.Itoa(syscall.S_IFREG | 0o600), "uid": "1234", "mtime": "1600000000"}
	if _, err := b.Put(context.Background(), "dir/kept", bytes.NewReader([]byte("abc")), 3, backend.PutOptions{Meta: stored}); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.ListPageSize = 100
	opts.ListingAttrs = true
	mnt := testMount(t, b, opts)
	if _, err := os.Stat(filepath.Join(mnt, "dir")); err != nil {
		t.Fatal(err)
	}
	b.ResetCalls()
	entries, stats := lsLong(t, filepath.Join(mnt, "dir"))
	for i, e := range entries {
		st := stats[i]
		if want := int64(2 + btoi(e.Name() == "kept")); st.Size() != want || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: size %d mode %v, want %d and the default 0644", e.Name(), st.Size(), st.Mode(), want)
		}
	}
	if len(entries) != 301 {
		t.Errorf("listed %d entries, want 301", len(entries))
	}
	if n := b.Calls(memback.OpHead); n != 0 {
		t.Errorf("ls -l made %d HEAD requests, want none", n)
	}
	if n := b.Calls(memback.OpList); n != 4 {
		t.Errorf("ls -l made %d LIST requests, want 4 (the pages of the listing)", n)
	}
	f, err := os.OpenFile(filepath.Join(mnt, "dir", "kept"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := b.Head(context.Background(), "dir/kept")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range stored {
		if k != "mtime" && info.Meta[k] != v {
			t.Errorf("after a write, stored %s = %q, want %q kept", k, info.Meta[k], v)
		}
	}
	if got, _ := b.Bytes("dir/kept"); string(got) != "abcd" {
		t.Errorf("content %q, want abcd", got)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestKernelReadahead: the mount's kernel read-ahead is raised from FUSE's 128 KiB (as root).
func TestKernelReadahead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	opts := DefaultOptions()
	opts.KernelReadahead = 2 << 20
	mnt := testMount(t, memback.New(), opts)
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", st.Dev>>8&0xfff, st.Dev&0xff|st.Dev>>12&0xfff00))
	if err != nil {
		t.Fatal(err)
	}
	if string(bytes.TrimSpace(got)) != "2048" {
		t.Errorf("read_ahead_kb = %q, want 2048", got)
	}
}

// TestSlowListingStaysCheap: a listing that takes longer than the listing TTL (huge directories)
// still answers its own READDIRPLUS lookups and the stats that follow it: no request per entry.
func TestSlowListingStaysCheap(t *testing.T) {
	b := memback.New()
	for i := 0; i < 300; i++ {
		b.PutBytes(fmt.Sprintf("dir/f%03d", i), []byte("x"))
	}
	var perEntry atomic.Int32 // requests about one entry: a HEAD of it, or a LIST of its prefix
	b.SetFault(func(op memback.Op, key string) error {
		if strings.HasPrefix(key, "dir/f") {
			perEntry.Add(1)
		}
		if op == memback.OpList {
			time.Sleep(400 * time.Millisecond) // three pages take longer than the 1 s listing TTL
		}
		return nil
	})
	opts := DefaultOptions()
	opts.ListPageSize = 100
	opts.ListingAttrs = true
	opts.EntryTTL, opts.AttrTTL = 200*time.Millisecond, 200*time.Millisecond
	mnt := testMount(t, b, opts)
	entries, _ := lsLong(t, filepath.Join(mnt, "dir"))
	if len(entries) != 300 {
		t.Errorf("listed %d entries, want 300", len(entries))
	}
	// (The kernel may look "dir" itself up again: that is its parent's business.)
	if n := perEntry.Load(); n != 0 {
		t.Errorf("ls -l made %d requests about single entries, want none", n)
	}
}

// TestNoXattrs: extended attributes are not supported, and the kernel is told once (ENOSYS), so
// asking again costs no request: callers get EOPNOTSUPP.
func TestNoXattrs(t *testing.T) {
	b := memback.New()
	b.PutBytes("f", []byte("x"))
	mnt := testMount(t, b, DefaultOptions())
	p := filepath.Join(mnt, "f")
	buf := make([]byte, 64)
	for i := 0; i < 2; i++ {
		if _, err := syscall.Getxattr(p, "user.x", buf); err != syscall.EOPNOTSUPP {
			t.Errorf("getxattr: %v, want EOPNOTSUPP", err)
		}
	}
	if err := syscall.Setxattr(p, "user.x", []byte("v"), 0); err != syscall.EOPNOTSUPP {
		t.Errorf("setxattr: %v, want EOPNOTSUPP", err)
	}
	if _, err := syscall.Listxattr(p, buf); err != syscall.EOPNOTSUPP {
		t.Errorf("listxattr: %v, want EOPNOTSUPP", err)
	}
}
