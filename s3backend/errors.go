package s3backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/s3mount/s3mount/fs/backend"
)

// Error is a failed S3 request. It unwraps to both the backend sentinel that classifies it (if any)
// and the SDK error, so errors.Is(err, backend.ErrNotExist) and errors.As(err, &smithy.APIError)
// both work.
type Error struct {
	Op     string // S3 operation, e.g. "GetObject"
	Bucket string
	Key    string
	Code   string // S3 error code, "" for transport errors
	Status int    // HTTP status, 0 for transport errors
	Kind   error  // one of the backend sentinels, or nil
	Err    error  // the SDK's error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("s3: %s s3://%s/%s", e.Op, e.Bucket, e.Key)
	if e.Code != "" {
		msg += fmt.Sprintf(": %s (HTTP %d)", e.Code, e.Status)
		var ae smithy.APIError
		if errors.As(e.Err, &ae) && ae.ErrorMessage() != "" {
			msg += ": " + ae.ErrorMessage()
		}
		return msg
	}
	return msg + ": " + e.Err.Error()
}

// Unwrap returns the classifying sentinel and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// credentialError marks a failure to obtain credentials, as opposed to a failed request.
type credentialError struct{ err error }

func (e *credentialError) Error() string { return "credentials: " + e.err.Error() }
func (e *credentialError) Unwrap() []error {
	if isTimeout(e.err) { // STS or IMDS did not answer: not a rejection
		return []error{backend.ErrTimeout, e.err}
	}
	return []error{backend.ErrCredentials, e.err}
}

// markedProvider tags the provider's errors as credentialError so classify can tell them apart
// from request failures after the SDK has wrapped them.
type markedProvider struct{ aws.CredentialsProvider }

func (p markedProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialError{err}
	}
	return c, nil
}

// classify wraps an SDK error from op on key into an *Error. preconditionKind says what a 412 means
// for this operation (ErrStale for If-Match reads, ErrExist for If-None-Match writes).
func (b *Backend) classify(op, key string, err error, preconditionKind error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Bucket: b.cfg.Bucket, Key: key, Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		e.Code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.Status = re.HTTPStatusCode()
	}
	var ce *credentialError
	var te *timeoutError
	switch {
	case errors.As(err, &te):
		if isTimeout(te) {
			e.Kind = backend.ErrTimeout
		}
	case errors.As(err, &ce) && isTimeout(ce.err):
		e.Kind = backend.ErrTimeout
	case errors.As(err, &ce):
		e.Kind = backend.ErrCredentials
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Kind = nil // surfaced as-is; fs maps cancellation to EINTR, a deadline to ETIMEDOUT
	case isTimeout(err):
		e.Kind = backend.ErrTimeout
	case e.Code == "NoSuchKey", e.Code == "NotFound", e.Code == "NoSuchBucket", e.Code == "NoSuchUpload", e.Status == 404:
		e.Kind = backend.ErrNotExist
	case e.Code == "PreconditionFailed", e.Status == 412:
		e.Kind = preconditionKind
	case e.Code == "ConditionalRequestConflict", e.Status == 409 && preconditionKind == backend.ErrExist:
		e.Kind = backend.ErrExist
	case e.Code == "InvalidAccessKeyId", e.Code == "ExpiredToken", e.Code == "InvalidToken", e.Code == "SignatureDoesNotMatch":
		e.Kind = backend.ErrCredentials
	case e.Code == "AccessDenied", e.Status == 403:
		e.Kind = backend.ErrPermission
	case e.Code == "SlowDown", e.Status == 503:
		e.Kind = backend.ErrThrottled
	}
	return e
}
