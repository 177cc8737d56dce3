package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// noXattrs is embedded by every node: extended attributes are not stored (an object's user
// metadata holds the POSIX attributes). ENOSYS tells the kernel so once for the whole mount;
// callers then get EOPNOTSUPP from the kernel without a request, which matters for tools that
// ask for every file (`ls -l` looks up each file's ACL).
type noXattrs struct{}

var (
	_ = (fusefs.NodeGetxattrer)((*noXattrs)(nil))
	_ = (fusefs.NodeSetxattrer)((*noXattrs)(nil))
	_ = (fusefs.NodeListxattrer)((*noXattrs)(nil))
	_ = (fusefs.NodeRemovexattrer)((*noXattrs)(nil))
)

// Getxattr implements fusefs.NodeGetxattrer.
func (noXattrs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Setxattr implements fusefs.NodeSetxattrer.
func (noXattrs) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOSYS
}

// Listxattr implements fusefs.NodeListxattrer.
func (noXattrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Removexattr implements fusefs.NodeRemovexattrer.
func (noXattrs) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENOSYS
}
