package creds

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// scripted is a provider whose answers the test sets; hang makes a call wait for its context.
type scripted struct {
	mu    sync.Mutex
	creds aws.Credentials
	err   error
	hang  bool
	calls int
}

func (s *scripted) set(f func(*scripted)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *scripted) Retrieve(ctx context.Context) (aws.Credentials, error) {
	s.mu.Lock()
	s.calls++
	c, err, hang := s.creds, s.err, s.hang
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return aws.Credentials{}, ctx.Err()
	}
	return c, err
}

// due makes r's credentials due for refresh now, as if time had passed.
func (r *refresher) due() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshAt = time.Now().Add(-time.Second)
}

// waitBackground waits until no background refresh runs.
func (r *refresher) waitBackground(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		bg := r.background
		r.mu.Unlock()
		if !bg {
			return
		}
	}
	t.Fatal("the background refresh did not end")
}

func TestRefresherRefreshesEarlyAndRidesOutOutages(t *testing.T) {
	real := time.Now().Add(90 * time.Second)
	inner := &scripted{creds: aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S", CanExpire: true, Expires: real}}
	r := &refresher{inner: inner, name: "hop 1", window: 5 * time.Minute}
	c, err := r.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Lifetime 90 s: refresh at most 30 s (+ up to 15 s of jitter) early, not 5 minutes early.
	if early := real.Sub(c.Expires); early < 29*time.Second || early > 46*time.Second {
		t.Errorf("refreshes %s before expiry, want 30-45 s", early)
	}
	inner.set(func(s *scripted) { s.err = errors.New("sts unavailable") })
	r.due()
	c, err = r.Retrieve(context.Background())
	if err != nil || c.AccessKeyID != "A" {
		t.Fatalf("during an outage: %v, %q; want the still-valid credentials", err, c.AccessKeyID)
	}
	if d := time.Until(c.Expires); d > retryOutage+time.Second {
		t.Errorf("kept credentials are retried in %s, want within %s", d, retryOutage)
	}
	r.waitBackground(t)
	// Credentials about to expire are not kept.
	inner.set(func(s *scripted) { s.creds.Expires, s.err = time.Now().Add(3*time.Second), nil })
	r.due()
	r.Retrieve(context.Background())
	r.waitBackground(t)
	inner.set(func(s *scripted) { s.err = errors.New("sts unavailable") })
	if _, err := r.Retrieve(context.Background()); err == nil {
		t.Error("expiring credentials were kept through an outage")
	}
}

// TestRefreshDoesNotHoldRequests: once credentials are due, requests get the current ones at
// once while the refresh runs (here: hangs) in the background.
func TestRefreshDoesNotHoldRequests(t *testing.T) {
	inner := &scripted{creds: aws.Credentials{AccessKeyID: "A", SecretAccessKey: "S", CanExpire: true, Expires: time.Now().Add(time.Hour)}}
	r := &refresher{inner: inner, name: "hop 1", window: 5 * time.Minute, timeout: 200 * time.Millisecond}
	cache := aws.NewCredentialsCache(r, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 0 })
	if _, err := cache.Retrieve(context.Background()); err != nil {
		t.Fatal(err)
	}
	inner.set(func(s *scripted) { s.hang = true })
	r.due()
	cache.Invalidate()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c, err := cache.Retrieve(ctx)
	if err != nil || c.AccessKeyID != "A" {
		t.Fatalf("a request while a refresh hangs: %v, %q; want the current credentials at once", err, c.AccessKeyID)
	}
	r.waitBackground(t)
}

// TestHungRefreshIsAbandoned: a refresh that gets no answer fails within the timeout instead of
// holding the cache's one refresh forever, and the next refresh succeeds once the endpoint answers.
func TestHungRefreshIsAbandoned(t *testing.T) {
	inner := &scripted{hang: true, creds: aws.Credentials{AccessKeyID: "B", SecretAccessKey: "S", CanExpire: true, Expires: time.Now().Add(time.Hour)}}
	r := &refresher{inner: inner, name: "hop 1", window: 5 * time.Minute, timeout: 200 * time.Millisecond}
	cache := aws.NewCredentialsCache(r)
	done := make(chan error, 1)
	go func() { _, err := cache.Retrieve(context.Background()); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a hung refresh: %v, want a deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a hung refresh holds its caller")
	}
	inner.set(func(s *scripted) { s.hang = false })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := cache.Retrieve(ctx); err != nil || c.AccessKeyID != "B" {
		t.Errorf("after the endpoint recovered: %v, %q", err, c.AccessKeyID)
	}
}
