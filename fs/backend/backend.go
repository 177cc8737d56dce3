// Package backend is the object-store contract that the filesystem in package fs is written against.
//
// It is owned by the filesystem (package fs) but lives in its own package so that implementations
// (s3backend, the in-memory fake memback) can satisfy it without importing go-fuse.
//
// # Errors
//
// Implementations classify failures into the sentinels below (wrapped, so errors.Is works), and
// return anything else as an ordinary error that the filesystem reports as EIO. ErrNotExist,
// ErrPermission and ErrExist are the io/fs sentinels, so errors.Is(err, fs.ErrNotExist) also holds.
//
// # Keys
//
// Keys are full object keys (any configured mount prefix already applied). "/" is the only
// delimiter the filesystem uses.
package backend

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"time"
)

// Sentinel errors; implementations wrap them with %w.
var (
	// ErrNotExist: the object (HEAD/GET/copy source) or the bucket does not exist.
	ErrNotExist = iofs.ErrNotExist
	// ErrPermission: the credentials are not allowed to do this (S3 AccessDenied, 403).
	ErrPermission = iofs.ErrPermission
	// ErrExist: a conditional create (If-None-Match: *) found the key already present.
	ErrExist = iofs.ErrExist
	// ErrStale: the object changed since it was opened (If-Match on the ETag failed, 412).
	ErrStale = errors.New("object was mutated remotely")
	// ErrCredentials: no valid credentials could be obtained (expired, revoked source, STS down).
	ErrCredentials = errors.New("credentials unavailable")
	// ErrTimeout: the server (or STS, or IMDS for credentials) did not answer in time, through all
	// retries.
	ErrTimeout = errors.New("no answer in time")
	// ErrThrottled: the server kept answering SlowDown/503 after all retries.
	ErrThrottled = errors.New("request throttled by the server")
)

// ObjectInfo describes one object. ModTime is S3's LastModified unless Meta carries an mtime.
type ObjectInfo struct {
	Key     string
	Size    int64
	ETag    string // as S3 returns it, including quotes
	ModTime time.Time
	// Meta holds user metadata (names lower-case, without the x-amz-meta- prefix). It is filled by
	// Head; List leaves it nil because ListObjectsV2 does not return metadata.
	Meta map[string]string
	// Headers are the object's standard headers, filled by Head (not by List).
	Headers Headers
}

// Headers are the standard headers an object stores beside its user metadata, which a client
// sets when it writes the object and S3 returns with it.
type Headers struct {
	ContentType, CacheControl, ContentDisposition, ContentEncoding, ContentLanguage string
}

// ListInput selects one page of a listing.
type ListInput struct {
	Prefix    string
	Delimiter string // "/" for a directory listing, "" for everything below Prefix
	Token     string // continuation token from the previous page; "" for the first page
	MaxKeys   int    // 0 means the implementation's default (1000 on S3)
}

// Page is one page of a listing. Objects and Prefixes are each in ascending key order; together they
// hold at most MaxKeys entries.
type Page struct {
	Objects   []ObjectInfo
	Prefixes  []string // common prefixes, each ending in the delimiter
	NextToken string   // "" when this was the last page
}

// PutOptions controls how an object is written.
type PutOptions struct {
	// IfNoneMatch makes the write fail with ErrExist if the key already exists (If-None-Match: *).
	IfNoneMatch bool
	// Meta is stored as user metadata (x-amz-meta-<name>).
	Meta map[string]string
	// Headers are stored with the object; an empty one is left out (S3's default).
	Headers Headers
}

// CopyMeta chooses what a copy stores, given the version of the source it copies (with its
// metadata and headers): nil keeps the source's, other options replace them.
type CopyMeta func(src ObjectInfo) *PutOptions

// Replace is the CopyMeta that stores opts, whatever the source.
func Replace(opts PutOptions) CopyMeta {
	return func(ObjectInfo) *PutOptions { return &opts }
}

// Backend is an object store. Implementations must be safe for concurrent use.
type Backend interface {
	// Head returns the object's info including its metadata, or ErrNotExist.
	Head(ctx context.Context, key string) (ObjectInfo, error)

	// List returns one page. A missing prefix is an empty page, not an error.
	List(ctx context.Context, in ListInput) (Page, error)

	// Get returns n bytes of the object from offset off (fewer at the end of the object; n < 0 means
	// to the end). If ifMatch is not empty and the object's ETag differs, or the object is gone, it
	// fails with ErrStale: the version asked for no longer exists.
	// The caller closes the reader. Reading at or past the end returns an empty reader.
	Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error)

	// GetFirst returns the object's info, as Head does, with a reader of its first n bytes (all
	// of it when it is smaller), in one request; the caller closes the reader. It fails with
	// ErrNotExist as Head does; after any other failure (an archived object, a KMS key the caller
	// may not use, a range the server refuses on an empty object) the caller may still Head.
	GetFirst(ctx context.Context, key string, n int64) (ObjectInfo, io.ReadCloser, error)

	// Put stores size bytes from body as the object in one request and returns its new info. It is
	// all-or-nothing: on error the previous object (if any) is unchanged.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) (ObjectInfo, error)

	// NewUpload starts a multipart upload of key. Nothing is visible under key until Complete.
	NewUpload(ctx context.Context, key string, opts PutOptions) (Upload, error)

	// Copy copies src to dst (server side) and returns dst's new info and the ETag of the version
	// of src it copied. The copy keeps the source's metadata and headers, or, if meta is not nil
	// and returns options for that version of src, replaces them with their Meta and Headers
	// (IfNoneMatch is not used). The copy is all-or-nothing.
	Copy(ctx context.Context, src, dst string, meta CopyMeta) (info ObjectInfo, srcETag string, err error)

	// Delete removes key. Deleting a missing key succeeds.
	Delete(ctx context.Context, key string) error

	// ListUploads lists incomplete multipart uploads under prefix; AbortUpload aborts one. They let
	// a new mount clean up what a crashed one left behind.
	ListUploads(ctx context.Context, prefix string) ([]PendingUpload, error)
	AbortUpload(ctx context.Context, key, uploadID string) error
}

// Upload is one multipart upload in progress.
//
// UploadPart may be called concurrently for different part numbers (1..10000), and again for a
// number already uploaded (the last upload of a number wins); every part but the last must be at
// least MinPartSize bytes. The body holds size bytes; it may be read more than once (to hash it
// before sending, and again on a retry). Complete(n) assembles parts 1..n in order into the
// object (parts above n are dropped); Abort releases everything. After a failed Complete the
// caller must Abort.
type Upload interface {
	ID() string
	UploadPart(ctx context.Context, number int32, body io.ReadSeeker, size int64) error
	Complete(ctx context.Context, parts int32) (ObjectInfo, error)
	Abort(ctx context.Context) error
}

// Retrier is implemented by an Upload that can tell whether the request that started it was
// sent more than once: an earlier attempt may have started another upload, whose answer was lost.
type Retrier interface {
	Retried() bool
}

// PendingUpload is an incomplete multipart upload found on the server.
type PendingUpload struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// MinPartSize is S3's minimum size of every part but the last.
const MinPartSize = 5 << 20

// MaxParts is S3's maximum number of parts of one upload.
const MaxParts = 10000
