package creds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// Cause classifies why a link of the chain failed.
type Cause string

// Causes. The precise trust-policy causes (NotTrusted, ExternalIDMissing, ExternalIDWrong) are
// only known when the caller may read the role with iam:GetRole; otherwise AWS answers every trust
// failure with the same AccessDenied and the cause is Denied.
const (
	CauseIMDS              Cause = "imds-unavailable"
	CauseNoInstanceProfile Cause = "no-instance-profile"
	CauseSource            Cause = "source-credentials"
	CauseDenied            Cause = "assume-role-denied"
	CauseNotTrusted        Cause = "principal-not-trusted"
	CauseExternalIDMissing Cause = "external-id-missing"
	CauseExternalIDWrong   Cause = "external-id-wrong"
	CauseExpired           Cause = "caller-credentials-expired"
	CauseInvalidToken      Cause = "caller-credentials-invalid"
	CauseDuration          Cause = "duration-too-long"
	CauseOther             Cause = "other"
)

// StepError is a failed link of the chain, with what a person needs to fix it.
type StepError struct {
	Step      string // e.g. "hop 2 (arn:aws:iam::222222222222:role/reader)"
	Cause     Cause
	Principal string // the identity that made the failing request, when known
	Message   string // what went wrong, in words
	Fix       string // what to do about it
	Err       error
}

func (e *StepError) Error() string {
	msg := e.Step + ": " + e.Message
	if e.Message == "" {
		msg = e.Step + ": " + e.Err.Error()
	}
	if e.Fix != "" {
		msg += "; fix: " + e.Fix
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// Verify retrieves the credentials of every link in order and returns a *StepError for the first
// that fails. Successful links stay cached, so the provider is warm afterwards.
func (b *Built) Verify(ctx context.Context) error {
	for _, r := range b.Check(ctx, false) {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// LinkResult is the outcome of one link of the chain.
type LinkResult struct {
	Name     string // "instance profile (IMDS)", "hop 1 (arn:...)"
	IsSource bool
	Identity string    // the ARN the link's credentials act as (only when identities were asked for)
	Expires  time.Time // zero if the credentials do not expire
	Err      *StepError
}

// Check retrieves every link in order, stopping at the first failure. With identities, it also
// asks STS who each link is (GetCallerIdentity), for a checklist.
func (b *Built) Check(ctx context.Context, identities bool) []LinkResult {
	if len(b.steps) == 0 {
		return []LinkResult{{Name: "no credentials: unsigned requests", IsSource: true, Identity: "anyone (what the bucket's policy allows everyone)"}}
	}
	var out []LinkResult
	for i, s := range b.steps {
		r := LinkResult{Name: s.name, IsSource: s.hop == nil}
		c, err := s.provider.Retrieve(ctx)
		if err != nil {
			var se *StepError
			if !errors.As(b.diagnose(ctx, i, err), &se) {
				se = &StepError{Step: s.name, Cause: CauseOther, Err: err}
			}
			r.Err = se
			return append(out, r)
		}
		if c.CanExpire {
			r.Expires = c.Expires
		}
		if identities {
			r.Identity = b.callerARN(ctx, i)
		}
		out = append(out, r)
	}
	return out
}

func errorCode(err error) (code, msg string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	return "", ""
}

func (b *Built) diagnose(ctx context.Context, i int, err error) error {
	s := b.steps[i]
	e := &StepError{Step: s.name, Cause: CauseOther, Err: err}
	if s.hop == nil {
		b.diagnoseSource(e, err)
		return e
	}
	e.Principal = b.callerARN(ctx, i-1)
	code, msg := errorCode(err)
	hopFlag := fmt.Sprintf("hop %d", i)
	switch {
	case code == "AccessDenied":
		b.diagnoseDenied(ctx, i, e)
	case code == "ExpiredToken":
		e.Cause, e.Message = CauseExpired, "the credentials of the previous link have expired"
		e.Fix = "check the clock (timedatectl) and that the previous link refreshes; re-run with --debug to see expiry times"
	case code == "InvalidClientTokenId":
		e.Cause, e.Message = CauseInvalidToken, "STS does not recognise the credentials of the previous link"
		e.Fix = "the access key of the previous link is unknown to STS: check for deleted, deactivated or mistyped keys (aws iam list-access-keys), " +
			"and that the STS endpoint and region belong to the same partition as those credentials"
	case code == "ValidationError" && strings.Contains(msg, "DurationSeconds"):
		e.Cause, e.Message = CauseDuration, msg
		e.Fix = fmt.Sprintf("lower the duration of %s (role chaining is limited to 1h; otherwise to the role's MaxSessionDuration)", hopFlag)
	default:
		e.Message = fmt.Sprintf("AssumeRole of %s failed: %v", s.hop.RoleARN, err)
	}
	return e
}

func (b *Built) diagnoseSource(e *StepError, err error) {
	if b.chain.Source != SourceIMDS {
		e.Cause, e.Message = CauseSource, fmt.Sprintf("no credentials from the standard AWS chain: %v", err)
		e.Fix = "set AWS_PROFILE / profile=, AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, or use the instance profile"
		return
	}
	e.Message, e.Fix = fmt.Sprintf("no credentials from the instance metadata service: %v", err), fixIMDS(err)
	e.Cause = CauseIMDS
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() == 404 {
		e.Cause = CauseNoInstanceProfile
		e.Message = "this instance has no IAM instance profile (IMDS lists no role)"
		e.Fix = "attach an instance profile to the instance (EC2 console: Actions > Security > Modify IAM role)"
	}
}

// fixIMDS suggests a fix for a failed IMDS request.
func fixIMDS(err error) string {
	// The IMDS client wraps its retries in an error type without Unwrap, so the timeout is found
	// in the message when it cannot be found in the chain.
	msg := err.Error()
	tokenTimeout := strings.Contains(msg, "API token") && (strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline exceeded"))
	if tokenTimeout || (timedOut(err) && strings.Contains(msg, "API token")) {
		return "IMDS answered but its IMDSv2 token never arrived: this is the container hop limit problem; " +
			"allow two hops for the token's answer (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2), " +
			"or run on the host network"
	}
	if timedOut(err) {
		return "IMDS did not answer in time; check that this is an EC2 instance with the metadata service enabled"
	}
	return "check that this is an EC2 instance with IMDS enabled (http://169.254.169.254), " +
		"or set AWS_EC2_METADATA_SERVICE_ENDPOINT / imds_endpoint="
}

// callerARN asks STS who link i is, for error messages; "" if that fails too.
func (b *Built) callerARN(ctx context.Context, i int) string {
	if i < 0 {
		return ""
	}
	client := sts.NewFromConfig(b.awsCfg, func(o *sts.Options) {
		o.Credentials = b.steps[i].provider
		if b.chain.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(b.chain.STSEndpoint)
		}
	})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return ""
	}
	return aws.ToString(out.Arn)
}

// diagnoseDenied explains an AccessDenied from AssumeRole. AWS does not say which condition
// failed; if the caller may read the role (iam:GetRole) its trust policy tells, otherwise the
// message names every likely cause.
func (b *Built) diagnoseDenied(ctx context.Context, i int, e *StepError) {
	h := b.steps[i].hop
	who := e.Principal
	if who == "" {
		who = "the previous link's identity"
	}
	e.Cause = CauseDenied
	if h.ExternalID != "" {
		e.Message = fmt.Sprintf("%s may not assume %s: the External ID given does not match the role's trust policy, or the trust policy does not name this principal", who, h.RoleARN)
		e.Fix = fmt.Sprintf("check external_id of hop %d with the role's owner, and that the trust policy's Principal names %s or its account", i, principalToTrust(who))
	} else {
		e.Message = fmt.Sprintf("%s may not assume %s: the trust policy does not name this principal, or it requires an External ID", who, h.RoleARN)
		e.Fix = fmt.Sprintf("if the role's owner gave you an External ID, pass external_id=... for hop %d; otherwise ask them to add %s to the trust policy", i, principalToTrust(who))
	}
	doc, err := b.trustPolicy(ctx, i-1, h.RoleARN)
	if err != nil {
		return
	}
	trusted, extIDs := evalTrust(doc, who)
	switch {
	case !trusted:
		e.Cause = CauseNotTrusted
		e.Message = fmt.Sprintf("the trust policy of %s does not name principal %s", h.RoleARN, who)
		e.Fix = fmt.Sprintf("add %q to the Principal of %s's trust policy (or assume it from a principal it trusts)", principalToTrust(who), h.RoleARN)
	case len(extIDs) > 0 && h.ExternalID == "":
		e.Cause = CauseExternalIDMissing
		e.Message = fmt.Sprintf("role %s requires an External ID", h.RoleARN)
		e.Fix = fmt.Sprintf("pass external_id=<the ID the role's owner gave you> for hop %d", i)
	case len(extIDs) > 0 && !contains(extIDs, h.ExternalID.Reveal()):
		e.Cause = CauseExternalIDWrong
		e.Message = fmt.Sprintf("the External ID of hop %d does not match the one %s's trust policy requires", i, h.RoleARN)
		e.Fix = fmt.Sprintf("correct external_id of hop %d (ask the role's owner for the right one)", i)
	default:
		e.Message = fmt.Sprintf("the trust policy of %s names %s, but AssumeRole was denied; the caller's own policy probably lacks sts:AssumeRole on the role", h.RoleARN, who)
		e.Fix = fmt.Sprintf("allow sts:AssumeRole on %s in the permission policy of %s", h.RoleARN, principalToTrust(who))
	}
}

// trustPolicy reads a role's trust policy with link i's credentials, if allowed.
func (b *Built) trustPolicy(ctx context.Context, i int, roleARN string) (string, error) {
	if i < 0 {
		return "", errors.New("no caller")
	}
	name := roleARN[strings.LastIndex(roleARN, "/")+1:]
	client := iam.NewFromConfig(b.awsCfg, func(o *iam.Options) {
		o.Credentials = b.steps[i].provider
		if b.chain.IAMEndpoint != "" {
			o.BaseEndpoint = aws.String(b.chain.IAMEndpoint)
		}
	})
	out, err := client.GetRole(ctx, &iam.GetRoleInput{RoleName: &name})
	if err != nil {
		return "", err
	}
	return url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
}

// principalToTrust turns a caller ARN into the principal a trust policy names: an assumed-role
// session arn:aws:sts::A:assumed-role/R/S is trusted as arn:aws:iam::A:role/R.
func principalToTrust(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/") {
		role := strings.Split(strings.TrimPrefix(parts[5], "assumed-role/"), "/")[0]
		return fmt.Sprintf("arn:%s:iam::%s:role/%s", parts[1], parts[4], role)
	}
	return arn
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Transient reports whether err looks like something that goes away by waiting: the network, the
// instance metadata service or STS not reachable yet (as at boot), or a server error. Denials and
// bad configuration are not transient.
func Transient(err error) bool {
	var se *StepError
	if errors.As(err, &se) && (se.Cause == CauseIMDS) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	return false
}

// timedOut reports whether any error in err's chain is a timeout.
func timedOut(err error) bool {
	for err != nil {
		if t, ok := err.(interface{ Timeout() bool }); ok && t.Timeout() {
			return true
		}
		if multi, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range multi.Unwrap() {
				if timedOut(e) {
					return true
				}
			}
			return false
		}
		err = errors.Unwrap(err)
	}
	return false
}
