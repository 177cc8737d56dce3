package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// writeOptions uses the smallest part size, so multipart paths run with small files.
func writeOptions() Options {
	o := noCacheOptions()
	o.PartSize = backend.MinPartSize
	return o
}

func objectBytes(t *testing.T, b *memback.Backend, key string) []byte {
	t.Helper()
	data, ok := b.Bytes(key)
	if !ok {
		t.Fatalf("object %q does not exist", key)
	}
	return data
}

func TestNewFileAppearsInS3OnlyAtClose(t *testing.T) {
	b := memback.New()
	mnt := testMount(t, b, writeOptions())
	f, err := os.Create(filepath.Join(mnt, "new.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Bytes("new.txt"); ok {
		t.Error("the object exists before close")
	}
	// The mount itself shows the new file at once.
	if st, err := os.Stat(filepath.Join(mnt, "new.txt")); err != nil || st.Size() != 5 {
		t.Errorf("stat of the open new file: %v, %v", st, err)
	}
	if got := names(t, mnt); !equal(got, []string{"new.txt"}) {
		t.Errorf("listing with the open new file = %q", got)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := objectBytes(t, b, "new.txt"); string(got) != "hello" {
		t.Errorf("object = %q, want hello", got)
	}
	if b.Calls(memback.OpPut) != 1 {
		t.Errorf("%d PUTs for a small file, want 1", b.Calls(memback.OpPut))
	}
}

func TestLargeSequentialWriteStreamsParts(t *testing.T) {
	b := memback.New()
	mnt := testMount(t, b, writeOptions())
	data := randomData(3, 23<<20) // 4 full parts of 5 MiB and a tail
	// Full parts go out while the writer is still writing.
	f := writeStreaming(t, b, filepath.Join(mnt, "big"), data, 4)
	if n := b.Calls(memback.OpPart); n < 4 {
		t.Errorf("%d parts uploaded before close, want the 4 full ones", n)
	}
	if _, ok := b.Bytes("big"); ok {
		t.Error("the object is visible before close")
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := objectBytes(t, b, "big"); !bytes.Equal(got, data) {
		t.Errorf("object differs from what was written (%d bytes, want %d)", len(got), len(data))
	}
	if b.PendingUploads() != 0 {
		t.Errorf("%d multipart uploads left", b.PendingUploads())
	}
}

// writeStreaming creates path, writes data to it in 1 MiB writes and waits (up to 5 s) until parts
// part uploads have been made. The file is left open.
func writeStreaming(t *testing.T, b *memback.Backend, path string, data []byte, parts int) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := f.Write(data[off:min(off+1<<20, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Calls(memback.OpPart) < parts && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

func randomData(seed byte, n int) []byte {
	data := make([]byte, n)
	x := uint32(seed) + 1
	for i := range data {
		x = x*1664525 + 1013904223
		data[i] = byte(x >> 24)
	}
	return data
}

var errInjected = errors.New("injected failure")

// TestFailedCommitIsReportedAndKeepsThePreviousVersion is the durability contract: when the data
// cannot be stored, close (or fsync) fails, the previous object is intact and nothing is left over.
func TestFailedCommitIsReportedAndKeepsThePreviousVersion(t *testing.T) {
	for _, c := range []struct {
		name string
		op   memback.Op
		size int
	}{
		{"put", memback.OpPut, 1000},
		{"part", memback.OpPart, 12 << 20},
		{"complete", memback.OpComplete, 12 << 20},
		{"create multipart", memback.OpCreateMP, 12 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := memback.New()
			b.PutBytes("f", []byte("previous"))
			var failing atomic.Bool
			b.SetFault(func(op memback.Op, key string) error {
				if failing.Load() && op == c.op {
					return errInjected
				}
				return nil
			})
			mnt := testMount(t, b, writeOptions())
			failing.Store(true)
			f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(randomData(1, c.size)); err != nil && c.op != memback.OpPart && c.op != memback.OpCreateMP {
				t.Fatalf("write: %v", err)
			}
			if err := f.Sync(); !errorIs(err, syscall.EIO) {
				t.Errorf("fsync: %v, want EIO", err)
			}
			if err := f.Close(); err == nil {
				t.Error("close succeeded although the data never reached S3")
			}
			if got := objectBytes(t, b, "f"); string(got) != "previous" {
				t.Errorf("object = %d bytes, want the previous version intact", len(got))
			}
			deadline := time.Now().Add(5 * time.Second) // aborts run in the background
			for b.PendingUploads() != 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := b.PendingUploads(); n != 0 {
				t.Errorf("%d multipart uploads left behind", n)
			}
			// Once S3 works again, the same writes succeed.
			failing.Store(false)
			if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("next"), 0o644); err != nil {
				t.Fatalf("write after recovery: %v", err)
			}
			if got := objectBytes(t, b, "f"); string(got) != "next" {
				t.Errorf("object after recovery = %q", got)
			}
		})
	}
}

func TestOverwriteInPlaceAndTruncate(t *testing.T) {
	b := memback.New()
	b.PutBytes("f", []byte("0123456789"))
	mnt := testMount(t, b, writeOptions())
	p := filepath.Join(mnt, "f")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("ab"), 3); err != nil {
		t.Fatal(err)
	}
	// The handle reads its own unflushed writes.
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, 0); n != 10 || string(buf) != "012ab56789" {
		t.Errorf("read back before close = %q (%v)", buf[:n], err)
	}
	if err := f.Truncate(7); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := objectBytes(t, b, "f"); string(got) != "012ab56" {
		t.Errorf("object = %q, want 012ab56", got)
	}
	// truncate(2) by path, growing: zero-filled.
	if err := os.Truncate(p, 9); err != nil {
		t.Fatal(err)
	}
	if got := objectBytes(t, b, "f"); string(got) != "012ab56\x00\x00" {
		t.Errorf("object after truncate to 9 = %q", got)
	}
	// Append.
	af, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := af.WriteString("Z"); err != nil {
		t.Fatal(err)
	}
	if err := af.Close(); err != nil {
		t.Fatal(err)
	}
	if got := objectBytes(t, b, "f"); string(got) != "012ab56\x00\x00Z" {
		t.Errorf("object after append = %q", got)
	}
}

func TestTwoHandlesShareUnflushedWrites(t *testing.T) {
	b := memback.New()
	mnt := testMount(t, b, writeOptions())
	p := filepath.Join(mnt, "shared")
	w, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString("from the writer"); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "from the writer" {
		t.Errorf("second handle read %q", buf[:n])
	}
}

// TestLargeReadsOfLocalContentLogNothing: a file's local content is read in replies of up to
// 1 MiB, written with writev(2); go-fuse's splice(2) path, which a pipe of at most 1 MiB cannot
// take, would log a line for each (to the daemon's journal).
func TestLargeReadsOfLocalContentLogNothing(t *testing.T) {
	var logged syncBuffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	b := memback.New()
	mnt := testMount(t, b, writeOptions())
	p := filepath.Join(mnt, "local")
	data := randomData(11, 4<<20)
	createWritten(t, p, string(data))
	r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECT, 0) // every read reaches the daemon
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want what was written", len(got), err)
	}
	if s := logged.String(); strings.Contains(s, "splice") {
		t.Errorf("reads of local content logged:\n%s", s)
	}
}

// syncBuffer is a bytes.Buffer that goroutines may write at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSharedMmapWritesAreCommitted: stores through a shared writable mapping (of a new file and of
// an existing object) reach S3 once the program calls msync and closes the file, at any offset,
// across page boundaries and into the last, partial page.
func TestSharedMmapWritesAreCommitted(t *testing.T) {
	b := memback.New()
	old := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 625 KiB and a bit: a partial last page
	b.PutBytes("old.bin", old)
	mnt := testMount(t, b, writeOptions())
	for _, name := range []string{"new.bin", "old.bin"} {
		want := append([]byte(nil), old...)
		job := mmapJob{Path: filepath.Join(mnt, name), Size: len(old), Offsets: []int{0, 4090, 300000, len(old) - 7}, Text: "MAPPED!"}
		if name == "new.bin" {
			job.Truncate = true
			want = make([]byte, len(old))
		}
		for _, off := range job.Offsets {
			copy(want[off:], job.Text)
		}
		runMmapJob(t, job)
		if got, _ := b.Bytes(name); !bytes.Equal(got, want) {
			t.Errorf("%s: S3 holds %d bytes, not what was written through the mapping", name, len(got))
		}
	}
	// Stores after the close are committed when the mapping goes away (the kernel sends the
	// pages and then the release).
	runMmapJob(t, mmapJob{Path: filepath.Join(mnt, "old.bin"), Size: len(old), Offsets: []int{100}, Text: "LATE", CloseFirst: true})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, _ := b.Bytes("old.bin"); bytes.Equal(got[100:104], []byte("LATE")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a store after the last close was not committed when the mapping went away")
		}
	}
}

// mmapJob is what TestMmapHelper does to a file through a shared writable mapping: open it (and
// set its size), map Size bytes, store Text at each offset, then msync, unmap and close; or, with
// CloseFirst, close the file before the stores and unmap after them.
type mmapJob struct {
	Path       string
	Size       int
	Truncate   bool
	Offsets    []int
	Text       string
	CloseFirst bool
}

// runMmapJob runs job in a child process. A store to a mapped page of the mount faults into the
// kernel, which asks this process's FUSE server for the page; a goroutine in a page fault is
// neither in a system call nor preemptible, so in this process it could hold the only P, or stop
// the world's next garbage collection, and the server would never answer (a hang, not a failure).
func runMmapJob(t *testing.T, job mmapJob) {
	t.Helper()
	spec, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMmapHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "S3MOUNT_MMAP_JOB="+string(spec))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmap job %+v: %v\n%s", job, err, out)
	}
}

// TestMmapHelper is the child process of runMmapJob; it does nothing in a normal run.
func TestMmapHelper(t *testing.T) {
	spec := os.Getenv("S3MOUNT_MMAP_JOB")
	if spec == "" {
		t.Skip("the child process of runMmapJob")
	}
	var job mmapJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(job.Path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if job.Truncate {
		if err := f.Truncate(int64(job.Size)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, job.Size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	if job.CloseFirst {
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	for _, off := range job.Offsets {
		copy(m[off:], job.Text)
	}
	if !job.CloseFirst {
		if err := unix.Msync(m, unix.MS_SYNC); err != nil {
			t.Fatalf("msync: %v", err)
		}
	}
	if err := syscall.Munmap(m); err != nil {
		t.Fatalf("munmap: %v", err)
	}
	if !job.CloseFirst {
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
}

func TestRenameFileAndDirectory(t *testing.T) {
	b := memback.New()
	b.PutBytes("a.txt", []byte("A"))
	b.PutBytes("old.txt", []byte("OLD"))
	b.PutBytes("d/x", []byte("X"))
	b.PutBytes("d/sub/y", []byte("Y"))
	b.PutBytes("full/z", []byte("Z"))
	mnt := testMount(t, b, writeOptions())
	p := func(n string) string { return filepath.Join(mnt, n) }

	if err := os.Rename(p("a.txt"), p("b.txt")); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Bytes("a.txt"); ok || string(objectBytes(t, b, "b.txt")) != "A" {
		t.Errorf("after rename: keys %q", b.Keys())
	}
	// Rename over an existing file replaces it.
	if err := os.Rename(p("b.txt"), p("old.txt")); err != nil {
		t.Fatal(err)
	}
	if string(objectBytes(t, b, "old.txt")) != "A" {
		t.Errorf("rename over a file: %q", objectBytes(t, b, "old.txt"))
	}
	// RENAME_NOREPLACE.
	b.PutBytes("c.txt", []byte("C"))
	if err := unix.Renameat2(unix.AT_FDCWD, p("c.txt"), unix.AT_FDCWD, p("old.txt"), unix.RENAME_NOREPLACE); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("RENAME_NOREPLACE over a file: %v, want EEXIST", err)
	}
	// Directories move recursively.
	if err := os.Rename(p("d"), p("e")); err != nil {
		t.Fatal(err)
	}
	if got := walkKeys(b); !equal(got, []string{"c.txt", "e/", "e/sub/y", "e/x", "full/z", "old.txt"}) {
		t.Errorf("keys after directory rename: %q", got)
	}
	if data, err := os.ReadFile(p("e/sub/y")); err != nil || string(data) != "Y" {
		t.Errorf("read through the renamed directory: %q, %v", data, err)
	}
	// A directory over a non-empty directory.
	if err := os.Rename(p("e"), p("full")); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		t.Errorf("rename over a non-empty directory: %v, want ENOTEMPTY", err)
	}
}

func walkKeys(b *memback.Backend) []string { return b.Keys() }

// TestRenameLeavesNoListingFromBeforeTheMove: the lookups of a rename may list the directory anew
// before the object moves (here: lookups have been asking S3 for the directory's names, so the
// rename's own lookup of the source lists it); that listing must not answer afterwards that the
// new name is absent, or mkdir of that name would succeed beside the file.
func TestRenameLeavesNoListingFromBeforeTheMove(t *testing.T) {
	b := memback.New()
	b.PutBytes("d/a", []byte("A"))
	opts := writeOptions()
	opts.EntryTTL, opts.AttrTTL, opts.NegativeTTL = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	mnt := testMount(t, b, opts)
	p := func(n string) string { return filepath.Join(mnt, "d", n) }
	// A lookup asks S3, and the kernel's two lookups of the target (it asks twice) make three
	// (lookupsBeforeListing): the rename's own lookup of the source lists the directory.
	if _, err := os.Stat(p("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p("a"), p("b")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(opts.EntryTTL + 100*time.Millisecond) // the kernel asks again
	if data, err := os.ReadFile(p("b")); err != nil || string(data) != "A" {
		t.Errorf("read of the new name: %q, %v", data, err)
	}
	time.Sleep(opts.EntryTTL + 100*time.Millisecond)
	if err := os.Mkdir(p("b"), 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("mkdir of the renamed file's name: %v, want EEXIST", err)
	}
}

// TestRenameOverAnOpenFile: a file renamed over one that is still open replaces it, as on a local
// disk: the replaced file lives on for its handles (they read and write it, unchanged and
// uncommitted: also a clean handle writing into content it has not loaded), and their close
// commits nothing over the file now under that name.
func TestRenameOverAnOpenFile(t *testing.T) {
	b := memback.New()
	b.PutBytes("stored", bytes.Repeat([]byte("S"), 3<<20))
	mnt := testMount(t, b, writeOptions())
	p := func(n string) string { return filepath.Join(mnt, n) }
	writing := createWritten(t, p("written"), "uncommitted")
	clean, err := os.OpenFile(p("stored"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer clean.Close()
	for _, name := range []string{"written", "stored"} {
		if err := os.WriteFile(p("new"), []byte("new "+name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p("new"), p(name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := writing.Write([]byte(" more")); err != nil {
		t.Errorf("write to the replaced file: %v", err)
	}
	if _, err := clean.WriteAt([]byte("x"), 2<<20); err != nil {
		t.Errorf("write into the replaced file's stored content: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := clean.ReadAt(buf, 1<<20); err != nil || string(buf) != "SSSS" {
		t.Errorf("read of the replaced file's stored content: %q, %v", buf, err)
	}
	for _, f := range []*os.File{writing, clean} {
		if err := f.Close(); err != nil {
			t.Errorf("close of the replaced file: %v", err)
		}
	}
	if keys := b.Keys(); !equal(keys, []string{"stored", "written"}) {
		t.Errorf("keys in S3: %q, want the two renamed files", keys)
	}
	for _, name := range []string{"written", "stored"} {
		if got := string(objectBytes(t, b, name)); got != "new "+name {
			t.Errorf("%s in S3: %q, want the file renamed onto it", name, got[:min(len(got), 20)])
		}
		if data, err := os.ReadFile(p(name)); err != nil || string(data) != "new "+name {
			t.Errorf("%s through the mount: %q, %v", name, data[:min(len(data), 20)], err)
		}
	}
}

// createWritten creates the file path and writes data into it; the file stays open (closed at the
// test's end, if the test does not close it).
func createWritten(t *testing.T, path, data string) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFailedReplaceKeepsCommitting: an unlink whose delete fails, or a rename over an open file
// whose copy fails, leaves the file where it was, and its handle's writes are committed at close
// as if nothing had happened (not kept back as a removed file's would be).
func TestFailedReplaceKeepsCommitting(t *testing.T) {
	for _, op := range []memback.Op{memback.OpDelete, memback.OpCopy} {
		t.Run(string(op), func(t *testing.T) {
			b := memback.New()
			mnt := testMount(t, b, writeOptions())
			p := func(n string) string { return filepath.Join(mnt, n) }
			f := createWritten(t, p("open"), "first")
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p("other"), []byte("other"), 0o644); err != nil {
				t.Fatal(err)
			}
			b.SetFault(func(o memback.Op, key string) error {
				if o == op {
					return errors.New("injected")
				}
				return nil
			})
			var err error
			if op == memback.OpDelete {
				err = os.Remove(p("open"))
			} else {
				err = os.Rename(p("other"), p("open"))
			}
			b.SetFault(nil)
			if err == nil {
				t.Fatalf("%s succeeded despite the fault", op)
			}
			if _, err := f.Write([]byte(" then more")); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			if got := string(objectBytes(t, b, "open")); got != "first then more" {
				t.Errorf("open file in S3: %q, want every write", got)
			}
		})
	}
}

func TestRenameOfFileBeingWrittenUploadsToNewName(t *testing.T) {
	b := memback.New()
	mnt := testMount(t, b, writeOptions())
	f, err := os.Create(filepath.Join(mnt, "data.part"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("payload"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mnt, "data.part"), filepath.Join(mnt, "data")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.Keys(); !equal(got, []string{"data"}) {
		t.Errorf("keys = %q, want only data", got)
	}
	if b.Calls(memback.OpCopy) != 0 {
		t.Errorf("%d copies, want none (the file was uploaded to its new name)", b.Calls(memback.OpCopy))
	}
}

func TestMkdirRmdirAndExclusiveCreate(t *testing.T) {
	b := memback.New()
	b.PutBytes("implicit/f", []byte("x"))
	mnt := testMount(t, b, writeOptions())
	p := func(n string) string { return filepath.Join(mnt, n) }
	if err := os.Mkdir(p("d"), 0o750); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Bytes("d/"); !ok {
		t.Error("mkdir wrote no marker")
	}
	if err := os.Mkdir(p("d"), 0o750); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("second mkdir: %v, want EEXIST", err)
	}
	if err := os.Mkdir(p("implicit"), 0o750); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("mkdir of an implicit directory: %v, want EEXIST", err)
	}
	if st, err := os.Stat(p("d")); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("mode of the new directory: %v, %v", st.Mode(), err)
	}
	if err := os.WriteFile(p("d/f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("d")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir of a non-empty directory: %v, want ENOTEMPTY", err)
	}
	if _, err := os.OpenFile(p("d/f"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("O_EXCL create of an existing file: %v, want EEXIST", err)
	}
	// Another host creates the name between our lookup and our create: the conditional write
	// still refuses.
	var raced atomic.Bool
	b.SetFault(func(op memback.Op, key string) error {
		if op == memback.OpPut && key == "d/race" && !raced.Swap(true) {
			b.PutBytes("d/race", []byte("theirs"))
		}
		return nil
	})
	if _, err := os.OpenFile(p("d/race"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("O_EXCL create racing another host: %v, want EEXIST", err)
	}
	for _, n := range []string{"d/f", "d/race"} {
		if err := os.Remove(p(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(p("d")); err != nil {
		t.Errorf("rmdir of the emptied directory: %v", err)
	}
	if got := b.Keys(); !equal(got, []string{"implicit/f"}) {
		t.Errorf("keys = %q", got)
	}
}

func TestUnlinkedOpenFileStaysReadable(t *testing.T) {
	b := memback.New()
	b.PutBytes("f", []byte("still here"))
	mnt := testMount(t, b, writeOptions())
	f, err := os.Open(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(filepath.Join(mnt, "f")); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Bytes("f"); ok {
		t.Error("the object still exists after unlink")
	}
	buf := make([]byte, 32)
	n, err := f.ReadAt(buf, 0)
	if string(buf[:n]) != "still here" {
		t.Errorf("read of the unlinked open file: %q, %v", buf[:n], err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "f")); !os.IsNotExist(err) {
		t.Errorf("stat after unlink: %v", err)
	}
}

func TestAttributesArePersistedAsS3fsMetadata(t *testing.T) {
	b := memback.New()
	mnt := testMount(t, b, writeOptions())
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 600000000, time.UTC)
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	info, err := b.Head(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"mode": "33152", "uid": "1234", "gid": "5678", "mtime": "1577934245.6"}
	for k, v := range want {
		if info.Meta[k] != v {
			t.Errorf("x-amz-meta-%s = %q, want %q", k, info.Meta[k], v)
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || !st.ModTime().Equal(mtime) {
		t.Errorf("stat: mode %v mtime %v", st.Mode(), st.ModTime())
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 1234 || sys.Gid != 5678 {
		t.Errorf("owner %d:%d", sys.Uid, sys.Gid)
	}
}

// TestOtherClientsMetadataIsKept: an object another client wrote keeps its standard headers
// (Content-Type, Content-Encoding...) and the user metadata s3mount does not use when the mount
// changes its attributes (a copy onto itself), rewrites it in parts (multipart) or truncates and
// rewrites it (one PUT).
func TestOtherClientsMetadataIsKept(t *testing.T) {
	b := memback.New()
	ctx := context.Background()
	headers := backend.Headers{ContentType: "video/mp4", CacheControl: "max-age=60", ContentEncoding: "identity",
		ContentDisposition: "inline", ContentLanguage: "en"}
	put := func(key string, size int) {
		t.Helper()
		if _, err := b.Put(ctx, key, bytes.NewReader(make([]byte, size)), int64(size),
			backend.PutOptions{Meta: map[string]string{"app": "cms", "mode": "33188"}, Headers: headers}); err != nil {
			t.Fatal(err)
		}
	}
	put("touched", 10)
	put("appended", 2*backend.MinPartSize) // rewritten as a multipart upload
	put("replaced", 10)
	mnt := testMount(t, b, writeOptions())
	mtime := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(mnt, "touched"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(mnt, "appended"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "replaced"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"touched", "appended", "replaced"} {
		info, err := b.Head(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if info.Headers != headers || info.Meta["app"] != "cms" || info.Meta["mode"] != "33188" {
			t.Errorf("%s: headers %+v, metadata %v; want %+v and app=cms kept", k, info.Headers, info.Meta, headers)
		}
	}
	if info, _ := b.Head(ctx, "touched"); info.Meta["mtime"] != "1609459200" {
		t.Errorf("touched: x-amz-meta-mtime %q, want the new time", info.Meta["mtime"])
	}
	if info, _ := b.Head(ctx, "appended"); info.Size != 2*backend.MinPartSize+4 {
		t.Errorf("appended: %d bytes", info.Size)
	}
}

// TestNewFilesAreTypedByTheirNames: a new file gets the Content-Type of its extension, also when
// it is written under a temporary name and renamed into place (rsync's .name.XXXXXX, name.part),
// or renamed while still being written. A rename retypes an object only if it has no type of its
// own (none, S3's default, or its old name's), keeping its metadata; any other type is kept.
func TestNewFilesAreTypedByTheirNames(t *testing.T) {
	b := memback.New()
	ctx := context.Background()
	foreign := func(key, typ string) {
		t.Helper()
		if _, err := b.Put(ctx, key, strings.NewReader("x"), 1, backend.PutOptions{Meta: map[string]string{"app": "cms"},
			Headers: backend.Headers{ContentType: typ, CacheControl: "max-age=60"}}); err != nil {
			t.Fatal(err)
		}
	}
	foreign("custom.txt", "application/x-custom")
	foreign("untyped.tmp", "binary/octet-stream")
	foreign("typed.html", "text/html; charset=utf-8")
	foreign("kept.html", "text/html; charset=utf-8")
	mnt := testMount(t, b, writeOptions())
	path := func(name string) string { return filepath.Join(mnt, name) }
	write := func(name string, size int) {
		t.Helper()
		if err := os.WriteFile(path(name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rename := func(from, to string) {
		t.Helper()
		if err := os.Rename(path(from), path(to)); err != nil {
			t.Fatal(err)
		}
	}
	write("page.html", 10)
	write("data.json", 10)
	write("noext", 10)
	write("big.png", 2*backend.MinPartSize) // a multipart upload
	write(".style.css.Xy12Ab", 10)          // rsync: a temporary name, its mode, then the rename
	if err := os.Chmod(path(".style.css.Xy12Ab"), 0o600); err != nil {
		t.Fatal(err)
	}
	rename(".style.css.Xy12Ab", "style.css")
	write("dump.json.part", 10)
	rename("dump.json.part", "dump.json")
	f, err := os.Create(path("open.XYZ"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("<svg/>")); err != nil {
		t.Fatal(err)
	}
	rename("open.XYZ", "logo.svg")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rename("custom.txt", "custom.html")
	rename("untyped.tmp", "untyped.pdf")
	rename("typed.html", "typed.json")
	rename("kept.html", "kept.backup")
	if err := os.Symlink("page.html", path("link")); err != nil {
		t.Fatal(err)
	}
	rename("link", "link.html")
	if f, err := os.OpenFile(path("excl.json"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err != nil {
		t.Fatal(err)
	} else if err := f.Close(); err != nil { // empty, so nothing to commit at close
		t.Fatal(err)
	}
	for _, c := range []struct{ key, want string }{
		{"page.html", "text/html; charset=utf-8"},
		{"data.json", "application/json"},
		{"noext", ""},
		{"big.png", "image/png"},
		{"style.css", "text/css; charset=utf-8"},
		{"dump.json", "application/json"},
		{"logo.svg", "image/svg+xml"},
		{"custom.html", "application/x-custom"}, // its own type
		{"untyped.pdf", "application/pdf"},      // S3's default
		{"typed.json", "application/json"},      // its old name's
		{"kept.backup", "text/html; charset=utf-8"},
		{"link.html", ""}, // a symlink
		{"excl.json", "application/json"},
	} {
		info, err := b.Head(ctx, c.key)
		if err != nil {
			t.Errorf("%s: %v", c.key, err)
			continue
		}
		if info.Headers.ContentType != c.want {
			t.Errorf("%s: Content-Type %q, want %q", c.key, info.Headers.ContentType, c.want)
		}
	}
	if info, _ := b.Head(ctx, "style.css"); info.Meta["mode"] != "33152" {
		t.Errorf("style.css: x-amz-meta-mode %q, want 33152 (0100600) kept by the rename", info.Meta["mode"])
	}
	for _, k := range []string{"custom.html", "untyped.pdf", "typed.json", "kept.backup"} {
		if info, _ := b.Head(ctx, k); info.Meta["app"] != "cms" || info.Headers.CacheControl != "max-age=60" {
			t.Errorf("%s: metadata %v, headers %+v; want app=cms and Cache-Control kept", k, info.Meta, info.Headers)
		}
	}
	// The node knows its new type: a later change of its mode keeps it.
	if err := os.Chmod(path("style.css"), 0o644); err != nil {
		t.Fatal(err)
	}
	if info, _ := b.Head(ctx, "style.css"); info.Headers.ContentType != "text/css; charset=utf-8" {
		t.Errorf("style.css after chmod: Content-Type %q", info.Headers.ContentType)
	}
}

func TestSymlinkAndHardLink(t *testing.T) {
	b := memback.New()
	b.PutBytes("target", []byte("t"))
	mnt := testMount(t, b, writeOptions())
	if err := os.Symlink("target", filepath.Join(mnt, "link")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(filepath.Join(mnt, "link")); err != nil || got != "target" {
		t.Errorf("readlink = %q, %v", got, err)
	}
	if st, err := os.Lstat(filepath.Join(mnt, "link")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lstat of the link: %v, %v", st.Mode(), err)
	}
	// lutimes (rsync -a sets a link's times) is stored on the link's object.
	mtime := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(mnt, "link"), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Errorf("lutimes: %v", err)
	}
	if info, err := b.Head(context.Background(), "link"); err != nil || info.Meta["mtime"] == "" {
		t.Errorf("link's stored metadata after lutimes: %v, %v", info.Meta, err)
	}
	if st, err := os.Lstat(filepath.Join(mnt, "link")); err != nil || !st.ModTime().Equal(mtime) || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lstat after lutimes: %v, %v", st, err)
	}
	if got, err := os.Readlink(filepath.Join(mnt, "link")); err != nil || got != "target" {
		t.Errorf("readlink after lutimes = %q, %v", got, err)
	}
	if err := os.Link(filepath.Join(mnt, "target"), filepath.Join(mnt, "hard")); !errors.Is(err, syscall.EPERM) {
		t.Errorf("link: %v, want EPERM", err)
	}
}

func TestStagingFullGivesENOSPC(t *testing.T) {
	b := memback.New()
	opts := writeOptions()
	opts.StagingSize = 1 << 20
	opts.StagingWait = 100 * time.Millisecond
	mnt := testMount(t, b, opts)
	f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(make([]byte, 2<<20), 0)
	if !errorIs(err, syscall.ENOSPC) && !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write beyond the staging space: %v, want ENOSPC", err)
	}
	f.Close()
	// Space is freed: a file that fits can be written.
	if err := os.WriteFile(filepath.Join(mnt, "g"), make([]byte, 512<<10), 0o644); err != nil {
		t.Errorf("write after ENOSPC: %v", err)
	}
}

// TestUtimesRightAfterCloseIsKept: rsync closes a file and sets its times at once, by path. The
// kernel sends the close's RELEASE asynchronously, so the SETATTR can overtake it; the release
// must not free the local state the new times went into before they are committed (the times
// were lost now and then, and rsync's next run copied the file again).
func TestUtimesRightAfterCloseIsKept(t *testing.T) {
	b := memback.New()
	opts := DefaultOptions()
	opts.EntryTTL, opts.AttrTTL = 0, 0
	mnt := testMount(t, b, opts)
	want := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	for i := 0; i < 300; i++ {
		p := filepath.Join(mnt, fmt.Sprintf("f%03d", i))
		if err := os.WriteFile(p, []byte("content"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, want, want); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 300; i++ {
		key := fmt.Sprintf("f%03d", i)
		info, err := b.Head(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if got := parseMeta(info.Meta).mtime; !got.Equal(want) {
			t.Errorf("%s: stored mtime %v, want %v (the utimes after close was lost)", key, got, want)
		}
	}
}
