package fs

import (
	"context"
	"errors"
	"io"

	"github.com/s3mount/s3mount/fs/backend"
)

// readObject reads into dest from off of the version info of an object (pinned by its ETag).
func readObject(ctx context.Context, b backend.Backend, info backend.ObjectInfo, dest []byte, off int64) (int, error) {
	if off >= info.Size {
		return 0, nil
	}
	n := min(int64(len(dest)), info.Size-off)
	body, err := b.Get(ctx, info.Key, off, n, info.ETag)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	got, err := io.ReadFull(body, dest[:n])
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// The object is shorter than when it was opened: it was replaced.
		return got, backend.ErrStale
	}
	return got, err
}
