package s3backend

import (
	"context"
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
	// Credentials signs every request; aws.AnonymousCredentials{} leaves them unsigned. Required.
	Credentials aws.CredentialsProvider
	// HTTPClient overrides the HTTP client (tests, custom CAs); nil builds one sized for Concurrency.
	HTTPClient aws.HTTPClient
	// MaxAttempts is how often one request is tried (with exponential backoff and jitter) before
	// its error is returned.
	MaxAttempts int
	// Concurrency is the expected number of parallel requests; it sizes the connection pool.
	Concurrency int
	// RequestTimeout fails an attempt of a request once no byte has moved on its connection for
	// this long: connecting, sending, waiting for the answer (which starts once the whole body is
	// sent, so it needs no scaling with the body's size) or reading it. The attempt is retried.
	// 0: no bound.
	RequestTimeout time.Duration
	// OpTimeout fails a call with backend.ErrTimeout once it has waited this long in all for an
	// answer, across attempts, backoff and credentials; time spent moving a body is not counted.
	// 0: no bound.
	OpTimeout time.Duration
	// OnRetry, if set, is called each time an attempt of a request failed and is tried again, with
	// the operation's name (GetObject) and whether S3 throttled the attempt (SlowDown, 503). For
	// metrics; it must not block.
	OnRetry func(op string, throttled bool)
	// Shutdown, when done, fails every call in flight at once (the mount is going away); nil: never.
	Shutdown context.Context

	// SSE is the server-side encryption of new objects: "" (the bucket's default), "AES256" or
	// "aws:kms" (with SSEKMSKeyID, or the account's default KMS key).
	SSE, SSEKMSKeyID string
	// StorageClass of new objects ("" for STANDARD), e.g. STANDARD_IA, INTELLIGENT_TIERING.
	StorageClass string
	// RequesterPays acknowledges that this requester pays for requests and transfer.
	RequesterPays bool
	// ExpectedBucketOwner, if set, makes S3 refuse requests to a bucket owned by another account.
	ExpectedBucketOwner string
	// ChecksumAlgorithm, if set (CRC32, CRC32C, SHA1, SHA256), is computed for every upload and
	// verified by S3.
	ChecksumAlgorithm string
}

// Default deadlines (see docs/SECURITY.md, "The network"). A request S3 answers at all is
// answered in well under a second; 15 s without a byte is a dead connection, not a slow one. 45 s
// in all lets a call try three times against a connection that died and still fail in tens of
// seconds, not minutes.
const (
	DefaultRequestTimeout = 15 * time.Second
	DefaultOpTimeout      = 45 * time.Second
)

// NewConfig returns a Config with the defaults filled in.
func NewConfig() Config {
	return Config{
		Region:         "us-east-1",
		MaxAttempts:    5,
		Concurrency:    16,
		RequestTimeout: DefaultRequestTimeout,
		OpTimeout:      DefaultOpTimeout,
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
	return c.ValidateOptions()
}

// ValidateOptions checks the settings a user chooses (encryption, checksum), before anything runs.
func (c Config) ValidateOptions() error {
	switch {
	case c.SSE != "" && c.SSE != "AES256" && c.SSE != "aws:kms":
		return fmt.Errorf("sse %q: want AES256 or aws:kms", c.SSE)
	case c.SSEKMSKeyID != "" && c.SSE != "aws:kms":
		return fmt.Errorf("sse_kms_key_id needs sse=aws:kms")
	}
	switch c.ChecksumAlgorithm {
	case "", "CRC32", "CRC32C", "SHA1", "SHA256":
	default:
		return fmt.Errorf("checksum %q: want CRC32, CRC32C, SHA1 or SHA256", c.ChecksumAlgorithm)
	}
	return nil
}
