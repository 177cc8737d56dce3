//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_SharedConfigProfile: the SDK's own chain, from ~/.aws/config: a profile that assumes
// a role with an External ID using the instance profile as its source.
func TestInteg_SharedConfigProfile(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("via profile")); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config")
	profile := "[profile backup]\nrole_arn = " + world.AccessRole + "\nexternal_id = " + world.AccessExtID +
		"\ncredential_source = Ec2InstanceMetadata\nregion = us-east-1\n"
	if err := os.WriteFile(cfg, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"AWS_CONFIG_FILE=" + cfg, "AWS_SHARED_CREDENTIALS_FILE=" + cfg + ".none",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + w.Emu.IMDSEndpoint(), "AWS_ENDPOINT_URL_STS=" + w.Emu.STSEndpoint()}
	m := mountEnv(t, env, "s3://"+world.Bucket+"/"+prefix, "--profile", "backup", "--ro")
	if data, err := os.ReadFile(m.path("f")); err != nil || string(data) != "via profile" {
		t.Errorf("read through a shared-config profile: %q, %v", data, err)
	}
}

// TestInteg_WebIdentity: the standard chain with AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN
// (as on EKS), against the emulator's AssumeRoleWithWebIdentity.
func TestInteg_WebIdentity(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("via web identity")); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(t.TempDir(), "token")
	tok := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YmFja3VwOnMzbW91bnQifQ.c2lnbmF0dXJl"
	if err := os.WriteFile(token, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"AWS_WEB_IDENTITY_TOKEN_FILE=" + token, "AWS_ROLE_ARN=arn:aws:iam::111111111111:role/web-identity-reader",
		"AWS_ROLE_SESSION_NAME=backup-pod", "AWS_ENDPOINT_URL_STS=" + w.Emu.STSEndpoint(),
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
	m := mountEnv(t, env, "s3://"+world.Bucket+"/"+prefix, "--credential-source", "default", "--ro")
	if data, err := os.ReadFile(m.path("f")); err != nil || string(data) != "via web identity" {
		t.Errorf("read through web identity: %q, %v", data, err)
	}
	if n := w.Emu.Calls("AssumeRoleWithWebIdentity"); n == 0 {
		t.Error("the emulator saw no AssumeRoleWithWebIdentity")
	}
}
