//go:build integration

package integration

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_ForeignMetadataSurvives: an object written by another S3 client keeps its standard
// headers (Content-Type, Cache-Control, Content-Language) and its user metadata when the mount
// changes its mode (a copy onto itself), renames it (a copy) or rewrites its content; only the
// POSIX attributes change.
func TestInteg_ForeignMetadataSurvives(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	for _, k := range []string{"chmod.html", "rename.html", "rewrite.html", "append.html"} {
		if _, err := w.Admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + k),
			Body: bytes.NewReader([]byte("<p>hi</p>")), ContentType: aws.String("text/html"),
			CacheControl: aws.String("max-age=60"), ContentLanguage: aws.String("en"),
			Metadata: map[string]string{"owner-app": "cms", "mtime": "1700000000"}}); err != nil {
			t.Fatal(err)
		}
	}
	m := mount(t, "s3://"+world.Bucket+"/"+strings.TrimSuffix(prefix, "/"), accessChain()...)
	if err := os.Chmod(m.path("chmod.html"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.path("rename.html"), m.path("renamed.html")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.path("rewrite.html"), []byte("<p>new</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.path("append.html"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("<p>more</p>"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"chmod.html", "renamed.html", "rewrite.html", "append.html"} {
		out, err := w.Admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + k)})
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if ct, cc, cl := aws.ToString(out.ContentType), aws.ToString(out.CacheControl), aws.ToString(out.ContentLanguage); ct != "text/html" || cc != "max-age=60" || cl != "en" {
			t.Errorf("%s: Content-Type %q, Cache-Control %q, Content-Language %q; want text/html, max-age=60, en kept", k, ct, cc, cl)
		}
		if v := out.Metadata["owner-app"]; v != "cms" {
			t.Errorf("%s: x-amz-meta-owner-app %q, want cms kept (metadata %v)", k, v, out.Metadata)
		}
	}
	out, err := w.Admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + "chmod.html")})
	if err == nil && out.Metadata["mode"] != "33152" {
		t.Errorf("chmod.html: x-amz-meta-mode %q, want 33152 (0100600)", out.Metadata["mode"])
	}
}

// TestInteg_NewFilesAreTypedByTheirNames: files written through the mount get the Content-Type of
// their extension in S3, also when rsync writes them under temporary names and renames them into
// place, and when a program writes name.part and renames it; a web server or CDN in front of the
// bucket then serves them as what they are.
func TestInteg_NewFilesAreTypedByTheirNames(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+strings.TrimSuffix(prefix, "/"), accessChain()...)
	if err := os.WriteFile(m.path("index.html"), []byte("<p>hi</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for name, body := range map[string]string{"style.css": "p{}", "data.json": "{}", "logo.svg": "<svg/>"} {
		if err := os.WriteFile(src+"/"+name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, nil, "rsync", "-a", src+"/", m.path("site")+"/")
	if err := os.WriteFile(m.path("dump.json.part"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.path("dump.json.part"), m.path("dump.json")); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"index.html": "text/html; charset=utf-8", "site/style.css": "text/css; charset=utf-8",
		"site/data.json": "application/json", "site/logo.svg": "image/svg+xml", "dump.json": "application/json"} {
		out, err := w.Admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + key)})
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if got := aws.ToString(out.ContentType); got != want {
			t.Errorf("%s: Content-Type %q, want %q", key, got, want)
		}
		if out.Metadata["mode"] == "" {
			t.Errorf("%s: no x-amz-meta-mode (metadata %v): the retyping copy lost it", key, out.Metadata)
		}
	}
}
