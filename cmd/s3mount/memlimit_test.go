package main

import (
	"runtime/debug"
	"testing"

	"github.com/s3mount/s3mount/fs"
)

// TestMemoryLimit: Go's memory limit is what docs/PERFORMANCE.md says: the block cache and 32 MiB
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
