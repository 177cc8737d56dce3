//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/awsemu"
	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_BucketInAnotherRegion: against an S3 server in eu-west-1 (MinIO with a site region,
// which refuses requests signed for another region as S3 does), a mount without --region, which
// would sign for us-east-1, finds the bucket's region and mounts there; with --region naming the
// wrong one it fails before mounting and names the right one.
func TestInteg_BucketInAnotherRegion(t *testing.T) {
	ctx := context.Background()
	mi, err := awsemu.StartMinIOInRegion(filepath.Join(t.TempDir(), "minio"), io.Discard, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	defer mi.Stop()
	admin := s3.New(s3.Options{Region: "eu-west-1", BaseEndpoint: aws.String(mi.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(mi.RootUser, mi.RootPassword, "")})
	if err := world.CreateBucket(ctx, admin, "far"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("far"), Key: aws.String("data/hello"), Body: strings.NewReader("hi")}); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte(fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", mi.RootUser, mi.RootPassword)), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--endpoint", mi.Endpoint, "--path-style", "--credentials-file", keys}
	m := mountWith(t, nil, args, "s3://far/data")
	if got, err := os.ReadFile(m.path("hello")); err != nil || string(got) != "hi" {
		t.Errorf("read through a mount that found its region: %q, %v", got, err)
	}
	if err := os.WriteFile(m.path("new"), []byte("x"), 0o644); err != nil {
		t.Errorf("write: %v", err)
	}
	m.unmount(t)
	if !strings.Contains(m.stderr.String(), "eu-west-1") {
		t.Errorf("the mount did not say which region it moved to:\n%s", m.stderr)
	}
	code, stderr := runFailing(t, append(args, "--region", "us-west-2", "-f", "s3://far/data")...)
	if code != 12 || !strings.Contains(stderr, "pass --region eu-west-1") {
		t.Errorf("mount with the wrong --region: exit %d, stderr:\n%s\nwant 12 and the bucket's region", code, stderr)
	}
	// check does as the mount does.
	if out, err := command(append(append([]string{"check"}, args...), "s3://far/data")...).CombinedOutput(); err != nil || !strings.Contains(string(out), "eu-west-1") {
		t.Errorf("check without --region: %v\n%s", err, out)
	}
	out, err := command(append(append([]string{"check"}, args...), "--region", "us-west-2", "s3://far/data")...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 23 || !strings.Contains(string(out), "pass --region eu-west-1") {
		t.Errorf("check with the wrong --region: %v\n%s\nwant exit 23 and the bucket's region", err, out)
	}
}
