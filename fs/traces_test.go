package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// deepDir makes directories under dir until a name of at most room bytes in the deepest one
// reaches S3's limit; it returns the deepest directory and its key's length.
func deepDir(t *testing.T, dir, prefix string, room int) (string, int) {
	t.Helper()
	keyLen := len(prefix)
	for i := 0; maxKeyLen-keyLen > room; i++ {
		dir = filepath.Join(dir, strings.Repeat(string(rune('a'+i)), 200))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		keyLen += 201
	}
	return dir, keyLen
}

// Keys S3 refuses (over 1,024 bytes, prefix included) fail at create, mkdir, symlink and rename
// with ENAMETOOLONG, before anything is written; names that fit exactly still work.
func TestKeysS3RefusesFailEarly(t *testing.T) {
	b := memback.New()
	opts := DefaultOptions()
	opts.Prefix = "p/"
	mnt := testMount(t, b, opts)
	dir, keyLen := deepDir(t, mnt, opts.Prefix, 250)
	fits := strings.Repeat("f", maxKeyLen-keyLen) // the directory's key (ending in "/") and the name: 1,024 bytes
	long := fits + "x"
	if len(long) > maxNameLen {
		t.Fatalf("test setup: name of %d bytes", len(long))
	}
	before := len(b.Keys())
	isTooLong := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("%s: %v, want ENAMETOOLONG", what, err)
		}
	}
	f, err := os.Create(filepath.Join(dir, long))
	if err == nil {
		f.Close() // a file left open would hang the test's exit on its own mount
	}
	isTooLong("create", err)
	isTooLong("mkdir", os.Mkdir(filepath.Join(dir, fits), 0o755)) // its marker "fits/" is 1,025 bytes
	isTooLong("symlink", os.Symlink("target", filepath.Join(dir, long)))
	if err := os.WriteFile(filepath.Join(mnt, "short"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	isTooLong("rename", os.Rename(filepath.Join(mnt, "short"), filepath.Join(dir, long)))
	// A directory whose objects would get keys too long at the new name is not moved at all.
	if err := os.MkdirAll(filepath.Join(mnt, "s", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "s", "sub", "deeper"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	isTooLong("rename of a directory", os.Rename(filepath.Join(mnt, "s"), filepath.Join(dir, fits[:len(fits)-8])))
	if got := len(b.Keys()); got != before+4 {
		t.Errorf("%d keys written, want only the 4 of short, s/, s/sub/ and s/sub/deeper: %q", got-before, b.Keys())
	}
	// At the limit, every operation works.
	if err := os.WriteFile(filepath.Join(dir, fits), []byte("at the limit"), 0o644); err != nil {
		t.Fatalf("a file whose key is 1,024 bytes: %v", err)
	}
	if _, ok := b.Bytes(opts.Prefix + strings.TrimPrefix(filepath.Join(dir, fits), mnt+"/")); !ok {
		t.Errorf("the file at the limit is not in S3")
	}
}

// An upload S3 started for a request whose answer was lost is aborted once S3 answers: the mount
// sweeps the key for uploads begun within its request's window that it does not use. An upload
// whose abort failed is aborted again until S3 answers.
func TestUnconfirmedUploadsAreAborted(t *testing.T) {
	for _, c := range []struct {
		name  string
		fails int32
		fault func(b *memback.Backend, failing *atomic.Int32)
	}{
		{"answer of create lost", 1, func(b *memback.Backend, failing *atomic.Int32) {
			b.SetLateFault(func(op memback.Op, key string) error {
				if failing.Add(-1) >= 0 {
					return errInjected
				}
				return nil
			})
			var lists atomic.Int32
			b.SetFault(func(op memback.Op, key string) error {
				if op == memback.OpList && key == "f" && lists.Add(1) <= 2 {
					return errInjected // nor does S3 list the key's uploads, at first
				}
				return nil
			})
		}},
		{"complete and aborts fail", 2, func(b *memback.Backend, failing *atomic.Int32) {
			b.SetFault(func(op memback.Op, key string) error {
				if (op == memback.OpComplete || op == memback.OpAbort) && failing.Add(-1) >= 0 {
					return errInjected
				}
				return nil
			})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := memback.New()
			b.PutBytes("f", []byte("previous"))
			mnt := testMount(t, b, writeOptions())
			var failing atomic.Int32
			failing.Store(c.fails)
			c.fault(b, &failing)
			err := os.WriteFile(filepath.Join(mnt, "f"), randomData(2, 12<<20), 0o644)
			if !errorIs(err, syscall.EIO) {
				t.Errorf("writing while S3 fails: %v, want EIO", err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for b.PendingUploads() != 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := b.PendingUploads(); n != 0 {
				t.Errorf("%d multipart uploads left behind", n)
			}
			if got := objectBytes(t, b, "f"); string(got) != "previous" {
				t.Errorf("object = %d bytes, want the previous version intact", len(got))
			}
			data := randomData(3, 12<<20)
			if err := os.WriteFile(filepath.Join(mnt, "f"), data, 0o644); err != nil {
				t.Fatalf("write once S3 answers: %v", err)
			}
			if got := objectBytes(t, b, "f"); !bytes.Equal(got, data) {
				t.Errorf("object after recovery: %d bytes, want the new content", len(got))
			}
		})
	}
}

// A sweep the mount could not finish is recorded in its journal and done by the next mount: it
// aborts the key's uploads begun within the window, and no other upload.
func TestNextMountFinishesASweep(t *testing.T) {
	ctx := context.Background()
	b := memback.New()
	other, err := b.NewUpload(ctx, "p/other", backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	j, err := openJournal(root, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	orphan, err := b.NewUpload(ctx, "p/f", backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j.addSweep("p/f", requestWindow(start))
	j.lock.Close() // the mount dies
	n, err := recoverJournals(ctx, root, b, slog.Default())
	if err != nil || n != 1 {
		t.Fatalf("recovery aborted %d uploads (%v), want 1", n, err)
	}
	ups, _ := b.ListUploads(ctx, "p/")
	if len(ups) != 1 || ups[0].UploadID != other.ID() {
		t.Errorf("uploads left: %v, want only %s (not %s)", ups, other.ID(), orphan.ID())
	}
}

// A new open of a file that another client replaced, while this mount still had the old version
// in its caches, reads one version whole: the new one, or an old one its caches still hold
// whole (within the TTL, here a long one); never ESTALE, which belongs to handles that already
// read the old version.
func TestFreshOpenAfterRemoteReplaceIsNotStale(t *testing.T) {
	for _, cacheSize := range []int64{DefaultOptions().CacheSize, 0} {
		t.Run(fmt.Sprintf("cache %d", cacheSize), func(t *testing.T) { testFreshOpenAfterRemoteReplace(t, cacheSize) })
	}
}

func testFreshOpenAfterRemoteReplace(t *testing.T, cacheSize int64) {
	b := memback.New()
	old := randomData(4, 1<<20)
	b.PutBytes("f", old)
	opts := DefaultOptions()
	opts.CacheSize = cacheSize                             // 0: every read asks S3, so every replacement is found by a read
	opts.EntryTTL, opts.AttrTTL = time.Minute, time.Minute // the old version stays cached throughout
	mnt := testMount(t, b, opts)
	path := filepath.Join(mnt, "f")
	if _, err := os.ReadDir(mnt); err != nil { // the listing caches the old version too
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	versions := [][]byte{old}
	for i := 0; i < 4; i++ {
		next := randomData(byte(10+i), (1<<20)+(i%3-1)*300000) // the same size, larger, smaller
		b.PutBytes("f", next)
		versions = append(versions, next)
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("replacement %d: reading a fresh open: %v", i+1, err)
		}
		whole := false
		for _, v := range versions { // the kernel's and the mount's caches may hold any of them
			whole = whole || bytes.Equal(got, v)
		}
		if cacheSize == 0 && !bytes.Equal(got, next) {
			t.Errorf("replacement %d: read %d bytes, want the new version's %d (nothing caches the old)", i+1, len(got), len(next))
		}
		if !whole {
			for j, v := range versions {
				t.Logf("version %d: %d bytes, prefix of it: %v", j, len(v), bytes.HasPrefix(v, got))
			}
			t.Fatalf("replacement %d: read %d bytes, neither the new version nor the one before whole", i+1, len(got))
		}
	}
}

// A new file whose first commit failed is gone from the mount once its last handle is closed,
// as it is from S3 and from other mounts; the writer had its error at close. A file that S3
// holds (an existing one, or one created with O_EXCL) shows S3's version.
func TestNewFileWhoseCommitFailedIsGone(t *testing.T) {
	b := memback.New()
	b.PutBytes("old", []byte("previous"))
	var failing atomic.Bool
	b.SetFault(func(op memback.Op, key string) error {
		if failing.Load() && (op == memback.OpPut || op == memback.OpCreateMP) && key != "excl" {
			return errInjected
		}
		return nil
	})
	mnt := testMount(t, b, DefaultOptions()) // with the kernel's caches: the name must be dropped there too
	failing.Store(true)
	for _, name := range []string{"new", "old"} {
		if err := os.WriteFile(filepath.Join(mnt, name), []byte("lost"), 0o644); !errorIs(err, syscall.EIO) {
			t.Errorf("%s: write while S3 fails: %v, want EIO", name, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(mnt, "excl"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	failing.Store(false)
	b.SetFault(func(op memback.Op, key string) error {
		if op == memback.OpPut && key == "excl" {
			return errInjected
		}
		return nil
	})
	f.Write([]byte("lost"))
	if err := f.Close(); !errorIs(err, syscall.EIO) {
		t.Errorf("excl: close while S3 fails: %v, want EIO", err)
	}
	b.SetFault(nil)
	deadline := time.Now().Add(5 * time.Second) // the name is dropped after the release, which is asynchronous
	for {
		_, err := os.Stat(filepath.Join(mnt, "new"))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stat of the new file whose commit failed: %v, want ENOENT", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := names(t, mnt); !equal(got, []string{"excl", "old"}) {
		t.Errorf("listing: %q, want excl and old as S3 has them", got)
	}
	for name, want := range map[string]string{"old": "previous", "excl": ""} {
		if got, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q (%v), want %q as S3 has it", name, got, err, want)
		}
	}
	// The name is free again: a new file of that name is written as any other.
	if err := os.WriteFile(filepath.Join(mnt, "new"), []byte("second try"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := objectBytes(t, b, "new"); string(got) != "second try" {
		t.Errorf("S3 holds %q", got)
	}
}

// Visibility of another client's changes: ls shows a new name at its next listing; stat by name
// shows a new name, a replaced file's size and a removal within the life of the directory's
// listing (5 × metadata TTL), even with a long negative TTL, since a "no such file" taken from a
// listing is not cached by the kernel.
func TestVisibilityBoundsFollowTheMetadataTTL(t *testing.T) {
	b := memback.New()
	b.PutBytes("d/f", []byte("first"))
	opts := DefaultOptions()
	const ttl = 200 * time.Millisecond
	opts.EntryTTL, opts.AttrTTL, opts.NegativeTTL = ttl, ttl, time.Hour
	mnt := testMount(t, b, opts)
	dir := filepath.Join(mnt, "d")
	within := func(what string, bound time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(bound + time.Second) // the bound, and slack for a loaded machine
		for !ok() {
			if time.Now().After(deadline) {
				t.Errorf("%s: not within %v", what, bound)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := os.ReadDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "n")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a name not yet created: %v", err)
	}
	b.PutBytes("d/n", []byte("new")) // another client creates n
	within("a new name by stat", 5*ttl, func() bool { _, err := os.Stat(filepath.Join(dir, "n")); return err == nil })
	b.PutBytes("d/m", []byte("new"))
	if got := names(t, dir); !equal(got, []string{"f", "m", "n"}) {
		t.Errorf("ls right after another client's create: %q", got)
	}
	b.PutBytes("d/f", []byte("replaced, longer"))
	within("a replaced file's size", 5*ttl, func() bool {
		st, err := os.Stat(filepath.Join(dir, "f"))
		return err == nil && st.Size() == int64(len("replaced, longer"))
	})
	if err := b.Delete(context.Background(), "d/n"); err != nil {
		t.Fatal(err)
	}
	within("a removed name", 5*ttl, func() bool { _, err := os.Stat(filepath.Join(dir, "n")); return errors.Is(err, os.ErrNotExist) })
}
