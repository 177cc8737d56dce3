package s3backend

import (
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
	cfg := NewConfig()
	cfg.Bucket, cfg.Endpoint, cfg.PathStyle = "bucket", srv.URL, true
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
