package fs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/internal/safepath"
)

// staging is the bounded local directory that holds the content of files being written. Each
// dirty file gets an anonymous file here (unlinked at once, so a crash leaves nothing behind).
// Space is accounted per file by its size; writers that would exceed the bound wait for uploads to
// free space, and get ENOSPC if none is freed in time.
type staging struct {
	dir   string
	d     *safepath.Dir // dir, checked (see internal/safepath); files are made through it
	limit int64         // bytes
	wait  time.Duration

	mu   sync.Mutex // protects used
	cond *sync.Cond // signalled whenever used shrinks
	used int64
}

func newStaging(dir string, limit int64, wait time.Duration) (*staging, error) {
	d, err := safepath.MkdirAll(dir)
	if err != nil {
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	s := &staging{dir: dir, d: d, limit: limit, wait: wait}
	s.cond = sync.NewCond(&s.mu)
	return s, nil
}

// create returns a new anonymous file in the staging directory.
func (s *staging) create() (*os.File, error) {
	return s.d.TempFile()
}

// reserve accounts n more bytes (n may be negative to release). Growth blocks while the staging
// directory is over its limit, up to the wait time, then fails with ENOSPC.
func (s *staging) reserve(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		s.used += n
		s.cond.Broadcast()
		return nil
	}
	if s.used+n > s.limit {
		deadline := time.Now().Add(s.wait)
		timer := time.AfterFunc(s.wait, func() {
			s.mu.Lock()
			s.cond.Broadcast()
			s.mu.Unlock()
		})
		defer timer.Stop()
		for s.used+n > s.limit {
			if !time.Now().Before(deadline) {
				return fmt.Errorf("staging directory %s is full (%d of %d bytes in use): %w", s.dir, s.used, s.limit, syscall.ENOSPC)
			}
			s.cond.Wait()
		}
	}
	s.used += n
	return nil
}

// pressure reports whether more than half of the staging space is in use; streaming writers then
// free uploaded parts early.
func (s *staging) pressure() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used > s.limit/2
}

// isNoSpace reports whether err is the disk (or the staging bound) running out of space.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// close releases the staging directory's handle.
func (s *staging) close() { s.d.Close() }
