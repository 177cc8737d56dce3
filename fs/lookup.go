package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
)

// lookupEntry finds name in the directory with key prefix dir. It asks S3 for the object and for
// the prefix at the same time; a directory shadows a file of the same name (see SEMANTICS.md).
func (r *Root) lookupEntry(ctx context.Context, dir, name string) (dirEntry, error) {
	if len(name) > maxNameLen {
		return dirEntry{}, syscall.ENAMETOOLONG
	}
	if !validName(name) {
		return dirEntry{}, syscall.ENOENT
	}
	key := childKey(dir, name)
	type headResult struct {
		info backend.ObjectInfo
		err  error
	}
	head := make(chan headResult, 1)
	go func() {
		info, err := r.statObject(ctx, key)
		head <- headResult{info, err}
	}()
	page, listErr := r.b.List(ctx, backend.ListInput{Prefix: dirPrefix(key), Delimiter: "/", MaxKeys: 1})
	h := <-head
	switch {
	case listErr == nil && (len(page.Objects) > 0 || len(page.Prefixes) > 0):
		e := dirEntry{name: name, isDir: true}
		if len(page.Objects) > 0 && page.Objects[0].Key == dirPrefix(key) {
			// The directory has a marker, which may carry its attributes.
			if info, err := r.b.Head(ctx, dirPrefix(key)); err == nil {
				e.info = info
			}
		}
		return e, nil
	case h.err == nil:
		return dirEntry{name: name, info: h.info}, nil
	case !errors.Is(h.err, backend.ErrNotExist):
		return dirEntry{}, h.err
	case listErr != nil:
		return dirEntry{}, listErr
	}
	r.rememberMissing(key)
	return dirEntry{}, syscall.ENOENT
}

// statObject returns the info of the object key, as HEAD does. Unless Options.LookupHead (or
// with the cache off), it GETs the object's first block instead and keeps the block for the read
// that usually follows a lookup, answering once the headers are in (see blockCache.loadFirst). If
// that GET fails for any reason but a missing object (an archived object, a KMS key this role may
// not use, a range refused on an empty object), HEAD answers.
func (r *Root) statObject(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if r.opts.LookupHead || r.opts.CacheSize <= 0 {
		return r.b.Head(ctx, key)
	}
	info, body, err := r.b.GetFirst(ctx, key, blockSize)
	if err == nil {
		r.cache.loadFirst(info, body)
		return info, nil // the headers are whole even if the body breaks off
	}
	if errors.Is(err, backend.ErrNotExist) {
		return backend.ObjectInfo{}, err
	}
	return r.b.Head(ctx, key)
}

// rememberMissing notes that key was just found missing. Create trusts such a recent answer (the
// kernel looks a name up right before creating it) instead of asking S3 again.
func (r *Root) rememberMissing(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.missing) > 10000 {
		clear(r.missing)
	}
	r.missing[key] = time.Now()
}

// recentlyMissing reports whether key was found missing within the negative TTL.
func (r *Root) recentlyMissing(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.missing[key]
	return ok && time.Since(t) < r.opts.NegativeTTL
}

// forgetMissing drops key from the missing set, once something was created there.
func (r *Root) forgetMissing(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.missing, key)
}
