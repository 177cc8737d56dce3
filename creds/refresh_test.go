package creds

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

type scripted struct {
	creds aws.Credentials
	err   error
	calls int
}

func (s *scripted) Retrieve(context.Context) (aws.Credentials, error) {
	s.calls++
	return s.creds, s.err
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
	inner.err = errors.New("sts unavailable")
	c, err = r.Retrieve(context.Background())
	if err != nil || c.AccessKeyID != "A" {
		t.Fatalf("during an outage: %v, %q; want the still-valid credentials", err, c.AccessKeyID)
	}
	if d := time.Until(c.Expires); d > retryOutage+time.Second {
		t.Errorf("kept credentials are retried in %s, want within %s", d, retryOutage)
	}
	// Credentials about to expire are not kept.
	inner.creds.Expires = time.Now().Add(3 * time.Second)
	inner.err = nil
	if _, err := r.Retrieve(context.Background()); err != nil {
		t.Fatal(err)
	}
	inner.err = errors.New("sts unavailable")
	if _, err := r.Retrieve(context.Background()); err == nil {
		t.Error("expiring credentials were kept through an outage")
	}
}
