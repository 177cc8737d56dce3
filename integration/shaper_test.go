//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/shaper"
	"github.com/s3mount/s3mount/integration/world"
)

// A mount through the s3like shapers (S3, STS and IMDS) works end to end: its credentials and
// every S3 request pass through them, and what it writes is in S3 in full.
func TestInteg_ShapedWorldMount(t *testing.T) {
	e, err := w.Endpoints(shaper.S3Like(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	prefix := testPrefix(t)
	m := mountWith(t, nil, append(e.MountArgs(), accessChain()...), "s3://"+world.Bucket+"/"+prefix)
	data := randomBytes(26, 12<<20)
	if err := os.WriteFile(m.path("big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := w.Get(ctx, prefix+"big")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("in S3: %d bytes of %d (%v)", len(got), len(data), err)
	}
	back, err := os.ReadFile(m.path("big"))
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back: %d bytes of %d (%v)", len(back), len(data), err)
	}
	if req, _ := e.S3Proxy.Stats(); req < 3 {
		t.Errorf("the S3 shaper saw %d requests: the mount did not go through it", req)
	}
}

// Under throttling (503 SlowDown past a few requests a second on the directory's prefix) a mount
// still gets every file into S3: the answers are retried, not turned into lost writes.
func TestInteg_ShapedWorldThrottledWrites(t *testing.T) {
	n := shaper.S3Like(0)
	n.S3.Latency = shaper.LogNormal{}
	n.S3.WriteRate, n.S3.Burst = 10, 0.5
	e, err := w.Endpoints(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	prefix := testPrefix(t)
	m := mountWith(t, nil, append(e.MountArgs(), accessChain()...), "s3://"+world.Bucket+"/"+prefix)
	const files = 40
	for i := 0; i < files; i++ {
		if err := os.WriteFile(m.path(fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
	}
	m.unmount(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < files; i++ {
		got, err := w.Get(ctx, fmt.Sprintf("%sf%02d", prefix, i))
		if err != nil || string(got) != fmt.Sprint(i) {
			t.Errorf("f%02d in S3: %q, %v", i, got, err)
		}
	}
	if _, slow := e.S3Proxy.Stats(); slow == 0 {
		t.Errorf("no request was answered 503 SlowDown: the test did not throttle")
	}
}
