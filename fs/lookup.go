package fs

import (
	"context"
	"errors"
	"syscall"

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
		info, err := r.b.Head(ctx, key)
		head <- headResult{info, err}
	}()
	page, listErr := r.b.List(ctx, backend.ListInput{Prefix: dirPrefix(key), Delimiter: "/", MaxKeys: 1})
	h := <-head
	switch {
	case listErr == nil && (len(page.Objects) > 0 || len(page.Prefixes) > 0):
		return dirEntry{name: name, isDir: true}, nil
	case h.err == nil:
		return dirEntry{name: name, info: h.info}, nil
	case !errors.Is(h.err, backend.ErrNotExist):
		return dirEntry{}, h.err
	case listErr != nil:
		return dirEntry{}, listErr
	}
	return dirEntry{}, syscall.ENOENT
}
