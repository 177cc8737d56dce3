package s3backend

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3mount/s3mount/fs/backend"
)

// upload is one multipart upload; it remembers each part's ETag and size for Complete.
type upload struct {
	b    *Backend
	key  string
	id   string
	opts backend.PutOptions // what the object is created with
	// retried: CreateMultipartUpload was sent more than once, so S3 may hold another upload that
	// an earlier attempt started.
	retried bool

	mu    sync.Mutex // protects parts
	parts map[int32]part
}

type part struct {
	etag string
	size int64
}

// NewUpload implements backend.Backend.
func (b *Backend) NewUpload(ctx context.Context, key string, opts backend.PutOptions) (backend.Upload, error) {
	h := opts.Headers
	req := &s3.CreateMultipartUploadInput{Bucket: &b.cfg.Bucket, Key: &key, Metadata: opts.Meta,
		ContentType: optional(h.ContentType), CacheControl: optional(h.CacheControl), ContentDisposition: optional(h.ContentDisposition),
		ContentEncoding: optional(h.ContentEncoding), ContentLanguage: optional(h.ContentLanguage),
		ServerSideEncryption: types.ServerSideEncryption(b.cfg.SSE), StorageClass: types.StorageClass(b.cfg.StorageClass),
		ChecksumAlgorithm: types.ChecksumAlgorithm(b.cfg.ChecksumAlgorithm)}
	if b.cfg.SSEKMSKeyID != "" {
		req.SSEKMSKeyId = &b.cfg.SSEKMSKeyID
	}
	out, err := b.client.CreateMultipartUpload(ctx, req)
	if err != nil {
		return nil, b.classify("CreateMultipartUpload", key, err, nil)
	}
	attempts, _ := retry.GetAttemptResults(out.ResultMetadata)
	return &upload{b: b, key: key, id: aws.ToString(out.UploadId), opts: opts, parts: map[int32]part{},
		retried: len(attempts.Results) > 1}, nil
}

// Retried implements backend.Retrier.
func (u *upload) Retried() bool { return u.retried }

func (u *upload) ID() string { return u.id }

func (u *upload) addPart(n int32, etag string, size int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.parts[n] = part{etag, size}
}

func (u *upload) UploadPart(ctx context.Context, n int32, body io.ReadSeeker, size int64) error {
	out, err := u.b.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &u.b.cfg.Bucket, Key: &u.key, UploadId: &u.id, PartNumber: aws.Int32(n),
		Body: body, ContentLength: aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithm(u.b.cfg.ChecksumAlgorithm),
	})
	if err != nil {
		return u.b.classify("UploadPart", u.key, err, nil)
	}
	u.addPart(n, aws.ToString(out.ETag), size)
	return nil
}

func (u *upload) Complete(ctx context.Context, n int32) (backend.ObjectInfo, error) {
	u.mu.Lock()
	parts := make([]types.CompletedPart, 0, n)
	var size int64
	for i := int32(1); i <= n; i++ {
		p, ok := u.parts[i]
		if !ok {
			u.mu.Unlock()
			return backend.ObjectInfo{}, fmt.Errorf("s3: complete s3://%s/%s: part %d was never uploaded", u.b.cfg.Bucket, u.key, i)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(i), ETag: aws.String(p.etag)})
		size += p.size
	}
	u.mu.Unlock()
	out, err := u.b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.b.cfg.Bucket, Key: &u.key, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		err = u.b.classify("CompleteMultipartUpload", u.key, err, backend.ErrExist)
		if info, ok := u.completedAfterAll(ctx, parts); ok {
			return info, nil
		}
		return backend.ObjectInfo{}, err
	}
	// The size is not in the response; HEAD for the authoritative info (and modification time).
	info, err := u.b.Head(ctx, u.key)
	if errors.Is(err, backend.ErrNotExist) {
		return backend.ObjectInfo{}, err
	}
	if err != nil {
		// The object is committed all the same: describe it from what was sent, whole, so that
		// nobody takes it for empty or without its metadata.
		return backend.ObjectInfo{Key: u.key, Size: size, ETag: aws.ToString(out.ETag), ModTime: time.Now().UTC(),
			Meta: u.opts.Meta, Headers: u.opts.Headers}, nil
	}
	return info, nil
}

func (u *upload) Abort(ctx context.Context) error {
	return u.b.AbortUpload(ctx, u.key, u.id)
}

// completedAfterAll reports whether a CompleteMultipartUpload that failed on the client (its
// answer lost, or a retry of it finding the upload already completed) did complete: the object
// S3 now holds has the ETag of exactly these parts (the MD5 of their MD5s, and their count).
// That ETag cannot be computed for parts whose ETags are not MD5s (SSE-KMS, SSE-C); the failure
// stands then.
func (u *upload) completedAfterAll(ctx context.Context, parts []types.CompletedPart) (backend.ObjectInfo, bool) {
	want, ok := multipartETag(parts)
	if !ok {
		return backend.ObjectInfo{}, false
	}
	info, err := u.b.Head(ctx, u.key)
	if err != nil || info.ETag != want {
		return backend.ObjectInfo{}, false
	}
	return info, true
}

// multipartETag is the ETag S3 gives the object assembled from parts whose ETags are MD5s.
func multipartETag(parts []types.CompletedPart) (string, bool) {
	h := md5.New()
	for _, p := range parts {
		sum, err := hex.DecodeString(strings.Trim(aws.ToString(p.ETag), `"`))
		if err != nil || len(sum) != md5.Size {
			return "", false
		}
		h.Write(sum)
	}
	return fmt.Sprintf(`"%x-%d"`, h.Sum(nil), len(parts)), true
}
