// Package world starts the local test world that stands in for AWS: a MinIO server (the S3
// server, whose policy engine enforces the roles' permissions) and the awsemu IMDS/STS emulator
// (the EC2 instance profile and the roles, with their trust policies and External IDs). The
// integration tests and `make demo` both use it.
package world

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/awsemu"
	"github.com/s3mount/s3mount/integration/shaper"
)

// Roles and External IDs of testdata/world.json.
const (
	Bucket        = "demo-bucket"
	AccessRole    = "arn:aws:iam::222222222222:role/team-a-access"
	AccessExtID   = "team-a-7f3c9e"
	ReaderRole    = "arn:aws:iam::333333333333:role/team-a-reader"
	ReaderExtID   = "reader-51d0a2"
	UntrustedRole = "arn:aws:iam::111111111111:role/other-team"
	// PolicyRole starts out trusting no one and allowing nothing; tests set its policies.
	PolicyRole = "arn:aws:iam::222222222222:role/policy-under-test"
)

// Options configures Start.
type Options struct {
	// Dir holds MinIO's data and logs; it must exist.
	Dir string
	// ConfigPath is the emulator's world file; "" uses testdata/world.json of this repository.
	ConfigPath string
	// ReportedExpiry shortens the credential lifetimes the emulator reports (see awsemu.Options).
	ReportedExpiry time.Duration
	// Log receives MinIO's output and the emulator's log lines; nil discards them.
	Log io.Writer
}

// World is a running MinIO and emulator.
type World struct {
	MinIO *awsemu.MinIO
	Emu   *awsemu.Server
	// Admin is an S3 client with MinIO's root credentials, for seeding and checking what S3 holds
	// (never given to s3mount).
	Admin *s3.Client

	shaped []*Endpoints // closed with the world
}

// Endpoints are where a client reaches S3, IMDS and STS under one network profile: MinIO and the
// emulator directly, or through a shaper in front of each (integration/shaper).
type Endpoints struct {
	Network       shaper.Network
	S3, IMDS, STS string
	// S3Proxy is the shaper in front of MinIO (nil when not shaped), for its counts.
	S3Proxy *shaper.Proxy
	proxies []*shaper.Proxy
}

// Endpoints returns the endpoints under network n. A shaped network gets shapers of its own,
// which stop with the world.
func (w *World) Endpoints(n shaper.Network) (*Endpoints, error) {
	e := &Endpoints{Network: n, S3: w.MinIO.Endpoint, IMDS: w.Emu.IMDSEndpoint(), STS: w.Emu.STSEndpoint()}
	if !n.Shaped() {
		return e, nil
	}
	for i, x := range []struct {
		url *string
		p   shaper.Profile
	}{{&e.S3, n.S3}, {&e.IMDS, n.IMDS}, {&e.STS, n.STS}} {
		proxy, err := shaper.Start(*x.url, x.p, int64(i+1))
		if err != nil {
			e.Close()
			return nil, err
		}
		e.proxies = append(e.proxies, proxy)
		*x.url = proxy.URL()
	}
	e.S3Proxy = e.proxies[0]
	w.shaped = append(w.shaped, e)
	return e, nil
}

// Close stops the shapers, if any.
func (e *Endpoints) Close() {
	for _, p := range e.proxies {
		_ = p.Close()
	}
}

// MountArgs returns the s3mount options that point it at these endpoints (see World.MountArgs).
func (e *Endpoints) MountArgs() []string {
	return []string{
		"--endpoint", e.S3, "--path-style", "--region", "us-east-1",
		"--imds-endpoint", e.IMDS,
		"--sts-endpoint", e.STS,
		"--iam-endpoint", e.STS,
	}
}

// RepoRoot finds the repository root from this source file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts MinIO and the emulator and creates the bucket.
func Start(ctx context.Context, o Options) (_ *World, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.ConfigPath == "" {
		o.ConfigPath = filepath.Join(RepoRoot(), "integration", "testdata", "world.json")
	}
	cfg, err := awsemu.LoadConfig(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	w := &World{}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if w.MinIO, err = awsemu.StartMinIO(filepath.Join(o.Dir, "minio"), o.Log); err != nil {
		return nil, err
	}
	w.Emu, err = awsemu.Start(awsemu.Options{
		Config:            cfg,
		MinIOEndpoint:     w.MinIO.Endpoint,
		MinIORootUser:     w.MinIO.RootUser,
		MinIORootPassword: w.MinIO.RootPassword,
		ReportedExpiry:    o.ReportedExpiry,
		Logf:              func(f string, a ...any) { fmt.Fprintf(o.Log, "awsemu: "+f+"\n", a...) },
	})
	if err != nil {
		return nil, err
	}
	w.Admin = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(w.MinIO.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(w.MinIO.RootUser, w.MinIO.RootPassword, ""),
	})
	if err := CreateBucket(ctx, w.Admin, Bucket); err != nil {
		return nil, fmt.Errorf("creating bucket %s: %w", Bucket, err)
	}
	return w, nil
}

// Close stops the shapers, the emulator and MinIO.
func (w *World) Close() {
	for _, e := range w.shaped {
		e.Close()
	}
	if w.Emu != nil {
		_ = w.Emu.Close()
	}
	if w.MinIO != nil {
		_ = w.MinIO.Stop()
	}
}

// Put stores an object with the admin client.
func (w *World) Put(ctx context.Context, key string, body io.ReadSeeker) error {
	_, err := w.Admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(Bucket), Key: aws.String(key), Body: body})
	return err
}

// Get returns an object's content with the admin client.
func (w *World) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := w.Admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// Exists reports whether key exists, with the admin client.
func (w *World) Exists(ctx context.Context, key string) (bool, error) {
	_, err := w.Admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(Bucket), Key: aws.String(key)})
	var nf interface{ ErrorCode() string }
	if errors.As(err, &nf) && (nf.ErrorCode() == "NotFound" || nf.ErrorCode() == "NoSuchKey") {
		return false, nil
	}
	return err == nil, err
}

// MountArgs returns the s3mount options that point it at this world: the S3 endpoint and the
// emulated IMDS, STS and IAM. The credential chain itself (role_arn, external_id) is up to the
// caller.
func (w *World) MountArgs() []string {
	return []string{
		"--endpoint", w.MinIO.Endpoint, "--path-style", "--region", "us-east-1",
		"--imds-endpoint", w.Emu.IMDSEndpoint(),
		"--sts-endpoint", w.Emu.STSEndpoint(),
		"--iam-endpoint", w.Emu.STSEndpoint(),
	}
}

// CleanEnv returns the process environment without any AWS_ variable, so that nothing on the
// host (this machine sets AWS_CA_BUNDLE) changes how s3mount behaves in a test.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// CreateBucket creates a bucket, waiting (up to 30 s) for a MinIO that reports itself live but not
// yet initialized (503 XMinioServerNotInitialized), as a loaded machine's MinIO sometimes does.
func CreateBucket(ctx context.Context, c *s3.Client, bucket string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
		if err == nil || !strings.Contains(err.Error(), "XMinioServerNotInitialized") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}
