package s3backend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/s3mount/s3mount/fs/backend"
)

// answeredInitiate answers a CreateMultipartUpload with the upload ID u1, and reports whether r was
// one.
func answeredInitiate(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost || !r.URL.Query().Has("uploads") {
		return false
	}
	io.WriteString(w, `<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
	return true
}

// TestPartSentFromAFileSection: a part can be sent from a section of a file (fs sends its larger
// parts from the staging file), signed over the section's bytes alone, and whole again on a retry.
func TestPartSentFromAFileSection(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case answeredInitiate(w, r):
		case r.Method == http.MethodPut && q.Get("uploadId") == "u1":
			body, _ := io.ReadAll(r.Body)
			sum := sha256.Sum256(body)
			if got := r.Header.Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sum[:]) {
				t.Errorf("payload hash %q does not match the %d bytes sent", got, len(body))
			}
			mu.Lock()
			bodies = append(bodies, body)
			first := len(bodies) == 1
			mu.Unlock()
			if first {
				w.WriteHeader(http.StatusInternalServerError) // retried
				return
			}
			w.Header().Set("ETag", `"p1"`)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	}))
	defer srv.Close()
	b := backendAt(t, srv.URL)
	b.cfg.MaxAttempts = 2
	b, err := New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	path := filepath.Join(t.TempDir(), "staged")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	u, err := b.NewUpload(ctx, "k", backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const off, n = 1000, 300_000
	if err := u.UploadPart(ctx, 1, io.NewSectionReader(f, off, n), n); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 {
		t.Fatalf("%d attempts, want 2 (one retried)", len(bodies))
	}
	for i, body := range bodies {
		if !bytes.Equal(body, content[off:off+n]) {
			t.Errorf("attempt %d sent %d bytes that are not the section", i+1, len(body))
		}
	}
}
