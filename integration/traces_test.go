//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/faultproxy"
	"github.com/s3mount/s3mount/integration/world"
)

// waitNoUploads waits up to d for the incomplete multipart uploads of key to be gone. (MinIO lists
// the uploads of one key only, not those under a prefix.)
func waitNoUploads(t *testing.T, key string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for pendingUploads(t, w, key) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := pendingUploads(t, w, key); n != 0 {
		t.Errorf("%d multipart uploads of %s left behind", n, key)
	}
}

// readEventually reads path until it holds want, for up to d.
func readEventually(t *testing.T, path string, want []byte, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, err := os.ReadFile(path)
		if err == nil && bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d bytes (%v), want the %d bytes written", path, len(got), err, len(want))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Uploads that S3 started for a CreateMultipartUpload whose answer never reached the mount (the
// proxy carries the request out and drops the answer, as when the client gives up waiting) are
// aborted: after a retry that succeeded, and after a close that failed because every answer was
// lost. The writer is told the truth, S3 and the other mount show one version whole.
func TestInteg_UnconfirmedUploadsAreAborted(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	if err := w.Put(ctx, prefix+"f", bytes.NewReader([]byte("previous version"))); err != nil {
		t.Fatal(err)
	}
	p, ep := proxied(t, w)
	a := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), ep...)...)
	b := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)

	// One answer lost: the SDK's retry starts a second upload, which the mount completes.
	p.Add(faultproxy.Fault{Match: faultproxy.IsCreateMultipart, LateBy: 300 * time.Millisecond, Drop: true, Times: 1})
	first := randomBytes(21, 20<<20)
	if err := os.WriteFile(a.path("f"), first, 0o644); err != nil {
		t.Fatalf("write with one lost answer (retried): %v", err)
	}
	if p.Hits() != 1 {
		t.Fatalf("the fault hit %d requests, want 1", p.Hits())
	}
	readEventually(t, b.path("f"), first, 10*time.Second)
	waitNoUploads(t, prefix+"f", 20*time.Second)

	// Every answer lost: close fails, S3 keeps the version before, and the uploads every attempt
	// started are aborted.
	p.Add(faultproxy.Fault{Match: faultproxy.IsCreateMultipart, LateBy: 300 * time.Millisecond, Drop: true})
	err := os.WriteFile(a.path("f"), randomBytes(22, 20<<20), 0o644)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("write while every answer is lost: %v, want EIO", err)
	}
	if got, err := w.Get(ctx, prefix+"f"); err != nil || !bytes.Equal(got, first) {
		t.Errorf("S3 holds %d bytes (%v), want the version before intact", len(got), err)
	}
	p.Clear()
	waitNoUploads(t, prefix+"f", 20*time.Second)
	readEventually(t, a.path("f"), first, 10*time.Second)
	readEventually(t, b.path("f"), first, 10*time.Second)
	next := randomBytes(23, 20<<20)
	if err := os.WriteFile(a.path("f"), next, 0o644); err != nil {
		t.Fatalf("write once S3 answers: %v", err)
	}
	readEventually(t, b.path("f"), next, 10*time.Second)
	waitNoUploads(t, prefix+"f", 20*time.Second)
}
