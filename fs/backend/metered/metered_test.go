package metered

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
	"github.com/s3mount/s3mount/fs/metrics"
)

// TestRequestsAreRecorded: each call counts once, with its latency in the histogram of its
// operation, its error if it failed, and the bytes of bodies.
func TestRequestsAreRecorded(t *testing.T) {
	m := metrics.New()
	b := New(memback.New(), m)
	ctx := context.Background()
	if _, err := b.Put(ctx, "k", strings.NewReader("hello"), 5, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Head(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Head(ctx, "missing"); err == nil {
		t.Fatal("HEAD of a missing key succeeded")
	}
	r, err := b.Get(ctx, "k", 0, 5, "")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r)
	r.Close()
	for _, c := range []struct {
		name, op string
		want     float64
	}{
		{"s3mount_s3_requests_total", "HeadObject", 2},
		{"s3mount_s3_request_duration_seconds", "HeadObject", 2},
		{"s3mount_s3_request_errors_total", "HeadObject", 1},
		{"s3mount_s3_request_duration_seconds", "PutObject", 1},
		{"s3mount_s3_request_duration_seconds", "GetObject", 1},
	} {
		if got := m.Value(c.name, "op", c.op); got != c.want {
			t.Errorf("%s{op=%s} = %v, want %v", c.name, c.op, got, c.want)
		}
	}
	if got := m.Value("s3mount_s3_bytes_written_total"); got != 5 {
		t.Errorf("bytes written %v, want 5", got)
	}
	if got := m.Value("s3mount_s3_bytes_read_total"); got != 5 {
		t.Errorf("bytes read %v, want 5", got)
	}
}
