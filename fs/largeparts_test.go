package fs

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// smallTiers makes parts double every n parts instead of every 1,000 for the rest of the test, so
// that a few MiB reach the larger parts of files beyond 1,000 parts.
func smallTiers(t *testing.T, n int) {
	old := partsPerTier
	partsPerTier = n
	t.Cleanup(func() { partsPerTier = old }) // registered before the mount, so it runs after the unmount
}

// recordingUpload is a backend.Upload that keeps what each part was sent from.
type recordingUpload struct {
	backend.Upload
	mu     sync.Mutex
	bodies map[int32]io.ReadSeeker
	data   map[int32][]byte
}

func (u *recordingUpload) UploadPart(ctx context.Context, n int32, body io.ReadSeeker, size int64) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return err
	}
	u.mu.Lock()
	u.bodies[n], u.data[n] = body, data
	u.mu.Unlock()
	return u.Upload.UploadPart(ctx, n, body, size)
}

// TestLargePartsAreSentFromTheStagingFile: parts up to PartSize are read into a buffer, larger ones
// (beyond the first 1,000 parts of a file) are sent from the staging file itself, so the memory of
// uploads does not grow with the size of the file.
func TestLargePartsAreSentFromTheStagingFile(t *testing.T) {
	smallTiers(t, 2)
	b := memback.New()
	opts := writeOptions()
	opts.StagingDir = t.TempDir()
	r, err := NewRoot(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, err := newEmptyDirtyFile(r, func() string { return "big" }, backend.ObjectInfo{}, attrs{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.release()
	p := opts.PartSize
	data := randomData(7, int(2*p+2*2*p+p/2)) // two parts of PartSize, two of twice that, a tail
	if _, err := d.f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	u0, err := b.NewUpload(context.Background(), "big", backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := &recordingUpload{Upload: u0, bodies: map[int32]io.ReadSeeker{}, data: map[int32][]byte{}}
	for i := range 5 {
		off, size := partRange(i, p)
		n := min(size, int64(len(data))-off)
		if err := d.sendPart(context.Background(), u, i, off, n); err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		if !bytes.Equal(u.data[int32(i+1)], data[off:off+n]) {
			t.Errorf("part %d: the body differs from the staged bytes", i+1)
		}
		_, inMemory := u.bodies[int32(i+1)].(*bytes.Reader)
		if wantMemory := n <= p; inMemory != wantMemory {
			t.Errorf("part %d (%d bytes, PartSize %d): sent from memory %v, want %v", i+1, n, p, inMemory, wantMemory)
		}
	}
	if _, err := u.Complete(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	if got := objectBytes(t, b, "big"); !bytes.Equal(got, data) {
		t.Error("the object differs from the staged file")
	}
}

// TestFileWithLargePartsRoundTrips writes a file that reaches the larger parts through a mount,
// sequentially and then rewriting a large part that was already streamed.
func TestFileWithLargePartsRoundTrips(t *testing.T) {
	smallTiers(t, 2)
	b := memback.New()
	mnt := testMount(t, b, writeOptions())
	p := int(backend.MinPartSize)
	data := randomData(9, 2*p+2*2*p+p/2)
	f := writeStreaming(t, b, filepath.Join(mnt, "big"), data, 4)
	patch := randomData(10, 4096)
	off := 2*p + 2*p + 100 // inside the second large part
	copy(data[off:], patch)
	if _, err := f.WriteAt(patch, int64(off)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := objectBytes(t, b, "big"); !bytes.Equal(got, data) {
		t.Errorf("object differs from what was written (%d bytes, want %d)", len(got), len(data))
	}
}

// TestFailedUploadOfARewrittenPartIsNotAWriteError: a part rewritten while it was being sent is
// sent again, so the failure of the stale upload loses nothing and the commit succeeds.
func TestFailedUploadOfARewrittenPartIsNotAWriteError(t *testing.T) {
	b := memback.New()
	started, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	b.SetFault(func(op memback.Op, key string) error {
		if op != memback.OpPart {
			return nil
		}
		failed := false
		once.Do(func() {
			close(started)
			<-proceed
			failed = true
		})
		if failed {
			return errInjected
		}
		return nil
	})
	mnt := testMount(t, b, writeOptions())
	p := int(backend.MinPartSize)
	data := randomData(11, p+p/2)
	f, err := os.Create(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started: // part 1 is being sent
	case <-time.After(10 * time.Second):
		t.Fatal("the full part was not streamed")
	}
	patch := []byte("rewritten header")
	copy(data, patch)
	if _, err := f.WriteAt(patch, 0); err != nil {
		t.Fatalf("rewrite while the part is in flight: %v", err)
	}
	close(proceed) // the stale upload fails
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v (the failed upload was of content rewritten since)", err)
	}
	if got := objectBytes(t, b, "f"); !bytes.Equal(got, data) {
		t.Error("the object differs from what was written")
	}
}
