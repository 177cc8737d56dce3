package main

import (
	"runtime/debug"
	"testing"

	"github.com/s3mount/s3mount/fs"
)

// TestMemoryLimit: Go's memory limit is what docs/PERFORMANCE.md says: the block cache, the
// read-ahead budget and 32 MiB (384 MiB by default, issue 5's bound of cache + 128 MiB), or the
// read-ahead and upload buffers and 96 MiB when they need more.
func TestMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	const mib = 1 << 20
	o := fs.DefaultOptions()
	setMemoryLimit(o)
	if got := debug.SetMemoryLimit(-1); got != 384*mib {
		t.Errorf("default limit %d MiB, want 384", got/mib)
	}
	o.CacheSize = 0 // --cache-size 0: the upload buffers decide
	setMemoryLimit(o)
	if got, want := debug.SetMemoryLimit(-1), o.ReadaheadBudget+int64(o.UploadConcurrency)*o.PartSize+96*mib; got != want {
		t.Errorf("limit without a cache %d MiB, want %d", got/mib, want/mib)
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
