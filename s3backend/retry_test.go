package s3backend

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

// TestRetriesAreReported: OnRetry hears of each attempt tried again, with its operation and
// whether S3 throttled it; a request that succeeds at once reports nothing.
func TestRetriesAreReported(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(503)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>m</Message></Error>`)
		case 2:
			w.WriteHeader(500)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>m</Message></Error>`)
		default:
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(200)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := NewConfig()
	cfg.Bucket, cfg.Endpoint, cfg.PathStyle = "bucket", srv.URL, true
	cfg.MaxAttempts = 3
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")
	var mu sync.Mutex
	var got []string
	cfg.OnRetry = func(op string, throttled bool) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s throttled=%v", op, throttled))
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second succeeds at once
		if _, err := b.Head(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[HeadObject throttled=true HeadObject throttled=false]"; fmt.Sprint(got) != want {
		t.Errorf("retries reported: %v, want %s", got, want)
	}
}
