package fs

import (
	"context"
	"sync"
	"time"
)

// uploadSlots bounds the part uploads and PUTs in flight, mount-wide, and sizes that bound from
// the throughput the parts get. It starts at Options.UploadConcurrency. Each full part sent
// reports its rate (bytes over the time of its request); while parts wait for a slot and a part
// finishes at no less than half the best rate seen, one more slot opens, up to
// Options.MaxUploadConcurrency: where every connection is capped on its own (S3, 25 MiB/s each in
// the benchmark's s3like profile), parts in flight are throughput, and 8 parts of 8 MiB cap a
// writer at 200 MiB/s however fast the network behind them. Where the parts share one
// bottleneck, each one's rate falls as more are sent; below a quarter of the best, a slot
// closes again, down to UploadConcurrency. The best rate decays slowly (by 1/64 each report), so
// that one fast part early on does not hold the bound down for good.
//
// Memory does not grow with the slots: parts are read into at most UploadConcurrency buffers
// (Root.partBuffer); a part that finds them all in use is sent from the staging file.
type uploadSlots struct {
	mu      sync.Mutex // protects the following
	limit   int        // slots open now
	lo, hi  int        // the bounds of limit
	busy    int        // slots taken
	waiters []chan struct{}
	best    float64 // the best rate of a part seen, in bytes per second (decaying)
	peak    int     // the most slots taken at once (tests, metrics)
	// partTime, if set, stands in for the measured time of every part (tests: rates that do not
	// depend on the machine's speed).
	partTime time.Duration
}

func newUploadSlots(lo, hi int) *uploadSlots {
	lo = max(1, lo)
	return &uploadSlots{limit: lo, lo: lo, hi: max(lo, hi)}
}

// acquire waits for a slot, in the order of arrival.
func (s *uploadSlots) acquire(ctx context.Context) error {
	s.mu.Lock()
	if s.busy < s.limit && len(s.waiters) == 0 {
		s.take()
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for i, w := range s.waiters {
			if w == ch {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				s.mu.Unlock()
				return ctx.Err()
			}
		}
		s.mu.Unlock()
		s.release() // granted meanwhile
		return ctx.Err()
	}
}

// take counts a slot taken. Must hold mu.
func (s *uploadSlots) take() {
	s.busy++
	s.peak = max(s.peak, s.busy)
}

// release gives a slot back.
func (s *uploadSlots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy--
	s.grant()
}

// grant hands free slots to the waiters. Must hold mu.
func (s *uploadSlots) grant() {
	for s.busy < s.limit && len(s.waiters) > 0 {
		ch := s.waiters[0]
		s.waiters = s.waiters[1:]
		s.take()
		close(ch)
	}
}

// observe reports a full part of n bytes sent in d, and adjusts the slots open.
func (s *uploadSlots) observe(n int64, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.partTime > 0 {
		d = s.partTime
	}
	if n <= 0 || d <= 0 {
		return
	}
	rate := float64(n) / d.Seconds()
	s.best = max(rate, s.best*(1-1.0/64))
	switch {
	case len(s.waiters) > 0 && rate >= s.best/2 && s.limit < s.hi:
		s.limit++
		s.grant()
	case rate < s.best/4 && s.limit > s.lo:
		s.limit--
	}
}

// state returns the slots open and the most taken at once.
func (s *uploadSlots) state() (limit, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit, s.peak
}
