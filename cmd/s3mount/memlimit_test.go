package main

import (
	"runtime/debug"
	"testing"

	"github.com/s3mount/s3mount/fs"
)

// TestMemoryLimit: Go's memory limit is what docs/notes/performance.md says: the block cache and 32 MiB
// (288 MiB by default; the read-ahead and upload buffers live outside the Go heap), at least 96 MiB.
func TestMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	const mib = 1 << 20
	o := fs.DefaultOptions()
	setMemoryLimit(o)
	if got := debug.SetMemoryLimit(-1); got != 288*mib {
		t.Errorf("default limit %d MiB, want 288", got/mib)
	}
	o.CacheSize = 0 // --cache-size 0
	setMemoryLimit(o)
	if got := debug.SetMemoryLimit(-1); got != 96*mib {
		t.Errorf("limit without a cache %d MiB, want 96", got/mib)
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GC percent %d, want %d when GOGC is not set", got, gcPercent)
	}
	t.Setenv("GOGC", "100") // the user's choice stands
	setMemoryLimit(o)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d with GOGC=100 set, want 100", got)
	}
}

// TestMemoryLimitFollowsTheLiveHeap: the limit stays at its base while the live heap is well below
// it, and rises above a live heap that nears or passes it (nodes of many names), so that the
// collector never runs back to back; it comes back down with the live heap.
func TestMemoryLimitFollowsTheLiveHeap(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ live, want int64 }{
		{20 * mib, 288 * mib},
		{200 * mib, 288 * mib},
		{860 * mib, 1107 * mib},
		{288 * mib, 392 * mib},
	} {
		if got := memoryLimit(288*mib, c.live); got != c.want {
			t.Errorf("live heap %d MiB: limit %d MiB, want %d", c.live/mib, got/mib, c.want/mib)
		}
		if got := memoryLimit(288*mib, c.live); got <= c.live {
			t.Errorf("live heap %d MiB: limit %d MiB is not above it", c.live/mib, got/mib)
		}
	}
}
