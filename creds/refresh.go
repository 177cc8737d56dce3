package creds

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// refresher sits between a link's provider and its aws.CredentialsCache and decides when the
// cache should refresh:
//
//   - early: credentials are reported to the cache as expiring min(window, lifetime/3) before they
//     really do, less up to half of that at random, so that many mounts do not refresh at once and
//     short-lived credentials (minutes) are not refreshed on every request;
//   - through outages: if a refresh fails while the previous credentials are still valid for a
//     while, those are kept (and retried again in a few seconds), so that a short STS or IMDS outage
//     never fails a transfer.
type refresher struct {
	inner  aws.CredentialsProvider
	name   string
	window time.Duration
	log    *slog.Logger
	notify func(step string, expires time.Time, err error)

	mu   sync.Mutex      // protects last
	last aws.Credentials // with the real expiry
}

// retryOutage is how soon a refresh is tried again while kept credentials are in use.
const retryOutage = 5 * time.Second

func (r *refresher) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := r.inner.Retrieve(ctx)
	if r.notify != nil {
		r.notify(r.name, c.Expires, err)
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if last := r.last; last.HasKeys() && last.CanExpire && last.Expires.Sub(now) > 2*retryOutage {
			if r.log != nil {
				r.log.Warn("credential refresh failed; using the current credentials until they expire", "step", r.name, "expires", last.Expires.UTC().Format(time.RFC3339), "err", err)
			}
			last.Expires = now.Add(retryOutage)
			return last, nil
		}
		if r.log != nil {
			r.log.Debug("credential refresh failed", "step", r.name, "err", err)
		}
		return c, err
	}
	r.last = c
	if r.log != nil {
		r.log.Debug("credentials refreshed", "step", r.name, "expires", c.Expires.UTC().Format(time.RFC3339))
	}
	if c.CanExpire {
		early := min(r.window, c.Expires.Sub(now)/3)
		early += time.Duration(rand.Float64() * 0.5 * float64(early))
		c.Expires = c.Expires.Add(-early)
	}
	return c, nil
}
