// Package s3backend implements backend.Backend on Amazon S3 (and S3-compatible servers) with
// aws-sdk-go-v2. It knows nothing of FUSE: it turns backend calls into S3 requests and S3 errors into
// the backend sentinels (see classify). No call waits on the network without bound (deadline.go).
package s3backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend"
)

// API is the part of *s3.Client this package uses; tests substitute stubs.
type API interface {
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CopyObject(context.Context, *s3.CopyObjectInput, ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	ListMultipartUploads(context.Context, *s3.ListMultipartUploadsInput, ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	GetBucketLocation(context.Context, *s3.GetBucketLocationInput, ...func(*s3.Options)) (*s3.GetBucketLocationOutput, error)
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	GetBucketLifecycleConfiguration(context.Context, *s3.GetBucketLifecycleConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error)
}

// Backend is a backend.Backend on one S3 bucket.
type Backend struct {
	cfg    Config
	client API
}

var _ backend.Backend = (*Backend)(nil)

// New builds a Backend from cfg. It makes no request; see Probe.
func New(cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = newHTTPClient(cfg)
	}
	var provider aws.CredentialsProvider = markedProvider{cfg.Credentials}
	if _, anonymous := cfg.Credentials.(aws.AnonymousCredentials); anonymous {
		provider = cfg.Credentials // the SDK leaves requests unsigned for this type alone
	}
	awsCfg := aws.Config{
		Region:      cfg.Region,
		Credentials: provider,
		HTTPClient:  hc,
		Retryer: func() aws.Retryer {
			return countRetries(retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = cfg.MaxAttempts }), cfg.OnRetry)
		},
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
		o.APIOptions = append(o.APIOptions, bucketHeaders(cfg), deadlines(cfg))
	})
	return NewWithAPI(cfg, client), nil
}

// countRetries wraps the SDK's retryer to call onRetry for each retry. The retry middleware asks
// for a retry token just before it backs off and tries again, with the operation in ctx.
func countRetries(r aws.RetryerV2, onRetry func(op string, throttled bool)) aws.RetryerV2 {
	if onRetry == nil {
		return r
	}
	return retryCounter{r, onRetry}
}

type retryCounter struct {
	aws.RetryerV2
	onRetry func(op string, throttled bool)
}

var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// isThrottle tells whether S3 throttled an attempt: an error code the SDK knows as a throttle
// (SlowDown), or, as classify has it, a 503 (a HEAD's answer has no body, so no code) or a 429.
func isThrottle(err error) bool {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() == 503 || re.HTTPStatusCode() == 429) {
		return true
	}
	return throttles.IsErrorThrottle(err) == aws.TrueTernary
}

func (r retryCounter) GetRetryToken(ctx context.Context, err error) (func(error) error, error) {
	release, tokenErr := r.RetryerV2.GetRetryToken(ctx, err)
	if tokenErr == nil {
		r.onRetry(awsmiddleware.GetOperationName(ctx), isThrottle(err))
	}
	return release, tokenErr
}

// NewWithAPI builds a Backend on a given client (a stub in tests).
func NewWithAPI(cfg Config, client API) *Backend {
	return &Backend{cfg: cfg, client: client}
}

func newHTTPClient(cfg Config) aws.HTTPClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = cfg.RequestTimeout }).
		WithTransportOptions(func(t *http.Transport) { // after the dialer, which sets DialContext
			t.MaxIdleConns = 2 * cfg.Concurrency
			t.MaxIdleConnsPerHost = 2 * cfg.Concurrency
			// No ResponseHeaderTimeout: the wait for an answer starts when the last byte of a
			// body is handed to the kernel, which may take long to send it on a slow link;
			// bodyConn bounds that wait by progress instead.
			t.TLSHandshakeTimeout = cfg.RequestTimeout
			if dial := t.DialContext; dial != nil {
				t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := dial(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return &bodyConn{c, cfg.RequestTimeout}, nil
				}
			}
		})
}

// bodyConn is a connection of the HTTP client. A read or write fails once nothing has moved for
// idle: no byte read or written, and no byte of what was written acknowledged by the peer (a
// large body still leaving the send queue on a slow link is progress). So a server that accepts
// and never answers, or stops reading or sending midway, ends the attempt, which is retried, and
// a body that moves is never cut. A connection left idle in the pool that long is closed.
//
// It also copies request bodies to the connection through recycled buffers. The SDK wraps each
// body, so net/http's copy into a plain connection allocates a new 32 KiB buffer per request:
// garbage that, on a fresh heap, is new memory and page faults (8 per PUT of a small file).
type bodyConn struct {
	net.Conn
	idle time.Duration // 0: no deadline
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (c *bodyConn) Read(p []byte) (int, error) {
	if c.idle <= 0 {
		return c.Conn.Read(p)
	}
	unsent := -1
	for {
		_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
		n, err := c.Conn.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !c.acknowledged(&unsent) {
			return n, err
		}
	}
}

func (c *bodyConn) Write(p []byte) (int, error) {
	if c.idle > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Write(p)
}

// ReadFrom implements io.ReaderFrom, which net/http uses to send a request's body.
func (c *bodyConn) ReadFrom(r io.Reader) (int64, error) {
	b := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(b)
	return io.CopyBuffer(struct{ io.Writer }{c}, r, *b)
}

// acknowledged reports whether the peer acknowledged bytes of the send queue since the last
// call with the same *last (-1 the first time: then any bytes still queued count, once).
func (c *bodyConn) acknowledged(last *int) bool {
	n := unsentBytes(c.Conn)
	progressed := n >= 0 && (*last < 0 && n > 0 || n < *last)
	*last = n
	return progressed
}

// unsentBytes is what conn's send queue holds that the peer has not acknowledged (Linux's
// SIOCOUTQ), or -1 if that cannot be known.
func unsentBytes(conn net.Conn) int {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	_ = raw.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil {
			n = v
		}
	})
	return n
}

// Region is the region the backend signs its requests for.
func (b *Backend) Region() string { return b.cfg.Region }

// InRegion returns a backend like b that signs for region instead.
func (b *Backend) InRegion(region string) (*Backend, error) {
	cfg := b.cfg
	cfg.Region = region
	return New(cfg)
}

// LocateBucket asks S3 which region the bucket is in, with an unsigned HeadBucket
// (manager.GetBucketRegion): S3 names the region in its x-amz-bucket-region header even when it
// refuses the request, so this needs no permission. It returns "" if the server does not say.
func (b *Backend) LocateBucket(ctx context.Context) (string, error) {
	region, err := manager.GetBucketRegion(ctx, b.client, b.cfg.Bucket)
	if err != nil {
		return "", b.classify("HeadBucket", "", err, nil)
	}
	return region, nil
}

// WrongRegion reports whether err is S3 saying that the bucket is in another region than the one
// the request was signed for: a 301 PermanentRedirect from a regional endpoint, or a 400
// AuthorizationHeaderMalformed naming the expected region.
func WrongRegion(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == "PermanentRedirect" || e.Code == "AuthorizationHeaderMalformed" || e.Status == http.StatusMovedPermanently
}

// BucketRegion asks S3 where the bucket is (GetBucketLocation); "us-east-1" for the empty answer.
func (b *Backend) BucketRegion(ctx context.Context) (string, error) {
	out, err := b.client.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: &b.cfg.Bucket})
	if err != nil {
		return "", b.classify("GetBucketLocation", "", err, nil)
	}
	if out.LocationConstraint == "" {
		return "us-east-1", nil
	}
	return string(out.LocationConstraint), nil
}

// Head implements backend.Backend.
func (b *Backend) Head(ctx context.Context, key string) (backend.ObjectInfo, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: &key})
	if err != nil {
		return backend.ObjectInfo{}, b.classify("HeadObject", key, err, nil)
	}
	return backend.ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    aws.ToString(out.ETag),
		ModTime: aws.ToTime(out.LastModified),
		Meta:    lowerKeys(out.Metadata),
		Headers: headers(out.ContentType, out.CacheControl, out.ContentDisposition, out.ContentEncoding, out.ContentLanguage),
	}, nil
}

func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, in backend.ListInput) (backend.Page, error) {
	req := &s3.ListObjectsV2Input{Bucket: &b.cfg.Bucket, Prefix: &in.Prefix}
	if in.Delimiter != "" {
		req.Delimiter = &in.Delimiter
	}
	if in.Token != "" {
		req.ContinuationToken = &in.Token
	}
	if in.MaxKeys > 0 {
		req.MaxKeys = aws.Int32(int32(in.MaxKeys))
	}
	out, err := b.client.ListObjectsV2(ctx, req)
	if err != nil {
		return backend.Page{}, b.classify("ListObjectsV2", in.Prefix, err, nil)
	}
	p := backend.Page{Objects: make([]backend.ObjectInfo, 0, len(out.Contents))}
	for _, o := range out.Contents {
		p.Objects = append(p.Objects, backend.ObjectInfo{
			Key:     aws.ToString(o.Key),
			Size:    aws.ToInt64(o.Size),
			ETag:    aws.ToString(o.ETag),
			ModTime: aws.ToTime(o.LastModified),
		})
	}
	for _, cp := range out.CommonPrefixes {
		p.Prefixes = append(p.Prefixes, aws.ToString(cp.Prefix))
	}
	if aws.ToBool(out.IsTruncated) {
		p.NextToken = aws.ToString(out.NextContinuationToken)
	}
	return p, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	if n == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	req := &s3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: &key}
	switch {
	case n > 0:
		req.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	case off > 0:
		req.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	if ifMatch != "" {
		req.IfMatch = &ifMatch
	}
	out, err := b.client.GetObject(ctx, req)
	if err != nil {
		var ae interface{ ErrorCode() string }
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			return io.NopCloser(bytes.NewReader(nil)), nil // off is at or past the end
		}
		err = b.classify("GetObject", key, err, backend.ErrStale)
		if e := (*Error)(nil); ifMatch != "" && errors.As(err, &e) && e.Kind == backend.ErrNotExist {
			e.Kind = backend.ErrStale // the version asked for is gone with its object
		}
		return nil, err
	}
	return out.Body, nil
}

// GetFirst implements backend.Backend: a GET of the range [0, n), whose reply carries what HEAD
// would (the whole size in Content-Range).
func (b *Backend) GetFirst(ctx context.Context, key string, n int64) (backend.ObjectInfo, io.ReadCloser, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: &key,
		Range: aws.String(fmt.Sprintf("bytes=0-%d", n-1))})
	if err != nil {
		return backend.ObjectInfo{}, nil, b.classify("GetObject", key, err, nil)
	}
	size := aws.ToInt64(out.ContentLength) // a server that ignored the range sent all of it
	if cr := aws.ToString(out.ContentRange); cr != "" {
		_, total, _ := strings.Cut(cr, "/")
		if size, err = strconv.ParseInt(total, 10, 64); err != nil {
			out.Body.Close()
			return backend.ObjectInfo{}, nil, fmt.Errorf("GetObject %s: Content-Range %q without the object's size", key, cr)
		}
	}
	return backend.ObjectInfo{
		Key:     key,
		Size:    size,
		ETag:    aws.ToString(out.ETag),
		ModTime: aws.ToTime(out.LastModified),
		Meta:    lowerKeys(out.Metadata),
		Headers: headers(out.ContentType, out.CacheControl, out.ContentDisposition, out.ContentEncoding, out.ContentLanguage),
	}, out.Body, nil
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	req := &s3.PutObjectInput{Bucket: &b.cfg.Bucket, Key: &key, Body: body, ContentLength: aws.Int64(size), Metadata: opts.Meta,
		ContentType: optional(opts.Headers.ContentType), CacheControl: optional(opts.Headers.CacheControl),
		ContentDisposition: optional(opts.Headers.ContentDisposition), ContentEncoding: optional(opts.Headers.ContentEncoding),
		ContentLanguage:      optional(opts.Headers.ContentLanguage),
		ServerSideEncryption: types.ServerSideEncryption(b.cfg.SSE), StorageClass: types.StorageClass(b.cfg.StorageClass),
		ChecksumAlgorithm: types.ChecksumAlgorithm(b.cfg.ChecksumAlgorithm)}
	if b.cfg.SSEKMSKeyID != "" {
		req.SSEKMSKeyId = &b.cfg.SSEKMSKeyID
	}
	if opts.IfNoneMatch {
		req.IfNoneMatch = aws.String("*")
	}
	out, err := b.client.PutObject(ctx, req)
	if err != nil {
		return backend.ObjectInfo{}, b.classify("PutObject", key, err, backend.ErrExist)
	}
	return backend.ObjectInfo{Key: key, Size: size, ETag: aws.ToString(out.ETag), ModTime: time.Now().UTC(), Meta: opts.Meta,
		Headers: opts.Headers}, nil
}

// optional is s, or nil for "" (a header left out).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// headers collects an object's standard headers from a response.
func headers(contentType, cacheControl, disposition, encoding, language *string) backend.Headers {
	return backend.Headers{ContentType: aws.ToString(contentType), CacheControl: aws.ToString(cacheControl),
		ContentDisposition: aws.ToString(disposition), ContentEncoding: aws.ToString(encoding), ContentLanguage: aws.ToString(language)}
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: &key})
	if err = b.classify("DeleteObject", key, err, nil); errors.Is(err, backend.ErrNotExist) {
		return nil
	}
	return err
}

// copySource is the CopySource header value: bucket/key, URL-escaped.
func (b *Backend) copySource(key string) *string {
	return aws.String(url.PathEscape(b.cfg.Bucket) + "/" + escapeKey(key))
}

func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// maxCopyObject is the largest object CopyObject copies in one request; larger ones are copied with
// UploadPartCopy.
const maxCopyObject = 5 << 30

// copyPartSize is the part size of multipart copies.
const copyPartSize = 512 << 20

// Copy implements backend.Backend. Either way of copying sends CopySourceIfMatch with the ETag
// HEAD saw, so that is the version copied, and the version meta chose the metadata for.
func (b *Backend) Copy(ctx context.Context, src, dst string, meta backend.CopyMeta) (backend.ObjectInfo, string, error) {
	srcInfo, err := b.Head(ctx, src)
	if err != nil {
		return backend.ObjectInfo{}, "", err
	}
	var opts *backend.PutOptions
	if meta != nil {
		opts = meta(srcInfo)
	}
	var info backend.ObjectInfo
	if srcInfo.Size > maxCopyObject {
		if opts == nil { // a multipart copy starts a new object: name what it keeps
			opts = &backend.PutOptions{Meta: srcInfo.Meta, Headers: srcInfo.Headers}
		}
		info, err = b.copyMultipart(ctx, srcInfo, dst, *opts)
	} else {
		info, err = b.copyObject(ctx, srcInfo, dst, opts)
	}
	return info, srcInfo.ETag, err
}

// copyObject copies src with one CopyObject: with its metadata, or with opts's.
func (b *Backend) copyObject(ctx context.Context, srcInfo backend.ObjectInfo, dst string, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	src := srcInfo.Key
	req := &s3.CopyObjectInput{
		Bucket: &b.cfg.Bucket, Key: &dst, CopySource: b.copySource(src),
		CopySourceIfMatch:    aws.String(srcInfo.ETag),
		MetadataDirective:    types.MetadataDirectiveCopy,
		ServerSideEncryption: types.ServerSideEncryption(b.cfg.SSE), StorageClass: types.StorageClass(b.cfg.StorageClass),
	}
	info := backend.ObjectInfo{Key: dst, Size: srcInfo.Size, Meta: srcInfo.Meta, Headers: srcInfo.Headers, ModTime: time.Now().UTC()}
	if opts != nil {
		h := opts.Headers
		req.MetadataDirective, req.Metadata = types.MetadataDirectiveReplace, opts.Meta
		req.ContentType, req.CacheControl, req.ContentDisposition = optional(h.ContentType), optional(h.CacheControl), optional(h.ContentDisposition)
		req.ContentEncoding, req.ContentLanguage = optional(h.ContentEncoding), optional(h.ContentLanguage)
		info.Meta, info.Headers = opts.Meta, h
	}
	if b.cfg.SSEKMSKeyID != "" {
		req.SSEKMSKeyId = &b.cfg.SSEKMSKeyID
	}
	out, err := b.client.CopyObject(ctx, req)
	if err != nil {
		return backend.ObjectInfo{}, b.classify("CopyObject", src+" -> "+dst, err, backend.ErrStale)
	}
	if r := out.CopyObjectResult; r != nil {
		info.ETag, info.ModTime = aws.ToString(r.ETag), aws.ToTime(r.LastModified)
	}
	return info, nil
}

func (b *Backend) copyMultipart(ctx context.Context, src backend.ObjectInfo, dst string, opts backend.PutOptions) (backend.ObjectInfo, error) {
	u, err := b.NewUpload(ctx, dst, opts)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	up := u.(*upload)
	var parts int32
	for off, n := int64(0), int32(1); off < src.Size; off, n = off+copyPartSize, n+1 {
		end := min(off+copyPartSize, src.Size) - 1
		out, err := b.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &b.cfg.Bucket, Key: &dst, UploadId: &up.id, PartNumber: aws.Int32(n),
			CopySource: b.copySource(src.Key), CopySourceIfMatch: aws.String(src.ETag),
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		})
		if err != nil {
			_ = up.Abort(context.WithoutCancel(ctx))
			return backend.ObjectInfo{}, b.classify("UploadPartCopy", src.Key+" -> "+dst, err, backend.ErrStale)
		}
		up.addPart(n, aws.ToString(out.CopyPartResult.ETag), end-off+1)
		parts = n
	}
	info, err := up.Complete(ctx, parts)
	if err != nil {
		_ = up.Abort(context.WithoutCancel(ctx))
	}
	return info, err
}

// ListUploads implements backend.Backend.
func (b *Backend) ListUploads(ctx context.Context, prefix string) ([]backend.PendingUpload, error) {
	var out []backend.PendingUpload
	req := &s3.ListMultipartUploadsInput{Bucket: &b.cfg.Bucket, Prefix: &prefix}
	for {
		page, err := b.client.ListMultipartUploads(ctx, req)
		if err != nil {
			return nil, b.classify("ListMultipartUploads", prefix, err, nil)
		}
		for _, u := range page.Uploads {
			out = append(out, backend.PendingUpload{Key: aws.ToString(u.Key), UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		req.KeyMarker, req.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// AbortUpload implements backend.Backend.
func (b *Backend) AbortUpload(ctx context.Context, key, uploadID string) error {
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.cfg.Bucket, Key: &key, UploadId: &uploadID})
	if err = b.classify("AbortMultipartUpload", key, err, nil); errors.Is(err, backend.ErrNotExist) {
		return nil
	}
	return err
}

// UploadExpiry returns after how many days the bucket's lifecycle configuration aborts incomplete
// multipart uploads of keys under prefix (an enabled AbortIncompleteMultipartUpload rule whose
// filter prefix covers it), or 0 if no rule does. It needs s3:GetLifecycleConfiguration.
func (b *Backend) UploadExpiry(ctx context.Context, prefix string) (int32, error) {
	out, err := b.client.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &b.cfg.Bucket})
	if err != nil {
		var ae interface{ ErrorCode() string }
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchLifecycleConfiguration" {
			return 0, nil
		}
		return 0, b.classify("GetBucketLifecycleConfiguration", "", err, nil)
	}
	for _, r := range out.Rules {
		if r.Status != types.ExpirationStatusEnabled || r.AbortIncompleteMultipartUpload == nil {
			continue
		}
		rulePrefix := aws.ToString(r.Prefix) //nolint:staticcheck // the rule's old form
		if f := r.Filter; f != nil {
			if f.Tag != nil || f.And != nil && len(f.And.Tags) > 0 {
				continue // uploads have no tags
			}
			if f.Prefix != nil {
				rulePrefix = aws.ToString(f.Prefix)
			} else if f.And != nil {
				rulePrefix = aws.ToString(f.And.Prefix)
			}
		}
		if strings.HasPrefix(prefix, rulePrefix) {
			return aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation), nil
		}
	}
	return 0, nil
}
