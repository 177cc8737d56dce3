package creds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// refresher sits between a link's provider and its aws.CredentialsCache and decides when and how
// the cache refreshes:
//
//   - early: credentials are due for refresh min(window, lifetime/3) before they really expire,
//     less up to half of that at random, so that many mounts do not refresh at once and
//     short-lived credentials (minutes) are not refreshed on every request;
//   - in the background: once due, the current credentials keep being served while a refresh
//     runs on its own, so no request waits on STS or IMDS while it holds valid credentials;
//   - through outages: if that refresh fails, the current credentials are kept and the refresh is
//     tried again every few seconds, until they are about to expire. Only then (or for the first
//     credentials) does a request wait on a refresh;
//   - bounded: a refresh that has no answer within timeout is abandoned (its requests cancelled),
//     so that a hung endpoint never holds the cache's single refresh forever, and the next refresh
//     succeeds once the endpoint answers again. The cache runs its refresh on a context without
//     deadline, and every request waiting on it would wait as long.
type refresher struct {
	inner   aws.CredentialsProvider
	name    string
	window  time.Duration
	timeout time.Duration // bound on one refresh; 0: none
	log     *slog.Logger
	notify  func(step string, expires time.Time, err error)

	mu         sync.Mutex      // protects the following
	last       aws.Credentials // with the real expiry
	refreshAt  time.Time       // when last is due for refresh
	background bool            // a background refresh is running
}

// retryOutage is how soon a failed background refresh is tried again while the current
// credentials are in use; credentials are kept only while they have more than keepMargin left.
const (
	retryOutage = 5 * time.Second
	keepMargin  = 2 * retryOutage
)

// Retrieve is called by the cache when what it holds is due (see refreshAt).
func (r *refresher) Retrieve(ctx context.Context) (aws.Credentials, error) {
	now := time.Now()
	r.mu.Lock()
	last, refreshAt := r.last, r.refreshAt
	if last.HasKeys() && last.CanExpire && last.Expires.Sub(now) > keepMargin {
		if now.Before(refreshAt) {
			r.mu.Unlock()
			last.Expires = refreshAt
			return last, nil
		}
		if !r.background {
			r.background = true
			go r.refreshInBackground()
		}
		r.mu.Unlock()
		retry := now.Add(retryOutage)
		if keep := last.Expires.Add(-keepMargin); keep.Before(retry) {
			retry = keep
		}
		last.Expires = retry
		return last, nil
	}
	r.mu.Unlock()
	return r.fetch(ctx)
}

// refreshInBackground refreshes while the current credentials are still served.
func (r *refresher) refreshInBackground() {
	_, err := r.fetch(context.Background())
	r.mu.Lock()
	r.background = false
	expires := r.last.Expires
	r.mu.Unlock()
	if err != nil && r.log != nil {
		r.log.Warn("credential refresh failed; using the current credentials until they expire", "step", r.name, "expires", expires.UTC().Format(time.RFC3339), "err", err)
	}
}

// fetch asks the provider for new credentials, within the timeout, and keeps them.
func (r *refresher) fetch(ctx context.Context) (aws.Credentials, error) {
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	c, err := r.inner.Retrieve(ctx)
	if err != nil && r.timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %s (%w): %w", r.timeout, context.DeadlineExceeded, err)
	}
	if r.notify != nil {
		r.notify(r.name, c.Expires, err)
	}
	if err != nil {
		if r.log != nil {
			r.log.Debug("credential refresh failed", "step", r.name, "err", err)
		}
		return c, err
	}
	now := time.Now()
	refreshAt := c.Expires
	if c.CanExpire {
		early := min(r.window, c.Expires.Sub(now)/3)
		early += time.Duration(rand.Float64() * 0.5 * float64(early))
		refreshAt = c.Expires.Add(-early)
	}
	r.mu.Lock()
	r.last, r.refreshAt = c, refreshAt
	r.mu.Unlock()
	if r.log != nil {
		r.log.Debug("credentials refreshed", "step", r.name, "expires", c.Expires.UTC().Format(time.RFC3339))
	}
	if c.CanExpire {
		c.Expires = refreshAt
	}
	return c, nil
}
