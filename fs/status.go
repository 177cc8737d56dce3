package fs

import (
	"sort"
	"sync"
	"time"
)

// Status is a snapshot of what a mount is doing, for `s3mount status`. It holds keys and error
// messages (never credentials); the daemon shows it only to the user who mounted.
type Status struct {
	Writing       []WritingFile `json:"writing"`         // files with local content, by key
	PartsInFlight int           `json:"parts_in_flight"` // part uploads under way, all files
	// LastCommit is the outcome of the latest commit (close, fsync) that sent something to S3;
	// nil before the first.
	LastCommit *CommitEvent `json:"last_commit,omitempty"`
	// Errors are the failures of the window given to Status (newest last, at most
	// maxStatusErrors); ErrorCount counts all of them.
	Errors     []ErrorEvent `json:"errors"`
	ErrorCount int          `json:"error_count"`

	StagingUsed   int64 `json:"staging_used_bytes"`
	StagingLimit  int64 `json:"staging_limit_bytes"`
	CacheLimit    int64 `json:"cache_limit_bytes"` // the block cache in memory (0: off)
	DiskCacheUsed int64 `json:"disk_cache_used_bytes"`
	DiskCacheMax  int64 `json:"disk_cache_limit_bytes"` // 0: off
}

// WritingFile is a file with local content not (or not yet all) in S3.
type WritingFile struct {
	Key           string `json:"key"`
	Size          int64  `json:"size"`
	Open          bool   `json:"open"`            // some handle still has it open
	Dirty         bool   `json:"dirty"`           // differs from what S3 holds
	PartsInFlight int    `json:"parts_in_flight"` // its part uploads under way
}

// CommitEvent is the outcome of one commit.
type CommitEvent struct {
	Time  time.Time `json:"time"`
	Key   string    `json:"key"`
	Error string    `json:"error,omitempty"` // "" when it succeeded
}

// ErrorEvent is one failure: a FUSE operation that failed with an unexpected errno (those logged
// as warnings, see Root.fail), or a failed commit.
type ErrorEvent struct {
	Time  time.Time `json:"time"`
	Op    string    `json:"op"`
	Path  string    `json:"path,omitempty"`
	Errno string    `json:"errno,omitempty"`
	Error string    `json:"error"`
}

// maxStatusErrors is how many recent errors are kept (and shown) at most.
const maxStatusErrors = 32

// eventLog keeps the recent errors and the last commit.
type eventLog struct {
	mu     sync.Mutex // protects the following
	errors []ErrorEvent
	count  []time.Time // the times of the errors, also those no longer in errors (bounded)
	last   *CommitEvent
}

// maxErrorTimes bounds the error times kept for counting.
const maxErrorTimes = 4096

func (l *eventLog) addError(e ErrorEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, e)
	if len(l.errors) > maxStatusErrors {
		l.errors = append(l.errors[:0], l.errors[len(l.errors)-maxStatusErrors:]...)
	}
	l.count = append(l.count, e.Time)
	if len(l.count) > maxErrorTimes {
		l.count = append(l.count[:0], l.count[len(l.count)-maxErrorTimes/2:]...)
	}
}

// noteCommit records the outcome of a commit that sent something (or tried to).
func (r *Root) noteCommit(key string, err error) {
	e := &CommitEvent{Time: time.Now(), Key: key}
	if err != nil {
		e.Error = err.Error()
		r.events.addError(ErrorEvent{Time: e.Time, Op: "commit", Path: key, Error: e.Error})
	}
	r.events.mu.Lock()
	r.events.last = e
	r.events.mu.Unlock()
}

// Status returns what the mount is doing now, with the errors of the last window.
func (r *Root) Status(window time.Duration) Status {
	var s Status
	r.mu.Lock()
	files := make([]*File, 0, len(r.active))
	for f := range r.active {
		files = append(files, f)
	}
	r.mu.Unlock()
	for _, f := range files {
		f.mu.Lock()
		d, open := f.dirty, f.opens > 0
		f.mu.Unlock()
		if d == nil {
			continue
		}
		size, _, dirty := d.stat()
		d.mu.Lock()
		inflight := d.inflight
		d.mu.Unlock()
		s.Writing = append(s.Writing, WritingFile{Key: f.key(), Size: size, Open: open, Dirty: dirty, PartsInFlight: inflight})
		s.PartsInFlight += inflight
	}
	sort.Slice(s.Writing, func(i, j int) bool { return s.Writing[i].Key < s.Writing[j].Key })

	since := time.Now().Add(-window)
	r.events.mu.Lock()
	if r.events.last != nil {
		last := *r.events.last
		s.LastCommit = &last
	}
	for _, e := range r.events.errors {
		if e.Time.After(since) {
			s.Errors = append(s.Errors, e)
		}
	}
	for _, t := range r.events.count {
		if t.After(since) {
			s.ErrorCount++
		}
	}
	r.events.mu.Unlock()

	r.staging.mu.Lock()
	s.StagingUsed, s.StagingLimit = r.staging.used, r.staging.limit
	r.staging.mu.Unlock()
	s.CacheLimit = r.opts.CacheSize
	if dc := r.cache.disk; dc != nil {
		dc.mu.Lock()
		s.DiskCacheUsed, s.DiskCacheMax = dc.used, dc.limit
		dc.mu.Unlock()
	}
	return s
}
