package fs

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// putFiles stores n one-byte objects dir/f0000... directly, as another S3 client would.
func putFiles(b *memback.Backend, dir string, n int) {
	for i := 0; i < n; i++ {
		b.PutBytes(fmt.Sprintf("%s/f%04d", dir, i), []byte("x"))
	}
}

// TestLsLongHeadsRunInParallel: `ls -l` of a directory of files keeps headsInFlight HEADs at once
// in flight (each answered after a round trip), not a lookup's one at a time, nor more than the
// bound. Counted by the most requests seen at once, not by time.
func TestLsLongHeadsRunInParallel(t *testing.T) {
	const n = 600
	b := memback.New()
	putFiles(b, "big", n)
	var mu sync.Mutex
	inFlight, most := 0, 0
	b.SetFault(func(op memback.Op, key string) error {
		if (op != memback.OpHead && op != memback.OpGet) || !strings.HasPrefix(key, "big/") {
			return nil
		}
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(10 * time.Millisecond) // a round trip
		mu.Lock()
		inFlight--
		mu.Unlock()
		return nil
	})
	mnt := testMount(t, b, DefaultOptions())
	entries, stats := lsLong(t, filepath.Join(mnt, "big"))
	if len(entries) != n {
		t.Fatalf("listed %d entries, want %d", len(entries), n)
	}
	for i, st := range stats {
		if st.Size() != 1 {
			t.Fatalf("%s: size %d, want 1", entries[i].Name(), st.Size())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The first file's own request may run beside the HEADs ahead.
	if most < headsInFlight*3/4 || most > headsInFlight+1 {
		t.Errorf("ls -l of %d files: at most %d HEADs at once, want about %d", n, most, headsInFlight)
	}
}

// TestLsLongRidesOutSlowDown: HEADs answered 503 SlowDown (after the S3 client's own retries) are
// asked again after a pause; `ls -l` shows every file, and no lookup fails.
func TestLsLongRidesOutSlowDown(t *testing.T) {
	const n = 300
	b := memback.New()
	putFiles(b, "busy", n)
	var slowed sync.Map // keys answered SlowDown once already
	var refused atomic.Int32
	b.SetFault(func(op memback.Op, key string) error {
		if (op != memback.OpHead && op != memback.OpGet) || !strings.HasPrefix(key, "busy/") {
			return nil
		}
		if _, again := slowed.LoadOrStore(key, true); !again && key[len(key)-1]%3 == 0 {
			refused.Add(1)
			return fmt.Errorf("HEAD %s: SlowDown: %w", key, backend.ErrThrottled)
		}
		return nil
	})
	mnt := testMount(t, b, DefaultOptions())
	entries, _ := lsLong(t, filepath.Join(mnt, "busy")) // fails the test on the first failed lstat
	if len(entries) != n {
		t.Errorf("listed %d entries, want %d", len(entries), n)
	}
	if refused.Load() == 0 {
		t.Error("no request was answered SlowDown; the test tests nothing")
	}
}

// TestLsLongAgainNeedsNoHeads: a second `ls -l` of a directory whose files the mount already
// knows (same ETag, size and time as listed) needs no HEAD; a file another client rewrote, or
// copied onto itself with new metadata (a new time), is HEADed again and shows what it stores.
func TestLsLongAgainNeedsNoHeads(t *testing.T) {
	const n = 100
	b := memback.New()
	putFiles(b, "again", n)
	mnt := testMount(t, b, DefaultOptions())
	dir := filepath.Join(mnt, "again")
	lsLong(t, dir)
	time.Sleep(1100 * time.Millisecond) // a rewrite gets a later time, to the second
	b.PutBytes("again/f0007", []byte("longer"))
	// The same content (and ETag) with new metadata, as a copy onto itself leaves it.
	if _, err := b.Put(context.Background(), "again/f0042", bytes.NewReader([]byte("x")), 1,
		backend.PutOptions{Meta: map[string]string{metaMode: strconv.Itoa(syscall.S_IFREG | 0o600)}}); err != nil {
		t.Fatal(err)
	}
	b.ResetCalls()
	entries, stats := lsLong(t, dir)
	if len(entries) != n {
		t.Fatalf("listed %d entries, want %d", len(entries), n)
	}
	if h, g := b.Calls(memback.OpHead), b.Calls(memback.OpGet); h+g != 2 {
		t.Errorf("ls -l again: %d HEADs and %d GETs, want 2 (the two files changed since)", h, g)
	}
	if st := stats[7]; st.Size() != 6 {
		t.Errorf("rewritten file: size %d, want 6", st.Size())
	}
	if st := stats[42]; st.Mode().Perm() != 0o600 {
		t.Errorf("file with new metadata: mode %v, want 0600", st.Mode())
	}
}

// TestHoldsVersionNeedsTheSameTime: a node holds a listed version only with the same ETag, size
// and modification time (to the second): an object copied onto itself with new metadata keeps
// its ETag (S3 computes it from the content), but not its time.
func TestHoldsVersionNeedsTheSameTime(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	f := newFile(nil, backend.ObjectInfo{Key: "k", Size: 1, ETag: `"e"`, ModTime: at})
	for _, c := range []struct {
		listed backend.ObjectInfo
		want   bool
	}{
		{backend.ObjectInfo{Size: 1, ETag: `"e"`, ModTime: at.Add(400 * time.Millisecond)}, true},
		{backend.ObjectInfo{Size: 1, ETag: `"e"`, ModTime: at.Add(time.Second)}, false},
		{backend.ObjectInfo{Size: 1, ETag: `"f"`, ModTime: at}, false},
		{backend.ObjectInfo{Size: 2, ETag: `"e"`, ModTime: at}, false},
		{backend.ObjectInfo{Size: 1, ModTime: at}, false},
	} {
		if got := f.holdsVersion(c.listed); got != c.want {
			t.Errorf("node %+v, listed %+v: holds %v, want %v", f.info, c.listed, got, c.want)
		}
	}
}
