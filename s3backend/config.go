package s3backend

import (
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Config holds everything needed to talk to one bucket. Start from NewConfig for the defaults.
type Config struct {
	// Bucket is the bucket name; Prefix is prepended by the filesystem, not here.
	Bucket string
	// Region of the bucket, e.g. "us-east-1".
	Region string
	// Endpoint overrides the S3 endpoint URL (MinIO, VPC endpoints); "" uses AWS's.
	Endpoint string
	// PathStyle addresses the bucket as endpoint/bucket instead of bucket.endpoint; needed by most
	// S3-compatible servers.
	PathStyle bool
	// Credentials signs every request. Required.
	Credentials aws.CredentialsProvider
	// HTTPClient overrides the HTTP client (tests, custom CAs); nil builds one sized for Concurrency.
	HTTPClient aws.HTTPClient
	// MaxAttempts is how often one request is tried (with exponential backoff and jitter) before
	// its error is returned.
	MaxAttempts int
	// Concurrency is the expected number of parallel requests; it sizes the connection pool.
	Concurrency int
	// RequestTimeout bounds one request's time to response headers, so a dead connection is
	// retried rather than hanging a reader or writer forever.
	RequestTimeout time.Duration
}

// NewConfig returns a Config with the defaults filled in.
func NewConfig() Config {
	return Config{
		Region:         "us-east-1",
		MaxAttempts:    5,
		Concurrency:    16,
		RequestTimeout: 60 * time.Second,
	}
}

func (c Config) validate() error {
	switch {
	case c.Bucket == "":
		return fmt.Errorf("s3backend: no bucket given")
	case strings.ContainsAny(c.Bucket, "/ "):
		return fmt.Errorf("s3backend: %q is not a valid bucket name", c.Bucket)
	case c.Credentials == nil:
		return fmt.Errorf("s3backend: no credentials provider")
	case c.Region == "":
		return fmt.Errorf("s3backend: no region given")
	}
	return nil
}
