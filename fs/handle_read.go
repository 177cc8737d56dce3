package fs

import (
	"context"
	"errors"
	"io"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/s3mount/s3mount/fs/backend"
)

// readHandle is a file opened for reading.
type readHandle struct {
	root *Root
	info backend.ObjectInfo // key and ETag pinned at open
}

var _ = (fusefs.FileReader)((*readHandle)(nil))

// Read implements fusefs.FileReader.
func (h *readHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.readAt(ctx, dest, off)
	if err != nil {
		return nil, h.root.fail("read", h.info.Key, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// readAt reads into dest from off, short only at the end of the object.
func (h *readHandle) readAt(ctx context.Context, dest []byte, off int64) (int, error) {
	return readObject(ctx, h.root.b, h.info, dest, off)
}

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
