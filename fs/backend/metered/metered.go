// Package metered wraps a backend.Backend and records its requests, their errors, latency and
// bytes in a metrics.Registry. A request's latency is the call's, retries and backoff included;
// for a GetObject it ends when the answer's headers are in, before its body is read.
package metered

import (
	"context"
	"io"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/metrics"
)

// Backend is a backend.Backend that records metrics.
type Backend struct {
	backend.Backend
	m *metrics.Registry
}

var _ backend.Backend = (*Backend)(nil)

// New wraps b.
func New(b backend.Backend, m *metrics.Registry) *Backend { return &Backend{Backend: b, m: m} }

func (b *Backend) done(op string, start time.Time, err error) {
	b.m.Inc("s3mount_s3_requests_total", "S3 requests by operation", "op", op)
	d := time.Since(start).Seconds()
	b.m.Add("s3mount_s3_request_seconds_total", "time spent in S3 requests by operation", d, "op", op)
	b.m.Observe("s3mount_s3_request_duration_seconds", "latency of S3 requests by operation, retries included", d, "op", op)
	if err != nil {
		b.m.Inc("s3mount_s3_request_errors_total", "failed S3 requests (after retries) by operation", "op", op)
	}
}

func (b *Backend) Head(ctx context.Context, key string) (backend.ObjectInfo, error) {
	start := time.Now()
	info, err := b.Backend.Head(ctx, key)
	b.done("HeadObject", start, err)
	return info, err
}

func (b *Backend) List(ctx context.Context, in backend.ListInput) (backend.Page, error) {
	start := time.Now()
	p, err := b.Backend.List(ctx, in)
	b.done("ListObjectsV2", start, err)
	return p, err
}

func (b *Backend) Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	start := time.Now()
	r, err := b.Backend.Get(ctx, key, off, n, ifMatch)
	b.done("GetObject", start, err)
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: r, m: b.m}, nil
}

func (b *Backend) GetFirst(ctx context.Context, key string, n int64) (backend.ObjectInfo, io.ReadCloser, error) {
	start := time.Now()
	info, r, err := b.Backend.GetFirst(ctx, key, n)
	b.done("GetObject", start, err)
	if err != nil {
		return info, nil, err
	}
	return info, &countingReader{ReadCloser: r, m: b.m}, nil
}

type countingReader struct {
	io.ReadCloser
	m *metrics.Registry
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.m.Add("s3mount_s3_bytes_read_total", "bytes received from S3", float64(n))
	return n, err
}

func (b *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	start := time.Now()
	info, err := b.Backend.Put(ctx, key, body, size, opts)
	b.done("PutObject", start, err)
	if err == nil {
		b.m.Add("s3mount_s3_bytes_written_total", "bytes sent to S3", float64(size))
	}
	return info, err
}

func (b *Backend) NewUpload(ctx context.Context, key string, opts backend.PutOptions) (backend.Upload, error) {
	start := time.Now()
	u, err := b.Backend.NewUpload(ctx, key, opts)
	b.done("CreateMultipartUpload", start, err)
	if err != nil {
		return nil, err
	}
	return &upload{Upload: u, b: b}, nil
}

type upload struct {
	backend.Upload
	b *Backend
}

func (u *upload) UploadPart(ctx context.Context, n int32, body io.ReadSeeker, size int64) error {
	start := time.Now()
	err := u.Upload.UploadPart(ctx, n, body, size)
	u.b.done("UploadPart", start, err)
	if err == nil {
		u.b.m.Add("s3mount_s3_bytes_written_total", "bytes sent to S3", float64(size))
	}
	return err
}

func (u *upload) Complete(ctx context.Context, parts int32) (backend.ObjectInfo, error) {
	start := time.Now()
	info, err := u.Upload.Complete(ctx, parts)
	u.b.done("CompleteMultipartUpload", start, err)
	return info, err
}

func (u *upload) Abort(ctx context.Context) error {
	start := time.Now()
	err := u.Upload.Abort(ctx)
	u.b.done("AbortMultipartUpload", start, err)
	return err
}

func (b *Backend) Copy(ctx context.Context, src, dst string, meta backend.CopyMeta) (backend.ObjectInfo, string, error) {
	start := time.Now()
	info, from, err := b.Backend.Copy(ctx, src, dst, meta)
	b.done("CopyObject", start, err)
	return info, from, err
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := b.Backend.Delete(ctx, key)
	b.done("DeleteObject", start, err)
	return err
}

// Retried implements backend.Retrier for the upload it wraps.
func (u *upload) Retried() bool {
	r, ok := u.Upload.(backend.Retrier)
	return ok && r.Retried()
}
