package s3backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/s3mount/s3mount/fs/backend"
)

// fakeS3 answers every request with the given status and S3 error code (no body for HEAD, as S3).
func fakeS3(t *testing.T, status int, code string) *Backend {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>m</Message></Error>`, code)
		}
	}))
	t.Cleanup(srv.Close)
	return backendAt(t, srv.URL)
}

// backendAt is a Backend on the bucket "bucket" at endpoint, with one attempt per request.
func backendAt(t *testing.T, endpoint string) *Backend {
	t.Helper()
	cfg := NewConfig()
	cfg.Bucket, cfg.Endpoint, cfg.PathStyle = "bucket", endpoint, true
	cfg.MaxAttempts = 1
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestErrorMapping(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		status int
		code   string
		op     func(*Backend) error
		want   error
	}{
		{404, "NoSuchKey", func(b *Backend) error { _, err := b.Head(ctx, "k"); return err }, backend.ErrNotExist},
		{404, "NoSuchKey", func(b *Backend) error { _, err := b.Get(ctx, "k", 0, 10, ""); return err }, backend.ErrNotExist},
		{404, "NoSuchBucket", func(b *Backend) error { _, err := b.List(ctx, backend.ListInput{}); return err }, backend.ErrNotExist},
		{403, "AccessDenied", func(b *Backend) error { _, err := b.Head(ctx, "k"); return err }, backend.ErrPermission},
		{403, "AccessDenied", func(b *Backend) error { _, err := b.Get(ctx, "k", 0, 10, ""); return err }, backend.ErrPermission},
		{403, "InvalidAccessKeyId", func(b *Backend) error { _, err := b.Get(ctx, "k", 0, 10, ""); return err }, backend.ErrCredentials},
		{412, "PreconditionFailed", func(b *Backend) error { _, err := b.Get(ctx, "k", 0, 10, `"e"`); return err }, backend.ErrStale},
		{412, "PreconditionFailed", func(b *Backend) error {
			_, err := b.Put(ctx, "k", nil, 0, backend.PutOptions{IfNoneMatch: true})
			return err
		}, backend.ErrExist},
		{503, "SlowDown", func(b *Backend) error { _, err := b.Head(ctx, "k"); return err }, backend.ErrThrottled},
	}
	for _, c := range cases {
		b := fakeS3(t, c.status, c.code)
		err := c.op(b)
		if !errors.Is(err, c.want) {
			t.Errorf("%d %s: got %v, want errors.Is %v", c.status, c.code, err, c.want)
		}
		var se *Error
		if !errors.As(err, &se) || se.Status != c.status {
			t.Errorf("%d %s: error %v does not carry the status", c.status, c.code, err)
		}
	}
}

func TestDeleteOfMissingKeySucceeds(t *testing.T) {
	if err := fakeS3(t, 404, "NoSuchKey").Delete(context.Background(), "k"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
}

func TestReadPastEndIsEmpty(t *testing.T) {
	b := fakeS3(t, 416, "InvalidRange")
	r, err := b.Get(context.Background(), "k", 100, 10, "")
	if err != nil {
		t.Fatalf("Get past the end: %v", err)
	}
	if data, _ := io.ReadAll(r); len(data) != 0 {
		t.Errorf("Get past the end returned %d bytes", len(data))
	}
}

type failingProvider struct{}

func (failingProvider) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, errors.New("sts is down")
}

func TestCredentialFailureIsClassified(t *testing.T) {
	b := fakeS3(t, 200, "")
	b2, err := New(Config{Bucket: "bucket", Region: "us-east-1", Endpoint: b.cfg.Endpoint, PathStyle: true, MaxAttempts: 1, Concurrency: 1, Credentials: failingProvider{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b2.Head(context.Background(), "k")
	if !errors.Is(err, backend.ErrCredentials) {
		t.Errorf("Head with failing credentials: %v, want ErrCredentials", err)
	}
}

// TestGetFirstReadsHeadersAndSize: GetFirst takes the object's size from Content-Range (the
// range's own length is only the body's), and from Content-Length when the server sent the whole
// object; metadata and ETag are as HEAD returns them.
func TestGetFirstReadsHeadersAndSize(t *testing.T) {
	for _, c := range []struct {
		name         string
		status       int
		contentRange string
		body         string
		wantSize     int64
	}{
		{"range", http.StatusPartialContent, "bytes 0-9/1000", "0123456789", 1000},
		{"whole object", http.StatusOK, "", "0123", 4},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || r.Header.Get("Range") != "bytes=0-9" {
				t.Errorf("%s: %s with Range %q, want a GET of bytes=0-9", c.name, r.Method, r.Header.Get("Range"))
			}
			w.Header().Set("ETag", `"abc"`)
			w.Header().Set("Last-Modified", "Mon, 30 Nov 2026 10:00:00 GMT")
			w.Header().Set("X-Amz-Meta-Mode", "33188")
			if c.contentRange != "" {
				w.Header().Set("Content-Range", c.contentRange)
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(c.body)))
			w.WriteHeader(c.status)
			io.WriteString(w, c.body)
		}))
		info, body, err := backendAt(t, srv.URL).GetFirst(context.Background(), "k", 10)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		data, _ := io.ReadAll(body)
		body.Close()
		srv.Close()
		if info.Size != c.wantSize || info.ETag != `"abc"` || info.Meta["mode"] != "33188" || info.ModTime.IsZero() || string(data) != c.body {
			t.Errorf("%s: info %+v, body %q", c.name, info, data)
		}
	}
	if _, _, err := fakeS3(t, 404, "NoSuchKey").GetFirst(context.Background(), "k", 10); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("GetFirst of a missing key: %v, want ErrNotExist", err)
	}
}

// TestCopyReturnsTheVersionItCopied: Copy pins its CopyObject to the ETag its HEAD saw
// (x-amz-copy-source-if-match) and returns that ETag beside the copy's info; a source replaced
// in between fails the copy with ErrStale. Without a CopyMeta, or with one that keeps them, the
// copy keeps the source's metadata and Content-Type (directive COPY); with options, chosen from
// the version HEAD saw, it replaces both.
func TestCopyReturnsTheVersionItCopied(t *testing.T) {
	replace := func(src backend.ObjectInfo) *backend.PutOptions {
		if src.ETag != `"src1"` || src.Meta["mode"] != "33188" {
			t.Errorf("CopyMeta given %+v, want the source HEAD saw", src)
		}
		return &backend.PutOptions{Meta: map[string]string{"mode": "33152", "app": "x"}, Headers: src.Headers}
	}
	for _, c := range []struct {
		name     string
		replaced bool
		meta     backend.CopyMeta
		replace  bool
	}{
		{name: "keep"},
		{name: "keep by choice", meta: func(backend.ObjectInfo) *backend.PutOptions { return nil }},
		{name: "replace", meta: replace, replace: true},
		{name: "source replaced", replaced: true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodHead:
				w.Header().Set("ETag", `"src1"`)
				w.Header().Set("Content-Length", "5")
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Cache-Control", "no-cache")
				w.Header().Set("X-Amz-Meta-Mode", "33188")
			case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
				if got := r.Header.Get("X-Amz-Copy-Source-If-Match"); got != `"src1"` {
					t.Errorf("%s: copy source if-match %q, want the ETag HEAD saw", c.name, got)
				}
				want := "COPY"
				if c.replace {
					want = "REPLACE"
					if r.Header.Get("Content-Type") != "text/html" || r.Header.Get("Cache-Control") != "no-cache" ||
						r.Header.Get("X-Amz-Meta-App") != "x" || r.Header.Get("X-Amz-Meta-Mode") != "33152" {
						t.Errorf("%s: headers %v, want the options' metadata and Content-Type", c.name, r.Header)
					}
				}
				if got := r.Header.Get("X-Amz-Metadata-Directive"); got != want {
					t.Errorf("%s: metadata directive %q, want %s", c.name, got, want)
				}
				if c.replaced {
					w.WriteHeader(http.StatusPreconditionFailed)
					io.WriteString(w, `<Error><Code>PreconditionFailed</Code><Message>m</Message></Error>`)
					return
				}
				io.WriteString(w, `<CopyObjectResult><ETag>"dst1"</ETag><LastModified>2026-12-01T10:00:00.000Z</LastModified></CopyObjectResult>`)
			default:
				t.Errorf("unexpected %s %s", r.Method, r.URL)
			}
		}))
		info, from, err := backendAt(t, srv.URL).Copy(context.Background(), "a", "b", c.meta)
		srv.Close()
		if c.replaced {
			if !errors.Is(err, backend.ErrStale) {
				t.Errorf("copy of a source replaced after its HEAD: %v, want ErrStale", err)
			}
			continue
		}
		wantMode := "33188"
		if c.replace {
			wantMode = "33152"
		}
		if err != nil || from != `"src1"` || info.ETag != `"dst1"` || info.Key != "b" || info.Size != 5 || info.Meta["mode"] != wantMode ||
			info.Headers != (backend.Headers{ContentType: "text/html", CacheControl: "no-cache"}) {
			t.Errorf("%s: Copy = %+v, %q, %v; want the copy's info and the source's ETag", c.name, info, from, err)
		}
	}
}

// TestPinnedGetOfAMissingObjectIsStale: a GET pinned to a version (If-Match) of an object that is
// gone fails with ErrStale, the version being gone; unpinned, with ErrNotExist.
func TestPinnedGetOfAMissingObjectIsStale(t *testing.T) {
	b := fakeS3(t, 404, "NoSuchKey")
	if _, err := b.Get(context.Background(), "k", 0, 10, `"etag"`); !errors.Is(err, backend.ErrStale) {
		t.Errorf("pinned GET of a missing object: %v, want ErrStale", err)
	}
	if _, err := b.Get(context.Background(), "k", 0, 10, ""); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("GET of a missing object: %v, want ErrNotExist", err)
	}
}

// TestWrongRegionIsRecognizedAndLocated: S3's answers to a request signed for the wrong region (a
// 301 PermanentRedirect, a 400 AuthorizationHeaderMalformed) are WrongRegion, and LocateBucket
// reads the region from an unsigned HeadBucket's x-amz-bucket-region header, which S3 sends even
// with a refusal.
func TestWrongRegionIsRecognizedAndLocated(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		wrong  bool
	}{
		{301, "PermanentRedirect", true},
		{400, "AuthorizationHeaderMalformed", true},
		{403, "AccessDenied", false},
		{404, "NoSuchBucket", false},
	} {
		_, err := fakeS3(t, c.status, c.code).List(context.Background(), backend.ListInput{Prefix: "p/"})
		if WrongRegion(err) != c.wrong {
			t.Errorf("%d %s: WrongRegion = %v, want %v (%v)", c.status, c.code, !c.wrong, c.wrong, err)
		}
	}
	for _, c := range []struct {
		status int
		header string
	}{{301, "eu-west-1"}, {403, "eu-west-1"}, {200, "eu-west-1"}, {403, ""}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodHead || r.URL.Path != "/bucket" {
				t.Errorf("unexpected %s %s", r.Method, r.URL)
			}
			if auth := r.Header.Get("Authorization"); auth != "" {
				t.Errorf("LocateBucket signed its request: %s", auth)
			}
			if c.header != "" {
				w.Header().Set("X-Amz-Bucket-Region", c.header)
			}
			w.WriteHeader(c.status)
		}))
		got, err := backendAt(t, srv.URL).LocateBucket(context.Background())
		srv.Close()
		if c.header != "" && (got != c.header || err != nil) {
			t.Errorf("HeadBucket %d with the header: %q, %v; want %s", c.status, got, err, c.header)
		}
		if c.header == "" && got != "" {
			t.Errorf("HeadBucket %d without the header: %q, want none", c.status, got)
		}
	}
}

// TestCompleteWithoutItsHEADDescribesTheWholeObject: when the HEAD after a successful
// CompleteMultipartUpload fails, Complete still succeeds (the object is committed) and describes it
// from what was sent: its whole size, metadata and headers, not an empty object without them.
func TestCompleteWithoutItsHEADDescribesTheWholeObject(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case answeredInitiate(w, r):
		case r.Method == http.MethodPut && q.Get("uploadId") == "u1":
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("ETag", `"p`+q.Get("partNumber")+`"`)
		case r.Method == http.MethodPost && q.Get("uploadId") == "u1":
			io.WriteString(w, `<CompleteMultipartUploadResult><ETag>"whole-2"</ETag></CompleteMultipartUploadResult>`)
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	}))
	defer srv.Close()
	b := backendAt(t, srv.URL)
	ctx := context.Background()
	opts := backend.PutOptions{Meta: map[string]string{"mode": "33188"}, Headers: backend.Headers{ContentType: "text/csv"}}
	u, err := b.NewUpload(ctx, "k", opts)
	if err != nil {
		t.Fatal(err)
	}
	for n, size := range []int{5 << 20, 123} {
		if err := u.UploadPart(ctx, int32(n+1), bytes.NewReader(make([]byte, size)), int64(size)); err != nil {
			t.Fatal(err)
		}
	}
	info, err := u.Complete(ctx, 2)
	if err != nil || info.Size != 5<<20+123 || info.ETag != `"whole-2"` || info.Meta["mode"] != "33188" || info.Headers.ContentType != "text/csv" {
		t.Errorf("Complete = %+v, %v; want the whole object with its metadata", info, err)
	}
}
