package shaper

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// throttle is a token bucket per prefix and kind of request (read: GET and HEAD; write: the rest).
type throttle struct {
	readRate, writeRate, burst float64

	mu      sync.Mutex // guards buckets
	buckets map[bucketKey]*bucket
}

type bucketKey struct {
	write  bool
	prefix string
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newThrottle(p Profile) *throttle {
	burst := p.Burst
	if burst <= 0 {
		burst = 1
	}
	return &throttle{readRate: p.ReadRate, writeRate: p.WriteRate, burst: burst, buckets: map[bucketKey]*bucket{}}
}

// allow takes a token for r's prefix, if one is left at now.
func (t *throttle) allow(r *http.Request, now time.Time) bool {
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	rate := t.readRate
	if write {
		rate = t.writeRate
	}
	if rate <= 0 {
		return true
	}
	k := bucketKey{write, Prefix(r)}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buckets[k]
	if b == nil {
		b = &bucket{tokens: rate * t.burst, last: now}
		t.buckets[k] = b
	}
	b.tokens = min(rate*t.burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Prefix is the prefix a path-style S3 request counts against: the bucket and the key up to its
// last slash, or for a request on the bucket (a LIST) its prefix parameter up to its last slash.
func Prefix(r *http.Request) string {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if key == "" {
		key = r.URL.Query().Get("prefix")
	}
	return bucket + "/" + key[:strings.LastIndexByte(key, '/')+1]
}
