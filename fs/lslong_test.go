package fs

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
