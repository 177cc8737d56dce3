package fs

import (
	"context"
	"errors"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
)

// Orphaned uploads. A CreateMultipartUpload that fails on the client (a timeout, a connection
// reset, a retry that the SDK made after either) may still have been carried out by S3, which
// then holds an upload, billed by its parts, whose ID the mount never learned. S3 returns no
// metadata with ListMultipartUploads, so an upload cannot carry a mark of its mount; what the
// mount knows is the key and when it asked. After such a failure it sweeps the key: it lists the
// key's uploads and aborts those that S3 says were initiated within the window of its request
// and that it does not use itself. The window runs from just before the first attempt to
// lateWindow after the last one: S3 refuses a signed request that arrives more than 15 minutes
// after it was signed, so no attempt is carried out later than that. Another host's upload of
// the same key that starts within that window is aborted too; its writer gets an error at close
// (never a silent loss), and the last writer of a key wins in any case.

// lateWindow bounds how long after it was sent S3 can carry out a request: the validity of a
// SigV4 signature (15 minutes) and some slack for clocks.
const lateWindow = 16 * time.Minute

// clockSlack allows for the difference between this host's clock and S3's Initiated times.
const clockSlack = 10 * time.Second

// window is a span of time in which uploads of a key may have started unbeknown to the mount.
type window struct{ from, to time.Time }

// requestWindow is the window of a request that started at start and ended (failed) now.
func requestWindow(start time.Time) window {
	return window{start.Add(-clockSlack), time.Now().Add(lateWindow)}
}

// errCreating: the sweep found uploads it might abort while the mount was creating one of the
// same key, which may be among them: it tries again later.
var errCreating = errors.New("an upload of the key is being created")

// sweepUploads aborts key's uploads initiated within w except those keep says to keep, and
// returns how many it aborted. If creating (may be nil) reports that an upload of key is being
// created, whose ID keep does not know yet, it aborts nothing and fails with errCreating.
func sweepUploads(ctx context.Context, b backend.Backend, key string, w window, keep func(id string) bool, creating func() bool) (int, error) {
	ups, err := b.ListUploads(ctx, key)
	if err != nil {
		return 0, err
	}
	if creating != nil && creating() {
		return 0, errCreating
	}
	n := 0
	for _, u := range ups {
		if u.Key != key || u.Initiated.Before(w.from) || u.Initiated.After(w.to) || keep(u.UploadID) {
			continue
		}
		if err := b.AbortUpload(ctx, key, u.UploadID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// sweep sweeps key for the uploads a request started at start may have left, in the background:
// at once, again until S3 answers, and a last time when the window has closed, since S3 may carry
// out a request it received long before (a server paused, then resumed). The sweep is recorded
// in the journal until it is done, so the next mount finishes it if this one ends first.
func (r *Root) sweep(key string, start time.Time) {
	w := requestWindow(start)
	name := r.journal.addSweep(key, w)
	go func() {
		keep := r.journal.isLive
		for _, at := range []time.Time{time.Now(), w.to} {
			if !r.sleepUntil(at) {
				return
			}
			for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
				n, err := sweepUploads(r.ctx, r.b, key, w, keep, func() bool { return r.journal.isCreating(key) })
				if n > 0 {
					r.log.Info("aborted multipart uploads whose start was not confirmed", "key", key, "uploads", n)
				}
				if err == nil {
					break
				}
				if errors.Is(err, backend.ErrPermission) {
					r.log.Warn("cannot list multipart uploads to abort those whose start S3 did not confirm; "+
						"allow s3:ListBucketMultipartUploads, or rely on a lifecycle rule (s3mount policy)", "key", key, "err", err)
					r.journal.removeSweep(name)
					return
				}
				r.log.Debug("sweeping multipart uploads failed; trying again", "key", key, "err", err)
				if !r.sleepUntil(time.Now().Add(delay)) {
					return
				}
			}
		}
		r.journal.removeSweep(name)
	}()
}

// abortUntilDone aborts an upload in the background, again until S3 answers, and then forgets it
// in the journal. If the mount ends first, the journal keeps it for the next mount.
func (r *Root) abortUntilDone(u backend.Upload, key string) {
	go func() {
		for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
			ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
			err := u.Abort(ctx)
			cancel()
			if err == nil {
				r.journal.remove(key, u.ID())
				return
			}
			r.log.Debug("aborting a multipart upload failed; trying again", "key", key, "err", err)
			if !r.sleepUntil(time.Now().Add(delay)) {
				r.log.Warn("aborting multipart upload failed; the next mount will", "key", key, "err", err)
				return
			}
		}
	}()
}

// sleepUntil waits until t; it reports false if the filesystem shut down first.
func (r *Root) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return r.ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}
