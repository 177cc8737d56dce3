// Package creds builds the credential chain of a mount: a source (the EC2 instance profile through
// IMDSv2, or the SDK's standard chain) followed by any number of STS AssumeRole hops, each with its
// own role, optional External ID and session name. The result is one aws.CredentialsProvider,
// refreshed in the background before it expires, each refresh bounded in time (refresh.go), which
// is all the S3 backend sees.
//
// Verify retrieves every link in order and turns failures into *StepError values that name the
// link, the principal and the likely fix.
package creds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Source is where the first credentials of the chain come from.
type Source string

// Sources.
const (
	// SourceIMDS is the EC2 instance profile, through IMDSv2 (IMDSv1 only with Chain.AllowIMDSv1).
	SourceIMDS Source = "imds"
	// SourceDefault is the SDK's standard chain: environment, shared config and credentials files
	// (profiles, including role_arn/source_profile/credential_source), web identity, then IMDS.
	SourceDefault Source = "default"
	// SourceFile is long-term keys from Chain.CredentialsFile (owned by the user, mode 0600).
	SourceFile Source = "file"
	// SourceNone is no credentials at all: requests go unsigned, and S3 allows them what the
	// bucket's policy allows everyone (public datasets). No hop can follow it.
	SourceNone Source = "none"
)

// Hop is one sts:AssumeRole step.
type Hop struct {
	RoleARN string
	// ExternalID is sent when not empty; roles shared across accounts usually require one.
	ExternalID Secret
	// SessionName names the session in CloudTrail; "" uses DefaultSessionName().
	SessionName string
	// Duration of the session; 0 asks for STS's default (one hour).
	Duration time.Duration
	// Policy is an optional session policy (JSON) that narrows the role's permissions.
	Policy string
	// SourceIdentity, if set, is recorded by STS and carried along the chain.
	SourceIdentity string
}

// Chain describes the whole credential chain. Zero values mean the SDK's defaults.
type Chain struct {
	Source Source
	// Profile selects a shared-config profile (SourceDefault only).
	Profile string
	// CredentialsFile holds the keys of SourceFile.
	CredentialsFile string
	// IMDSEndpoint overrides the IMDS address (AWS_EC2_METADATA_SERVICE_ENDPOINT also works).
	IMDSEndpoint string
	// AllowIMDSv1 lets the IMDS client fall back to IMDSv1 when no token can be had.
	AllowIMDSv1 bool
	// STSEndpoint overrides the STS endpoint URL.
	STSEndpoint string
	// IAMEndpoint overrides the IAM endpoint URL, used only to diagnose AssumeRole denials.
	IAMEndpoint string
	// Region is the region of STS, whose regional endpoint the hops call: the instance's own, as
	// the SDK does. "" takes it from the environment (AWS_REGION, the AWS config) or, for
	// SourceIMDS, from IMDS; never from the bucket, which may be on another continent.
	Region string
	// BucketRegion is the bucket's region when the options name it: STS's region only when
	// neither the environment nor IMDS tells one (off EC2), before the last resort us-east-1.
	BucketRegion string
	Hops         []Hop
	// HTTPClient, if set, carries every request of the chain (IMDS, STS, IAM); nil is the SDK's.
	HTTPClient aws.HTTPClient
	// RefreshWindow is how long before expiry credentials are refreshed, at most a third of their
	// lifetime, plus jitter of up to half of that, so that many mounts do not refresh at once.
	RefreshWindow time.Duration
	// RequestTimeout bounds each attempt of a request to STS (and IAM, and the standard chain's
	// endpoints): connecting, TLS, and the wait for the answer's headers. IMDS keeps the SDK's
	// own, shorter ones. 0 uses DefaultRequestTimeout.
	RequestTimeout time.Duration
	// RefreshTimeout bounds one refresh of one link, retries included: past it the refresh is
	// abandoned and the next one starts afresh. 0 uses DefaultRefreshTimeout.
	RefreshTimeout time.Duration
	// Logger gets debug lines on refreshes (expiry times, never secrets); nil discards.
	Logger *slog.Logger
	// OnRefresh, if set, is told of every refresh of a link: its name, the new expiry (zero if
	// none) and the error if it failed. For metrics.
	OnRefresh func(step string, expires time.Time, err error)
}

// Defaults for the zero values of Chain's durations.
const (
	DefaultRefreshWindow  = 5 * time.Minute
	DefaultRequestTimeout = 15 * time.Second
	DefaultRefreshTimeout = 45 * time.Second
)

// step is one link of a built chain.
type step struct {
	name     string // "instance profile (IMDS)", "hop 1 (arn:...)"
	hop      *Hop   // nil for the source
	provider *aws.CredentialsCache
}

// Built is a chain ready to use.
type Built struct {
	chain  Chain
	awsCfg aws.Config // base config: region, HTTP client, environment
	steps  []step
}

// Provider returns the chain's final credentials provider: aws.AnonymousCredentials, which the
// SDK does not sign with, for SourceNone.
func (b *Built) Provider() aws.CredentialsProvider {
	if len(b.steps) == 0 {
		return aws.AnonymousCredentials{}
	}
	return b.steps[len(b.steps)-1].provider
}

// Region returns the region the chain resolved (from the options, the environment or IMDS), where
// STS is called.
func (b *Built) Region() string { return b.awsCfg.Region }

// Build assembles the chain. It reads the environment and shared config the way the AWS SDK does,
// but makes no request except, when no region is known, asking IMDS for the instance's region.
func (c Chain) Build(ctx context.Context) (*Built, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if c.IMDSEndpoint != "" {
		opts = append(opts, config.WithEC2IMDSEndpoint(c.IMDSEndpoint))
	}
	if c.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(c.HTTPClient))
	} else {
		opts = append(opts, config.WithHTTPClient(httpClient(orDefault(c.RequestTimeout, DefaultRequestTimeout))))
	}
	// The SDK's standard chain ends with the instance profile, on a client of its own that falls
	// back to IMDSv1 unless told otherwise: it gets ours (set below, before any request).
	sdkIMDS := &lateIMDSClient{}
	opts = append(opts, config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = sdkIMDS }))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	imdsClient := imds.NewFromConfig(cfg, func(o *imds.Options) {
		o.EnableFallback = aws.FalseTernary
		if c.AllowIMDSv1 {
			o.EnableFallback = aws.TrueTernary
		}
	})
	sdkIMDS.client = imdsClient
	if cfg.Region == "" && c.Source == SourceIMDS {
		out, err := imdsClient.GetRegion(ctx, nil)
		if err != nil {
			return nil, &StepError{Step: "instance profile (IMDS)", Cause: CauseIMDS, Err: err, Fix: fixIMDS(err),
				Message: fmt.Sprintf("the instance metadata service did not tell the instance's region (where STS is called): %v", err)}
		}
		cfg.Region = out.Region
	}
	if cfg.Region == "" {
		cfg.Region = c.BucketRegion
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	b := &Built{chain: c, awsCfg: cfg}
	switch c.Source {
	case SourceIMDS:
		b.add("instance profile (IMDS)", nil, ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = imdsClient }))
	case SourceDefault:
		b.add("default AWS credential chain", nil, cfg.Credentials)
	case SourceFile:
		p, err := staticFromFile(c.CredentialsFile)
		if err != nil {
			return nil, err
		}
		b.add("credentials file "+c.CredentialsFile, nil, p)
	case SourceNone: // no link: Provider is anonymous
	}
	for i := range c.Hops {
		h := &c.Hops[i]
		client := sts.NewFromConfig(cfg, func(o *sts.Options) {
			o.Credentials = b.steps[len(b.steps)-1].provider
			if c.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(c.STSEndpoint)
			}
		})
		p := stscreds.NewAssumeRoleProvider(client, h.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = h.SessionName
			if o.RoleSessionName == "" {
				o.RoleSessionName = DefaultSessionName()
			}
			o.Duration = h.Duration
			if h.ExternalID != "" {
				o.ExternalID = aws.String(h.ExternalID.Reveal())
			}
			if h.Policy != "" {
				o.Policy = aws.String(h.Policy)
			}
			if h.SourceIdentity != "" {
				o.SourceIdentity = aws.String(h.SourceIdentity)
			}
		})
		b.add(fmt.Sprintf("hop %d (%s)", i+1, h.RoleARN), h, p)
	}
	return b, nil
}

// lateIMDSClient is the IMDS client of the SDK's standard chain, known only once the
// configuration it is part of is loaded (Build sets it before any request).
type lateIMDSClient struct{ client *imds.Client }

func (l *lateIMDSClient) GetMetadata(ctx context.Context, in *imds.GetMetadataInput, opts ...func(*imds.Options)) (*imds.GetMetadataOutput, error) {
	if l.client == nil {
		return nil, fmt.Errorf("instance metadata asked for while the AWS configuration was loading")
	}
	return l.client.GetMetadata(ctx, in, opts...)
}

func (b *Built) add(name string, h *Hop, p aws.CredentialsProvider) {
	window := b.chain.RefreshWindow
	if window == 0 {
		window = DefaultRefreshWindow
	}
	// The refresher decides when to refresh (see refresh.go); the cache only serves and dedupes.
	r := &refresher{inner: p, name: name, window: window, timeout: orDefault(b.chain.RefreshTimeout, DefaultRefreshTimeout),
		log: b.chain.Logger, notify: b.chain.OnRefresh}
	cache := aws.NewCredentialsCache(r,
		func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 0 })
	b.steps = append(b.steps, step{name: name, hop: h, provider: cache})
}

// httpClient is the SDK's client with every wait bounded: without a response deadline, an
// endpoint that accepts a connection and never answers holds a refresh forever.
func httpClient(timeout time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = timeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = timeout
			t.ResponseHeaderTimeout = timeout
		})
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

var (
	// The role's path and name may be 512 characters: checked apart from the pattern, since a
	// {1,512} repetition compiles into a program so large that it would slow every start of
	// s3mount by milliseconds, while the command line shows its secrets (see cmd/s3mount).
	roleARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/([\w+=,.@/-]+)$`)
	externalIDPattern  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// Validate checks the chain's settings without any request: the source, each role ARN, External
// ID, session name and duration.
func (c Chain) Validate() error {
	switch c.Source {
	case SourceIMDS, SourceDefault:
	case SourceFile:
		if c.CredentialsFile == "" {
			return fmt.Errorf("credential source %q needs a credentials file", c.Source)
		}
	case SourceNone:
		if len(c.Hops) > 0 {
			return fmt.Errorf("unsigned requests (credential source %q, --no-sign-request) cannot assume a role: drop role_arn, or sign with credentials", c.Source)
		}
	default:
		return fmt.Errorf("unknown credential source %q (want %q, %q, %q or %q)", c.Source, SourceIMDS, SourceDefault, SourceFile, SourceNone)
	}
	for i, h := range c.Hops {
		if m := roleARNPattern.FindStringSubmatch(h.RoleARN); m == nil || len(m[1]) > 512 {
			return fmt.Errorf("hop %d: %q is not a role ARN (want arn:aws:iam::<12-digit account>:role/<name>)", i+1, h.RoleARN)
		}
		if id := h.ExternalID.Reveal(); id != "" && (len(id) < 2 || len(id) > 1224 || !externalIDPattern.MatchString(id)) {
			return fmt.Errorf("hop %d: the External ID must be 2 to 1224 characters of letters, digits and +=,.@:/-", i+1)
		}
		if h.SessionName != "" && !sessionNamePattern.MatchString(h.SessionName) {
			return fmt.Errorf("hop %d: session name %q must be 2 to 64 characters of letters, digits and +=,.@-", i+1, h.SessionName)
		}
		if h.Duration != 0 && (h.Duration < 15*time.Minute || h.Duration > 12*time.Hour) {
			return fmt.Errorf("hop %d: duration %s is outside STS's range of 15m to 12h", i+1, h.Duration)
		}
	}
	return nil
}

// DefaultSessionName names sessions after the host and the local user, so that CloudTrail shows
// who acted: "s3mount@<host>+<user>", cut to STS's 64 characters.
func DefaultSessionName() string {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	s := "s3mount@" + sanitize(host) + "+" + sanitize(name)
	return s[:min(len(s), 64)]
}

var notSessionChar = regexp.MustCompile(`[^\w+=,.@-]`)

func sanitize(s string) string {
	s = notSessionChar.ReplaceAllString(s, "-")
	return strings.Trim(s, "-")
}
