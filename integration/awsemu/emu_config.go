// Package awsemu emulates the parts of AWS that s3mount's credential chain talks to, for tests and
// the demo: the EC2 instance metadata service (IMDSv2 only), STS (AssumeRole, GetCallerIdentity)
// and IAM GetRole. It enforces what AWS enforces: IMDSv2 session tokens, SigV4 signatures made with
// credentials it issued, trust policies (principals and the sts:ExternalId condition), the
// caller's own permission to call sts:AssumeRole, session durations (with the one-hour cap on role
// chaining) and expiry. Real S3 access goes to MinIO: every role's credentials are minted from
// MinIO's STS as its root user, with the role's S3 statements as the session policy, so MinIO's
// policy engine enforces the role's permissions.
package awsemu

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Config is the emulated AWS world, loaded from JSON.
type Config struct {
	Region   string   `json:"region"`
	Instance Instance `json:"instance"`
	Roles    []Role   `json:"roles"`
	// OIDC lists the web identity tokens STS accepts (AssumeRoleWithWebIdentity).
	OIDC []OIDCToken `json:"oidc"`
}

// OIDCToken is a web identity token issued by an OIDC provider, as STS would validate it.
type OIDCToken struct {
	Provider string `json:"provider"` // arn:aws:iam::<acct>:oidc-provider/<host>
	Token    string `json:"token"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
}

// Instance is the EC2 instance whose metadata the emulator serves.
type Instance struct {
	InstanceID string `json:"instanceId"`
	// RoleARN is the instance profile's role; "" means the instance has no instance profile.
	RoleARN string `json:"roleArn"`
}

// Role is an IAM role.
type Role struct {
	ARN                string          `json:"arn"`
	TrustPolicy        json.RawMessage `json:"trustPolicy"`
	PermissionPolicy   json.RawMessage `json:"permissionPolicy"`
	MaxSessionDuration int             `json:"maxSessionDuration"` // seconds; default 3600
}

var roleARNRe = regexp.MustCompile(`^arn:aws:iam::(\d{12}):role/((?:[\w+=,.@-]+/)*)([\w+=,.@-]{1,64})$`)

// account returns the role's account ID.
func (r Role) account() string { return roleARNRe.FindStringSubmatch(r.ARN)[1] }

// name returns the role's name (without path).
func (r Role) name() string { return roleARNRe.FindStringSubmatch(r.ARN)[3] }

// LoadConfig reads and validates a world file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Instance.InstanceID == "" {
		c.Instance.InstanceID = "i-0123456789abcdef0"
	}
	seen := map[string]bool{}
	for i := range c.Roles {
		r := &c.Roles[i]
		if !roleARNRe.MatchString(r.ARN) {
			return fmt.Errorf("role %q: not a role ARN", r.ARN)
		}
		if seen[r.ARN] {
			return fmt.Errorf("role %q defined twice", r.ARN)
		}
		seen[r.ARN] = true
		if r.MaxSessionDuration == 0 {
			r.MaxSessionDuration = 3600
		}
		if r.MaxSessionDuration < 3600 || r.MaxSessionDuration > 43200 {
			return fmt.Errorf("role %q: maxSessionDuration must be 3600..43200", r.ARN)
		}
		for what, doc := range map[string]json.RawMessage{"trustPolicy": r.TrustPolicy, "permissionPolicy": r.PermissionPolicy} {
			if _, err := parsePolicy(doc); err != nil {
				return fmt.Errorf("role %q: %s: %w", r.ARN, what, err)
			}
		}
	}
	if c.Instance.RoleARN != "" && !seen[c.Instance.RoleARN] {
		return fmt.Errorf("instance role %q is not among the roles", c.Instance.RoleARN)
	}
	return nil
}

func (c *Config) role(arn string) (*Role, bool) {
	for i := range c.Roles {
		if strings.EqualFold(c.Roles[i].ARN, arn) {
			return &c.Roles[i], true
		}
	}
	return nil, false
}
