package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend"
)

// toErrno maps an error to the errno returned to the kernel. It is the only such mapping in the
// program. Errors the filesystem raises itself are syscall.Errno values (wrapped or not); backend
// errors are classified by the backend sentinels; anything unknown is EIO.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, backend.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, backend.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, backend.ErrStale):
		return syscall.ESTALE
	case errors.Is(err, backend.ErrTimeout):
		return syscall.ETIMEDOUT
	case errors.Is(err, backend.ErrPermission), errors.Is(err, backend.ErrCredentials):
		return syscall.EACCES
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	default:
		return syscall.EIO
	}
}

// errnoName returns the symbolic name of an errno (ENOENT), or its number.
func errnoName(e syscall.Errno) string {
	if name := unix.ErrnoName(e); name != "" {
		return name
	}
	return fmt.Sprint(int(e))
}

// op counts one FUSE operation and returns the function, to defer, that records its latency:
// defer r.op("read")().
func (r *Root) op(name string) func() {
	r.opts.Metrics.Inc("s3mount_fuse_ops_total", "FUSE operations by operation", "op", name)
	start := time.Now()
	return func() {
		r.opts.Metrics.Since("s3mount_fuse_op_duration_seconds", "latency of FUSE operations by operation", start, "op", name)
	}
}

// fail logs a failed operation once, at the FUSE boundary, and returns its errno. Expected
// outcomes (ENOENT, EEXIST, ENOTEMPTY...) are logged at debug level, the rest as warnings.
func (r *Root) fail(op, path string, err error) syscall.Errno {
	errno := toErrno(err)
	r.opts.Metrics.Inc("s3mount_fuse_errors_total", "FUSE operations that failed, by operation and errno", "op", op, "errno", errnoName(errno))
	level := slog.LevelWarn
	switch errno {
	case syscall.ENOENT, syscall.EEXIST, syscall.ENOTEMPTY, syscall.EINTR, syscall.EROFS, syscall.ENOTDIR, syscall.EISDIR:
		level = slog.LevelDebug
	}
	r.log.Log(context.Background(), level, "operation failed", "op", op, "path", path, "errno", errno.Error(), "err", err)
	if level == slog.LevelWarn && err != nil {
		r.events.addError(ErrorEvent{Time: time.Now(), Op: op, Path: path, Errno: errnoName(errno), Error: err.Error()})
	}
	return errno
}
