//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// publicBucket creates a bucket whose policy lets everyone list and read open/ and nothing else,
// as public datasets are shared, with one object in open/ and one in closed/. It is removed at
// the end of the test.
func publicBucket(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	bucket := fmt.Sprintf("public-%d", os.Getpid())
	if _, err := w.Admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, k := range []string{"open/data.csv", "closed/secret.csv"} {
			_, _ = w.Admin.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		}
		if _, err := w.Admin.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Errorf("removing bucket %s: %v", bucket, err)
		}
	})
	for k, v := range map[string]string{"open/data.csv": "a,b\n1,2\n", "closed/secret.csv": "no"} {
		if _, err := w.Admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(v)}); err != nil {
			t.Fatal(err)
		}
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%[1]s/open/*"]},
		{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s"],"Condition":{"StringLike":{"s3:prefix":["open/*"]}}}]}`, bucket)
	if _, err := w.Admin.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	return bucket
}

// TestInteg_PublicBucketWithoutCredentials: --no-sign-request mounts a public prefix with no
// credentials at all (the instance profile is not asked), reads and lists it, and gets EACCES for
// writes, which the bucket's policy does not allow everyone; a prefix that is not public fails the
// mount with a clear message and leaves nothing mounted; a role cannot follow unsigned requests.
func TestInteg_PublicBucketWithoutCredentials(t *testing.T) {
	bucket := publicBucket(t)
	m := mount(t, "s3://"+bucket+"/open", "--no-sign-request")
	if got, err := os.ReadFile(m.path("data.csv")); err != nil || string(got) != "a,b\n1,2\n" {
		t.Errorf("read through an unsigned mount: %q, %v", got, err)
	}
	if names, err := os.ReadDir(m.dir); err != nil || len(names) != 1 || names[0].Name() != "data.csv" {
		t.Errorf("listing: %v, %v", names, err)
	}
	if err := os.WriteFile(m.path("new.csv"), []byte("x"), 0o644); !errors.Is(err, syscall.EACCES) {
		t.Errorf("write to a read-only public bucket: %v, want EACCES", err)
	}
	m.unmount(t)
	if strings.Contains(m.stderr.String(), "credentials refreshed") {
		t.Errorf("an unsigned mount fetched credentials:\n%s", m.stderr)
	}

	code, stderr := runFailing(t, append(w.MountArgs(), "--no-sign-request", "-f", "s3://"+bucket+"/closed")...)
	if code != 12 || !strings.Contains(stderr, "unsigned requests may not list") || !strings.Contains(stderr, "drop --no-sign-request") {
		t.Errorf("mount of a prefix that is not public: exit %d, stderr:\n%s\nwant 12 and what to change", code, stderr)
	}
	code, stderr = runFailing(t, append(append(w.MountArgs(), "--no-sign-request", "-f"), append(accessChain(), "s3://"+bucket+"/open")...)...)
	if code == 0 || !strings.Contains(stderr, "cannot assume a role") {
		t.Errorf("unsigned requests with a role: exit %d, stderr:\n%s", code, stderr)
	}
	code, checks := runCheck(t, "--no-sign-request", "--ro", "s3://"+bucket+"/open")
	if code != 0 {
		t.Errorf("check of an unsigned read-only mount exited %d: %v", code, checks)
	}
}
