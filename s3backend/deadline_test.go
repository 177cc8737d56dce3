package s3backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/s3mount/s3mount/fs/backend"
)

// deadlineBackend is a Backend at endpoint with short deadlines and the default retries.
func deadlineBackend(t *testing.T, endpoint string, creds aws.CredentialsProvider, shutdown context.Context) *Backend {
	t.Helper()
	cfg := NewConfig()
	cfg.Bucket, cfg.Endpoint, cfg.PathStyle = "bucket", endpoint, true
	cfg.RequestTimeout, cfg.OpTimeout = 300*time.Millisecond, time.Second
	cfg.Credentials, cfg.Shutdown = creds, shutdown
	if creds == nil {
		cfg.Credentials = credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hungServer accepts connections, reads what is sent and never answers.
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return "http://" + ln.Addr().String()
}

// within runs f and fails the test if it takes longer than d (the bound promised, with room).
func within(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("still waiting after %s", d)
		return nil
	}
}

// TestHungServerFailsWithTimeout: against a server that accepts and never answers, every call
// fails with ErrTimeout, bounded by OpTimeout, not by five attempts of a long wait each.
func TestHungServerFailsWithTimeout(t *testing.T) {
	b := deadlineBackend(t, hungServer(t), nil, nil)
	ctx := context.Background()
	calls := map[string]func() error{
		"Head": func() error { _, err := b.Head(ctx, "k"); return err },
		"List": func() error { _, err := b.List(ctx, backend.ListInput{}); return err },
		"Get":  func() error { _, err := b.Get(ctx, "k", 0, 10, ""); return err },
		"Put": func() error {
			_, err := b.Put(ctx, "k", bytes.NewReader(make([]byte, 1<<20)), 1<<20, backend.PutOptions{})
			return err
		},
	}
	for name, call := range calls {
		err := within(t, 10*time.Second, call)
		if !errors.Is(err, backend.ErrTimeout) || errors.Is(err, context.Canceled) {
			t.Errorf("%s against a hung server: %v, want ErrTimeout", name, err)
		}
	}
}

// hangingCreds is a credentials provider whose refresh never ends (an STS that hangs).
type hangingCreds struct{}

func (hangingCreds) Retrieve(ctx context.Context) (aws.Credentials, error) {
	<-ctx.Done()
	return aws.Credentials{}, ctx.Err()
}

// TestHungCredentialsFailWithTimeout: a call waiting on credentials that never come fails with
// ErrTimeout (not EACCES's ErrCredentials) within OpTimeout.
func TestHungCredentialsFailWithTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	b := deadlineBackend(t, srv.URL, aws.NewCredentialsCache(hangingCreds{}), nil)
	err := within(t, 10*time.Second, func() error { _, err := b.Head(context.Background(), "k"); return err })
	if !errors.Is(err, backend.ErrTimeout) || errors.Is(err, backend.ErrCredentials) {
		t.Errorf("Head while credentials hang: %v, want ErrTimeout", err)
	}
}

// TestShutdownCancelsCallsInFlight: when the shutdown context ends, a call waiting on a hung
// server ends at once.
func TestShutdownCancelsCallsInFlight(t *testing.T) {
	shutdown, stop := context.WithCancel(context.Background())
	b := deadlineBackend(t, hungServer(t), nil, shutdown)
	b.cfg.OpTimeout = time.Hour
	b2, _ := New(b.cfg)
	time.AfterFunc(200*time.Millisecond, stop)
	err := within(t, 5*time.Second, func() error { _, err := b2.Head(context.Background(), "k"); return err })
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Head at shutdown: %v, want an error that is not an interruption", err)
	}
}

// TestSlowBodyIsNotCut: a body that moves slowly, but never stalls for RequestTimeout, is sent
// whole although it takes several times OpTimeout, also while the kernel still sends what was
// handed to it after the last write.
func TestSlowBodyIsNotCut(t *testing.T) {
	const size = 8 << 20
	got := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int64
		buf := make([]byte, 128<<10)
		for {
			m, err := r.Body.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
			time.Sleep(40 * time.Millisecond) // about 3 MiB/s: some 3 s in all
		}
		select {
		case got <- n:
		default:
		}
		w.Header().Set("ETag", `"e"`)
	}))
	t.Cleanup(srv.Close)
	b := deadlineBackend(t, srv.URL, nil, nil)
	// Loopback's window opens in large steps: a write may wait some hundreds of milliseconds.
	b.cfg.RequestTimeout = time.Second
	b, _ = New(b.cfg)
	start := time.Now()
	err := within(t, 60*time.Second, func() error {
		_, err := b.Put(context.Background(), "k", bytes.NewReader(make([]byte, size)), size, backend.PutOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	if n := <-got; n != size {
		t.Errorf("the server got %d bytes, want %d", n, size)
	}
	if took := time.Since(start); took < 2*b.cfg.OpTimeout {
		t.Logf("the upload took %s only: it did not test a body slower than OpTimeout", took)
	}
}
