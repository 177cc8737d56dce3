package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3mount/s3mount/integration/world"
)

const mib = 1 << 20

// partSize is the part size of the seeded objects and of the ceiling's Uploader and Downloader.
const partSize = 8 * mib

// The data every filesystem reads, below its root: data/seq (jobs 1, 3, 7), data/par0..3 (job 2)
// and list/ (job 6). s3mount's root also has list-<n>/ for the scaling rows.
func seqKey(root string) string            { return root + "/data/seq" }
func parKey(root string, i int) string     { return fmt.Sprintf("%s/data/par%d", root, i) }
func listPrefix(root string, n int) string { return fmt.Sprintf("%s/%s/", root, listDir(n)) }

// listDir is the directory of n objects: job 6's, or a scaling row's.
func listDir(n int) string { return fmt.Sprintf("list-%d", n) }

// newS3Client is an SDK client with creds (MinIO's root keys if nil) and room for many parallel
// connections (the default transport keeps only 10 idle connections per host).
func newS3Client(endpoint string, w *world.World, creds aws.CredentialsProvider) *s3.Client {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 256
	})
	if creds == nil {
		creds = credentials.NewStaticCredentialsProvider(w.MinIO.RootUser, w.MinIO.RootPassword, "")
	}
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: creds, HTTPClient: httpClient,
	})
}

// patternReader yields n bytes of a repeated random 1 MiB pattern: cheap to produce, and not
// compressible within a MiB.
type patternReader struct {
	buf  []byte
	left int64
	off  int
}

func newPattern(seed int64, n int64) *patternReader {
	buf := make([]byte, mib)
	rand.New(rand.NewSource(seed)).Read(buf)
	return &patternReader{buf: buf, left: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(int64(len(b)), p.left)], p.buf[p.off:])
	p.off = (p.off + n) % len(p.buf)
	p.left -= int64(n)
	return n, nil
}

// put uploads with the root keys (seeding).
func (b *bench) put(ctx context.Context, key string, body io.Reader) error {
	return b.putWith(ctx, b.s3, key, body)
}

// putWith uploads with the Uploader the ceiling measures, 8 parts at once.
func (b *bench) putWith(ctx context.Context, c *s3.Client, key string, body io.Reader) error {
	return putConc(ctx, c, key, body, 8)
}

// putConc uploads with the SDK's Uploader, conc parts at once.
func putConc(ctx context.Context, c *s3.Client, key string, body io.Reader, conc int) error {
	up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize, u.Concurrency = partSize, conc })
	_, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(key), Body: body})
	return err
}

// seed creates the read data through the S3 API: uploaded once under the ceiling's root in 8 MiB
// parts, then copied server-side part by part to each filesystem's root; and the directories of
// small objects for ls -l.
func (b *bench) seed(ctx context.Context, roots []string) error {
	src := "team-a/bench-ceiling"
	start := time.Now()
	if err := b.put(ctx, seqKey(src), newPattern(1, b.sz.SeqFile)); err != nil {
		return err
	}
	for i := 0; i < 4; i++ {
		if err := b.put(ctx, parKey(src, i), newPattern(int64(10+i), b.sz.ParFile)); err != nil {
			return err
		}
	}
	b.logf("seed: %d MiB uploaded in %s", (b.sz.SeqFile+4*b.sz.ParFile)/mib, since(start))
	start = time.Now()
	var copies []func() error
	for _, root := range roots {
		copies = append(copies, b.copyFn(ctx, seqKey(src), seqKey(root)))
		for i := 0; i < 4; i++ {
			copies = append(copies, b.copyFn(ctx, parKey(src, i), parKey(root, i)))
		}
	}
	if err := parallel(4, copies); err != nil {
		return fmt.Errorf("copying: %w", err)
	}
	b.logf("seed: copied to %d roots in %s", len(roots), since(start))
	var prefixes []string
	for _, root := range append([]string{src}, roots...) {
		prefixes = append(prefixes, listPrefix(root, b.sz.ListObjects))
	}
	return b.seedLists(ctx, prefixes, b.sz.ListObjects)
}

// copyFn copies an object server-side in the parts it was uploaded in (8 MiB, UploadPartCopy), so
// that every column reads objects of one layout: a CopyObject would leave a single part, which
// servers store and serve differently (MinIO keeps each part in a file of its own).
func (b *bench) copyFn(ctx context.Context, from, to string) func() error {
	return func() error {
		head, err := b.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(from)})
		if err != nil {
			return err
		}
		up, err := b.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(world.Bucket), Key: aws.String(to)})
		if err != nil {
			return err
		}
		done := false
		defer func() {
			if !done {
				_, _ = b.s3.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
					Bucket: aws.String(world.Bucket), Key: aws.String(to), UploadId: up.UploadId})
			}
		}()
		var parts []types.CompletedPart
		size := aws.ToInt64(head.ContentLength)
		for off, n := int64(0), int32(1); off < size; off, n = off+partSize, n+1 {
			out, err := b.s3.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String(world.Bucket), Key: aws.String(to),
				UploadId: up.UploadId, PartNumber: aws.Int32(n), CopySource: aws.String(world.Bucket + "/" + from),
				CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, min(off+partSize, size)-1))})
			if err != nil {
				return err
			}
			parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)})
		}
		_, err = b.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(world.Bucket),
			Key: aws.String(to), UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		done = err == nil
		return err
	}
}

// seedLists puts n small objects under each prefix, 32 at a time, and records the rate (the
// estimate of whether the largest scaling row fits in the time left).
func (b *bench) seedLists(ctx context.Context, prefixes []string, n int) error {
	start := time.Now()
	var fns []func() error
	body := bytes.Repeat([]byte("x"), 100)
	for _, p := range prefixes {
		for i := 0; i < n; i++ {
			key := fmt.Sprintf("%sobj-%06d", p, i)
			fns = append(fns, func() error {
				_, err := b.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(key),
					Body: bytes.NewReader(body)})
				return err
			})
		}
	}
	if err := parallel(32, fns); err != nil {
		return fmt.Errorf("seeding directories: %w", err)
	}
	b.putRate = float64(len(fns)) / time.Since(start).Seconds()
	b.logf("seed: %d small objects in %s (%.0f PUT/s)", len(fns), since(start), b.putRate)
	return nil
}

// parallel runs fns, n at a time, and returns the first error.
func parallel(n int, fns []func() error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	ch := make(chan func() error)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range ch {
				if err := f(); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for _, f := range fns {
		ch <- f
	}
	close(ch)
	wg.Wait()
	return first
}

// waitListed waits until a listing of prefix shows every key of want with its size: the data is
// in S3, complete (an unfinished multipart upload is not listed). Objects that S3 holds with
// another size (a first, empty version) do not count.
func (b *bench) waitListed(ctx context.Context, prefix string, want map[string]int64) error {
	for {
		found := 0
		p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: aws.String(world.Bucket), Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("%d of %d objects in S3 when stopped: %w", found, len(want), context.Cause(ctx))
				}
				return err
			}
			for _, o := range page.Contents {
				if size, ok := want[aws.ToString(o.Key)]; ok && aws.ToInt64(o.Size) == size {
					found++
				}
			}
		}
		if found == len(want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d objects in S3 when stopped: %w", found, len(want), context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// deletePrefix removes everything under prefix (written data, after a write job).
func (b *bench) deletePrefix(ctx context.Context, prefix string) {
	p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: aws.String(world.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			b.logf("cleaning %s: %v", prefix, err)
			return
		}
		if len(page.Contents) == 0 {
			continue
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := b.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(world.Bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			b.logf("cleaning %s: %v", prefix, err)
			return
		}
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }
