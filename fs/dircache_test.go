package fs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend/memback"
)

// shortTTLOptions makes the kernel forget names after 100 ms, so that lookups reach the
// filesystem again while its listings (5× the TTL) are still fresh.
func shortTTLOptions() Options {
	o := DefaultOptions()
	o.EntryTTL, o.AttrTTL, o.NegativeTTL = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	return o
}

// TestNewDirectoryNeedsNoLookups: files created in a directory this mount just made cost their
// PUT alone (no HEAD or LIST to find that the name is free), the listing kept by the mount knows
// them and their attributes afterwards, and it forgets what is removed. Another client's object
// appears once the listing is older than its TTL.
func TestNewDirectoryNeedsNoLookups(t *testing.T) {
	b := memback.New()
	opts := DefaultOptions()
	const ttl = 200 * time.Millisecond
	opts.EntryTTL, opts.AttrTTL, opts.NegativeTTL = ttl, ttl, ttl
	mnt := testMount(t, b, opts)
	names(t, mnt) // the parent's listing, which mkdir then keeps up to date
	dir := filepath.Join(mnt, "new")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.ResetCalls()
	for i := 0; i < 30; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), []byte("content"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f00", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if h, l := b.Calls(memback.OpHead), b.Calls(memback.OpList); h != 0 || l != 0 {
		t.Errorf("creating 30 files, a symlink and a directory in a new directory: %d HEADs and %d LISTs, want none", h, l)
	}
	if err := os.Remove(filepath.Join(dir, "f01")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 50*time.Millisecond) // the kernel has forgotten the names; the listing has not
	b.ResetCalls()
	for name, want := range map[string]os.FileMode{"f00": 0o600, "link": os.ModeSymlink | 0o777, "sub": os.ModeDir | 0o700} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("lstat %s: %v", name, err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "f01")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lstat of a removed file: %v, want ENOENT", err)
	}
	if h, l := b.Calls(memback.OpHead), b.Calls(memback.OpList); h != 0 || l != 0 {
		t.Errorf("looking up what this mount made: %d HEADs and %d LISTs, want none", h, l)
	}

	// Past the listing's TTL (5× the metadata TTL), the next lookup lists the directory again,
	// once, and creating files goes on without a request per name; another client's object shows.
	b.PutBytes("new/remote", []byte("from elsewhere"))
	time.Sleep(5*ttl + 200*time.Millisecond)
	var heads, lists atomic.Int32 // about the directory's entries (the root's own refresh aside)
	b.SetFault(func(op memback.Op, key string) error {
		switch {
		case op == memback.OpHead && strings.HasPrefix(key, "new/"):
			heads.Add(1)
		case op == memback.OpList && strings.HasPrefix(key, "new/"):
			lists.Add(1)
		}
		return nil
	})
	for i := 30; i < 40; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), []byte("content"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "f00")); err != nil || fi.Mode() != 0o600 {
		t.Errorf("lstat f00 after the listing was refreshed: %v, %v", fi, err)
	}
	if h, l := heads.Load(), lists.Load(); h != 0 || l != 1 {
		t.Errorf("creating 10 files after the listing expired: %d HEADs and %d LISTs, want 0 and 1", h, l)
	}
	if fi, err := os.Stat(filepath.Join(dir, "remote")); err != nil || fi.Size() != 14 {
		t.Errorf("another client's object after the listing TTL: %v, %v", fi, err)
	}
}

// TestCommitKeepsListedName: a file that a listing showed and that is then rewritten through the
// mount stays visible, with its new content, to lookups that follow within the listing's TTL.
func TestCommitKeepsListedName(t *testing.T) {
	b := memback.New()
	b.PutBytes("dir/a", []byte("old"))
	b.PutBytes("dir/b", []byte("old"))
	mnt := testMount(t, b, shortTTLOptions())
	dir := filepath.Join(mnt, "dir")
	if got := names(t, dir); !equal(got, []string{"a", "b"}) {
		t.Fatalf("listing: %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("new content"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if fi, err := os.Stat(filepath.Join(dir, "a")); err != nil || fi.Size() != 11 {
		t.Fatalf("stat after rewrite: %v, %v", fi, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "a")); err != nil || string(got) != "new content" {
		t.Errorf("read after rewrite: %q, %v", got, err)
	}
}

// TestFailedUnlinkForgetsListing: when a delete fails, the listing cannot say whether the object
// is still there, so it is forgotten and the next lookup asks S3.
func TestFailedUnlinkForgetsListing(t *testing.T) {
	b := memback.New()
	b.PutBytes("dir/a", []byte("x"))
	mnt := testMount(t, b, shortTTLOptions())
	dir := filepath.Join(mnt, "dir")
	names(t, dir)
	b.SetFault(func(op memback.Op, key string) error {
		if op == memback.OpDelete {
			return errors.New("injected: delete failed")
		}
		return nil
	})
	if err := os.Remove(filepath.Join(dir, "a")); err == nil {
		t.Fatal("unlink succeeded despite the failing delete")
	}
	b.SetFault(nil)
	time.Sleep(150 * time.Millisecond)
	b.ResetCalls()
	if _, err := os.Stat(filepath.Join(dir, "a")); err != nil {
		t.Errorf("stat after a failed unlink: %v", err)
	}
	if b.Calls(memback.OpHead)+b.Calls(memback.OpGet) == 0 {
		t.Error("the lookup after a failed unlink did not ask S3")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a missing name: %v", err)
	}
}

// TestRootListedAtMount: the mount lists its root directory (if it fits a page), so the first
// component of a path, and a name that is not there, cost no request.
func TestRootListedAtMount(t *testing.T) {
	b := memback.New()
	b.PutBytes("data/seq", []byte("content"))
	b.PutBytes("top", []byte("x"))
	var about atomic.Int32  // requests about the root's entries themselves
	var visible atomic.Bool // the mount was visible while the root was being listed
	mountsBefore := fuseMounts(t)
	b.SetFault(func(op memback.Op, key string) error {
		if key == "data" || key == "data/" || key == "nope" || key == "nope/" {
			about.Add(1)
		}
		if op == memback.OpList && key == "" && fuseMounts(t) != mountsBefore {
			visible.Store(true)
		}
		return nil
	})
	mnt := testMount(t, b, DefaultOptions())
	if visible.Load() {
		t.Error("the mount appeared before the root was listed: a program waiting for it races with the listing")
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "data/seq")); err != nil || string(got) != "content" {
		t.Fatalf("read data/seq: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a missing name: %v", err)
	}
	if n := about.Load(); n != 0 {
		t.Errorf("%d requests to look up names of the root, want none", n)
	}
}

// fuseMounts counts this process's FUSE mounts of s3mount.
func fuseMounts(t *testing.T) int {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), " fuse.s3mount ")
}

// TestNewFileAtAnOldNameIsANewFile: a node renamed away from a name keeps the inode number made
// from that name, and an unlinked file still open keeps its own; a file created at the name
// afterwards must be a file of its own, not the old one under a second name.
func TestNewFileAtAnOldNameIsANewFile(t *testing.T) {
	b := memback.New()
	mnt := testMount(t, b, DefaultOptions())
	path := func(n string) string { return filepath.Join(mnt, n) }
	write := func(n, content string) {
		t.Helper()
		if err := os.WriteFile(path(n), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(n, want string) {
		t.Helper()
		if got, err := os.ReadFile(path(n)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", n, got, err, want)
		}
	}
	write("a", "first")
	if err := os.Rename(path("a"), path("b")); err != nil {
		t.Fatal(err)
	}
	write("a", "second, longer")
	expect("b", "first")
	expect("a", "second, longer")

	write("c", "old")
	f, err := os.Open(path("c"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(path("c")); err != nil {
		t.Fatal(err)
	}
	write("c", "new content")
	expect("c", "new content")
	if got, err := io.ReadAll(f); err != nil || string(got) != "old" {
		t.Errorf("the unlinked file, still open: %q, %v", got, err)
	}
}

// TestRootOfMoreThanAPageIsNotListedAtMount: the root's listing at mount stops after its first
// page when there are more, and lookups then ask S3 about each name (a name on a later page is
// found, not taken as missing).
func TestRootOfMoreThanAPageIsNotListedAtMount(t *testing.T) {
	b := memback.New()
	for i := 0; i < 5; i++ {
		b.PutBytes(fmt.Sprintf("f%d", i), []byte("x"))
	}
	var rootLists, about atomic.Int32
	b.SetFault(func(op memback.Op, key string) error {
		switch {
		case op == memback.OpList && key == "":
			rootLists.Add(1)
		case strings.HasPrefix(key, "f4"):
			about.Add(1)
		}
		return nil
	})
	o := DefaultOptions()
	o.ListPageSize = 2
	mnt := testMount(t, b, o)
	if n := rootLists.Load(); n != 2 {
		t.Errorf("%d LISTs of the root at mount, want 2 (its first page, and one key past it)", n)
	}
	if fi, err := os.Stat(filepath.Join(mnt, "f4")); err != nil || fi.Size() != 1 {
		t.Errorf("stat of a name on the root's last page: %v, %v", fi, err)
	}
	if about.Load() == 0 {
		t.Error("f4 was looked up without asking S3: the root's first page was taken as its whole listing")
	}
	if _, err := os.Stat(filepath.Join(mnt, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a missing name: %v", err)
	}
}

// TestListingIsNotRefreshedAfterAQuietSpell: a listing that expired more than one listing TTL ago
// (the directory was not in use) is not taken again for one lookup; the lookup asks S3 about the
// name alone.
func TestListingIsNotRefreshedAfterAQuietSpell(t *testing.T) {
	b := memback.New()
	for i := 0; i < 3; i++ {
		b.PutBytes(fmt.Sprintf("dir/f%d", i), []byte("x"))
	}
	mnt := testMount(t, b, shortTTLOptions())
	dir := filepath.Join(mnt, "dir")
	if got := names(t, dir); len(got) != 3 {
		t.Fatalf("listing: %q", got)
	}
	var full, one atomic.Int32
	b.SetFault(func(op memback.Op, key string) error {
		switch {
		case op == memback.OpList && key == "dir/":
			full.Add(1)
		case op == memback.OpList && key == "dir/new/":
			one.Add(1)
		}
		return nil
	})
	// Looked up relative to the open directory: a path would look "dir" up in the root again,
	// with its own one-key LIST of "dir/".
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ttl := 5 * shortTTLOptions().EntryTTL // the listing's TTL
	time.Sleep(2*ttl + 200*time.Millisecond)
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.Fd()), "new", &st, 0); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat of a missing name: %v", err)
	}
	if f, o := full.Load(), one.Load(); f != 0 || o != 1 {
		t.Errorf("a lookup after a quiet spell: %d LISTs of the directory and %d of the name, want 0 and 1", f, o)
	}
}

// listCounter counts, from now on, the LISTs of the directory prefix dir (a page of it) and those
// that ask about one name in it (a lookup's one-key LIST of "dir/name/").
func listCounter(b *memback.Backend, dir string) (full, one *atomic.Int32) {
	full, one = new(atomic.Int32), new(atomic.Int32)
	b.SetFault(func(op memback.Op, key string) error {
		switch {
		case op != memback.OpList:
		case key == dir:
			full.Add(1)
		case strings.HasPrefix(key, dir):
			one.Add(1)
		}
		return nil
	})
	return full, one
}

// TestLookupsByNameListTheDirectory: a program that opens files of a directory by name, without
// listing it, costs a GET and a LIST per name only for the first lookupsBeforeListing names; then
// the directory is listed once and answers the rest, and names it lacks, without a LIST each. A
// directory that fills a page exactly counts as one page also where the server marks a full page
// as truncated (MinIO): one more LIST of one key tells.
func TestLookupsByNameListTheDirectory(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pageSize  int
		truncated bool
		wantFull  int32
	}{
		{"less than a page", 1000, false, 1},
		{"a full page marked truncated", 50, true, 2},
		{"three pages", 20, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memback.New()
			for i := 0; i < 50; i++ {
				b.PutBytes(fmt.Sprintf("dir/f%02d", i), make([]byte, i+1))
			}
			b.SetFullPagesTruncated(tc.truncated)
			o := DefaultOptions()
			o.ListPageSize = tc.pageSize
			mnt := testMount(t, b, o)
			b.ResetCalls()
			full, one := listCounter(b, "dir/")
			for i := 0; i < 20; i++ {
				fi, err := os.Stat(filepath.Join(mnt, "dir", fmt.Sprintf("f%02d", i)))
				if err != nil || fi.Size() != int64(i+1) {
					t.Fatalf("stat of f%02d: %v, %v", i, fi, err)
				}
			}
			if _, err := os.Stat(filepath.Join(mnt, "dir", "nope")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat of a missing name: %v", err)
			}
			if f, o := full.Load(), one.Load(); f != tc.wantFull || o != lookupsBeforeListing {
				t.Errorf("20 names and a missing one looked up: %d LISTs of the directory and %d of single names, want %d and %d", f, o, tc.wantFull, lookupsBeforeListing)
			}
			// Each lookup's own GET answers it (and brings the block a read wants); no HEADs are
			// sent ahead, as they are after a readdir.
			if n := b.Calls(memback.OpHead); n != 0 {
				t.Errorf("%d HEADs, want none", n)
			}
		})
	}
}

// TestLargeDirectoryIsNotListedForLookups: a directory of more than lookupListPages pages is tried
// once, then its names are looked up one at a time for listBackoff, without another try.
func TestLargeDirectoryIsNotListedForLookups(t *testing.T) {
	b := memback.New()
	for i := 0; i < 50; i++ {
		b.PutBytes(fmt.Sprintf("dir/f%02d", i), []byte("x"))
	}
	o := DefaultOptions()
	o.ListPageSize = 10
	mnt := testMount(t, b, o)
	full, one := listCounter(b, "dir/")
	for i := 0; i < 20; i++ {
		if _, err := os.Stat(filepath.Join(mnt, "dir", fmt.Sprintf("f%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// The directory's first lookupListPages pages and a look one key past them, once.
	if f, o := full.Load(), one.Load(); f != lookupListPages+1 || o != 20 {
		t.Errorf("20 names looked up in a directory of 5 pages: %d LISTs of the directory and %d of single names, want %d and 20", f, o, lookupListPages+1)
	}
}

// TestFailedListingBacksOff: a directory whose listing for lookups failed is not tried again for
// listBackoff either; its names are looked up one at a time meanwhile.
func TestFailedListingBacksOff(t *testing.T) {
	b := memback.New()
	for i := 0; i < 20; i++ {
		b.PutBytes(fmt.Sprintf("dir/f%02d", i), []byte("x"))
	}
	mnt := testMount(t, b, DefaultOptions())
	var full atomic.Int32
	b.SetFault(func(op memback.Op, key string) error {
		if op == memback.OpList && key == "dir/" {
			full.Add(1)
			return errors.New("injected: LIST failed")
		}
		return nil
	})
	for i := 0; i < 20; i++ {
		if _, err := os.Stat(filepath.Join(mnt, "dir", fmt.Sprintf("f%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := full.Load(); n != 1 {
		t.Errorf("%d LISTs of the directory after one failed, want 1", n)
	}
}

// TestListingsAreFreedAfterUse: a directory's listing is kept while it can answer lookups or
// decide a refresh (twice the listing TTL), then freed, so that a tree that was listed once does
// not hold its listings for as long as the kernel remembers its directories. A directory listed
// again after that lists as before.
func TestListingsAreFreedAfterUse(t *testing.T) {
	b := memback.New()
	for i := 0; i < 300; i++ {
		b.PutBytes(fmt.Sprintf("d%d/f%03d", i%3, i), []byte("x"))
	}
	mnt, r := testMountRoot(t, b, shortTTLOptions()) // listings live 0.5 s, and are swept each second
	for i := 0; i < 3; i++ {
		if n := len(names(t, filepath.Join(mnt, fmt.Sprintf("d%d", i)))); n != 100 {
			t.Fatalf("d%d lists %d names, want 100", i, n)
		}
	}
	if n := r.listings.len(); n < 3 {
		t.Fatalf("%d listings held right after listing three directories, want at least 3", n)
	}
	for deadline := time.Now().Add(5 * time.Second); r.listings.len() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d listings still held 5 s after their use", r.listings.len())
		}
	}
	d1 := r.dir.GetChild("d1").Operations().(*Dir)
	d1.lc.mu.Lock()
	held := d1.lc.entries != nil || d1.lc.order != nil
	d1.lc.mu.Unlock()
	if held {
		t.Errorf("d1's listing is out of the set but still holds its entries")
	}
	if n := len(names(t, filepath.Join(mnt, "d1"))); n != 100 {
		t.Errorf("d1 lists %d names after its listing was freed, want 100", n)
	}
	if r.listings.len() == 0 {
		t.Errorf("the new listing of d1 is not held")
	}
}

// TestMemoryPerEntry: after `ls -l` of a large directory, once its listing is freed (see
// TestListingsAreFreedAfterUse), the filesystem holds less than 1 KiB per entry, the nodes the
// kernel still refers to (1,000,000 entries: under 1 GiB, until the kernel forgets them). It is
// the growth from listing a second directory as large as the first: the first also brings the
// mount's fixed costs (go-fuse's request buffers, one per reader it started), several MiB.
func TestMemoryPerEntry(t *testing.T) {
	const n = 5000
	b := memback.New()
	for _, dir := range []string{"big1", "big2"} {
		for i := 0; i < n; i++ {
			b.PutBytes(fmt.Sprintf("%s/part-%05d-of-a-typical-dataset.parquet", dir, i), []byte("x"))
		}
	}
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapInuse)
	}
	for _, la := range []bool{false, true} {
		opts := shortTTLOptions()
		opts.ListingAttrs = la
		mnt, r := testMountRoot(t, b, opts)
		lsAndFree := func(dir string) int64 {
			if entries, _ := lsLong(t, filepath.Join(mnt, dir)); len(entries) != n {
				t.Fatalf("listed %d entries, want %d", len(entries), n)
			}
			for deadline := time.Now().Add(10 * time.Second); r.listings.len() > 0; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("listings not freed")
				}
			}
			return heap()
		}
		start := heap()
		first := lsAndFree("big1")
		per := (lsAndFree("big2") - first) / n
		t.Logf("listing_attrs=%v: %d bytes per entry (and %d KiB fixed)", la, per, (first-start-per*n)>>10)
		if per > 1024 {
			t.Errorf("listing_attrs=%v: %d bytes per entry after ls -l, want under 1 KiB", la, per)
		}
	}
}
