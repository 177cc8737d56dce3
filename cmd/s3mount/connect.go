package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/s3mount/s3mount/creds"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/s3backend"
)

// connect builds the credential chain, proves every link works, and returns the backend (the
// bucket is proved by probeBucket). Every failure says which piece is wrong and how to fix it,
// before anything is mounted.
func connect(ctx context.Context, c *config, log *slog.Logger) (*s3backend.Backend, error) {
	c.chain.BucketRegion = c.region // STS is called in the instance's region, not the bucket's
	c.chain.Logger = log
	var chain *creds.Built
	deadline := time.Now().Add(c.retryTimeout)
	for attempt := 1; ; attempt++ {
		var err error
		chain, err = c.chain.Build(ctx)
		if err == nil {
			err = chain.Verify(ctx)
		}
		if err == nil {
			break
		}
		if !creds.Transient(err) || time.Now().After(deadline) {
			return nil, fail(exitCredentials, "credentials: %v", err)
		}
		wait := min(time.Duration(attempt)*time.Second, 5*time.Second)
		log.Warn("credentials not available yet; retrying (network or instance metadata still starting?)", "in", wait, "err", err)
		time.Sleep(wait)
	}
	b, err := c.newBackend(chain)
	if err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	return b, nil
}

// newBackend builds the S3 backend on the chain's credentials, in the configured region or else
// the chain's (from the environment or the instance).
func (c *config) newBackend(chain *creds.Built) (*s3backend.Backend, error) {
	c.s3.Region = c.region
	if c.s3.Region == "" {
		c.s3.Region = chain.Region()
	}
	c.s3.Credentials = chain.Provider()
	return s3backend.New(c.s3)
}

// probeBucket lists the prefix once: the cheapest request that proves the bucket exists and the
// credentials may list it. A bucket in another region than b's is a *movedBucket.
func probeBucket(ctx context.Context, b *s3backend.Backend, c *config) error {
	_, err := b.List(ctx, backend.ListInput{Prefix: c.prefix, Delimiter: "/", MaxKeys: 1})
	target := fmt.Sprintf("s3://%s/%s", c.bucket, c.prefix)
	var se *s3backend.Error
	errors.As(err, &se)
	switch {
	case err == nil:
		return nil
	case s3backend.WrongRegion(err):
		region, _ := b.LocateBucket(ctx)
		return &movedBucket{bucket: c.bucket, from: b.Region(), to: region, err: err}
	case se != nil && se.Code == "NoSuchBucket":
		return fail(exitS3, "bucket %q does not exist at %s (check the name, --region and --endpoint)", c.bucket, endpointName(c))
	case errors.Is(err, backend.ErrPermission) && c.chain.Source == creds.SourceNone:
		return fail(exitS3, "unsigned requests may not list %s (S3 also answers this way for a bucket that does not exist): %v; fix: check the bucket name; a bucket that is not public needs credentials (drop --no-sign-request), a public one a policy allowing s3:ListBucket to everyone", target, err)
	case errors.Is(err, backend.ErrPermission):
		return fail(exitS3, "the credentials may not list %s (S3 also answers this way for a bucket that does not exist): %v; fix: check the bucket name, and allow s3:ListBucket on arn:aws:s3:::%s (with condition s3:prefix %q) in the last role's policy", target, err, c.bucket, c.prefix+"*")
	case errors.Is(err, backend.ErrCredentials):
		return fail(exitCredentials, "S3 rejected the credentials for %s: %v", target, err)
	default:
		return fail(exitS3, "cannot reach %s: %v", target, err)
	}
}

// movedBucket is a bucket found in another region (to; "" if S3 did not say which) than the one
// the mount signed for (from).
type movedBucket struct {
	bucket, from, to string
	err              error
}

func (m *movedBucket) Error() string {
	if m.to == "" {
		return fmt.Sprintf("bucket %q is not in %s (%v); fix: pass the bucket's --region", m.bucket, m.from, m.err)
	}
	return fmt.Sprintf("bucket %q is in %s, not %s; fix: pass --region %s", m.bucket, m.to, m.from, m.to)
}

func endpointName(c *config) string {
	if c.s3.Endpoint != "" {
		return c.s3.Endpoint
	}
	return "AWS region " + c.s3.Region
}

// checkEndpoints refuses http:// endpoints on other hosts than this one unless allow_http is
// given: over http, S3 requests and data, and STS's answers (credentials), cross the network in
// clear text, readable and changeable by anyone on the way. IMDS is http by its nature (a
// link-local address answered by the instance's own hypervisor) and is not checked.
func (c *config) checkEndpoints() error {
	for _, e := range []struct{ name, url string }{
		{"endpoint", c.s3.Endpoint}, {"sts_endpoint", c.chain.STSEndpoint}, {"iam_endpoint", c.chain.IAMEndpoint},
	} {
		if e.url == "" || c.allowHTTP {
			continue
		}
		u, err := url.Parse(e.url)
		if err != nil {
			return fmt.Errorf("%s %q is not a URL: %v", e.name, e.url, err)
		}
		if !strings.EqualFold(u.Scheme, "http") || isLoopbackHost(u.Hostname()) {
			continue
		}
		return fmt.Errorf("%s http://%s is plain http to another host: requests, file data and credentials would cross the network unencrypted; fix: use https://, or add allow_http if the network to it is trusted", e.name, u.Host)
	}
	return nil
}

// isLoopbackHost reports whether host names this machine: localhost or a loopback address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
