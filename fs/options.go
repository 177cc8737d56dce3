package fs

import (
	"fmt"
	"github.com/s3mount/s3mount/fs/metrics"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Options configures one mount. Start from DefaultOptions.
type Options struct {
	// Prefix is the key prefix mounted at the root: "" for the whole bucket, otherwise it ends in "/".
	Prefix string
	// FsName is shown as the mount's source in /proc/mounts (e.g. "s3://bucket/prefix").
	FsName string
	// ReadOnly refuses every modification with EROFS.
	ReadOnly bool
	// UID and GID own every file and directory.
	UID, GID uint32
	// FileMode and DirMode are the permission bits of files and directories without stored modes.
	FileMode, DirMode uint32
	// AllowOther lets users other than the mounting one access the mount (needs user_allow_other
	// in /etc/fuse.conf for non-root mounts). AllowRoot is libfuse's allow_root, which
	// fusermount3 refuses (cmd/s3mount drops it for a mount by root and refuses it otherwise).
	AllowOther, AllowRoot bool
	// DefaultPermissions makes the kernel check permission bits against UID, GID and the modes.
	// Without it nothing checks the caller: whoever AllowOther or AllowRoot lets in may do
	// anything the backend allows (cmd/s3mount turns it on with them).
	DefaultPermissions bool
	// Suid shows the setuid and setgid bits stored on objects and mounts without nosuid. By
	// default they are hidden (a copy out of the mount never makes a setuid file from a bucket's
	// metadata) and the mount is nosuid,nodev. Device files, FIFOs and sockets never appear: a
	// stored mode of those types shows as a regular file.
	Suid bool
	// EntryTTL and AttrTTL are how long the kernel may cache names and attributes; NegativeTTL how
	// long it may cache "no such file". They are also the window in which a change made by another
	// S3 client may go unseen.
	EntryTTL, AttrTTL, NegativeTTL time.Duration
	// ListingAttrs shows files as a listing describes them (size, ETag, LastModified as mtime,
	// FileMode, UID and GID), without a HEAD per file for the attributes stored on it: `ls -l` of a
	// large directory then costs its LIST pages alone. Stored modes, owners and times, and symlinks
	// (which show as files), appear once a name is looked up outside a fresh listing (see
	// SEMANTICS.md); they are still read before a file is changed, and written as usual.
	ListingAttrs bool
	// LookupHead looks names up with HEAD. Otherwise (and when the block cache is on) a lookup by
	// name GETs the object's first 256 KiB instead: the reply carries what HEAD returns, and the
	// open and read that usually follow a lookup find the block in memory, one request fewer
	// before the first byte. A name that is only stat'ed then costs up to 256 KiB of transfer.
	LookupHead bool
	// ListPageSize is the MaxKeys of each ListObjectsV2 request.
	ListPageSize int
	// CacheSize bounds the block cache (bytes of object content kept in memory); 0 turns it off.
	CacheSize int64
	// KernelReadahead is the kernel's read-ahead for the mount (and so the largest read request
	// it sends); 0 keeps the kernel's default of 128 KiB. Setting it needs root.
	KernelReadahead int64
	// DiskCacheSize bounds the local disk used to keep whole objects that are read at random (see
	// diskcache.go), at most half the free space; 0 turns it off. DiskCacheDir holds it ("" means
	// StagingDir/cache); each mount uses its own subdirectory and removes it at unmount.
	DiskCacheDir  string
	DiskCacheSize int64
	// ReadPartSize is the size of each ranged GET of read-ahead; ReadConcurrency bounds the GETs
	// in flight mount-wide.
	ReadPartSize    int64
	ReadConcurrency int
	// MaxReadahead is the largest read-ahead window of one sequential reader: it grows to 64 MiB
	// (or MaxReadahead if less) as the reader reads on, and beyond only while the reader waits for
	// the GETs in flight (see prefetch.go). ReadaheadBudget bounds the bytes fetched ahead by all
	// readers together, shared equally among them (beyond it, reads go without).
	MaxReadahead, ReadaheadBudget int64
	// PartSize is the multipart part size of uploads (at least 5 MiB); it doubles every 1,000 parts
	// so that objects up to 5 TiB fit in 10,000 parts. Files up to one part are sent with one PUT.
	PartSize int64
	// UploadConcurrency is how many parts (and PUTs) are uploaded at once, mount-wide, to start
	// with; while each part keeps its throughput as more are sent, up to MaxUploadConcurrency
	// (see uploadslots.go). With PartSize it bounds the memory used for uploads: at most
	// UploadConcurrency part buffers; the parts beyond are sent from the staging file.
	UploadConcurrency, MaxUploadConcurrency int
	// StagingDir holds the content of files being written, and the journal of multipart uploads
	// in progress (so the next mount with the same StagingDir cleans up after a crash).
	StagingDir string
	// StagingSize bounds the bytes staged at once. Writers that would exceed it wait up to
	// StagingWait for uploads to free space, then get ENOSPC.
	StagingSize int64
	StagingWait time.Duration
	// Logger receives errors and debug traces; nil discards them.
	Logger *slog.Logger
	// Metrics counts FUSE operations, their errors and cache hits; nil records nothing.
	Metrics *metrics.Registry
	// Debug logs every FUSE request (very verbose), without the file data they carry.
	Debug bool
	// DebugLog receives the Debug log; nil is standard error.
	DebugLog io.Writer
}

// DefaultOptions returns the defaults: read-write, owned by the calling process's user, 0644 files
// and 0755 directories, one-second metadata TTLs.
func DefaultOptions() Options {
	return Options{
		UID:          uint32(os.Getuid()),
		GID:          uint32(os.Getgid()),
		FileMode:     0o644,
		DirMode:      0o755,
		EntryTTL:     time.Second,
		AttrTTL:      time.Second,
		NegativeTTL:  time.Second,
		ListPageSize: 1000,

		CacheSize:       256 << 20,
		DiskCacheSize:   2 << 30,
		KernelReadahead: 1 << 20,
		ReadPartSize:    8 << 20,
		ReadConcurrency: 32,
		MaxReadahead:    64 << 20,
		ReadaheadBudget: 256 << 20,

		PartSize:             8 << 20,
		UploadConcurrency:    8,
		MaxUploadConcurrency: 32,
		StagingDir:           filepath.Join(os.TempDir(), fmt.Sprintf("s3mount-%d", os.Getuid())),
		StagingSize:          4 << 30,
		StagingWait:          30 * time.Second,
	}
}
