//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/faultproxy"
	"github.com/s3mount/s3mount/integration/world"
)

// checkItem is one line of `s3mount check --json`.
type checkItem struct {
	Stage, Name, Detail, Fix, Cause string
	OK                              bool
}

// checkWith runs `s3mount check --json` with exactly args and returns its exit code and items.
func checkWith(t *testing.T, args ...string) (int, []checkItem, string) {
	t.Helper()
	cmd := command(append([]string{"check", "--json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var out struct{ Checks []checkItem }
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("check --json printed no JSON (%v):\n%s\n%s", err, stdout.String(), stderr.String())
	}
	return code, out.Checks, stdout.String()
}

// TestInteg_Troubleshooting: each row of the troubleshooting table of docs/CREDENTIALS.md, made
// to happen against the emulator, gets the diagnosis the table promises from `s3mount check`: the
// exit code, the failing check, its cause and its fix.
func TestInteg_Troubleshooting(t *testing.T) {
	prefix := testPrefix(t)
	target := "s3://" + world.Bucket + "/" + prefix
	closed := freeAddr(t)
	fakeKeys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(fakeKeys, []byte("[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy, ep := proxied(t, w)
	isKMSPut := func(r *http.Request) bool {
		return faultproxy.IsPut(r) && r.Header.Get("X-Amz-Server-Side-Encryption") == "aws:kms"
	}
	proxy.Add(faultproxy.Fault{Match: isKMSPut, Status: 403, Code: "AccessDenied"})
	// What S3 answers through a VPC endpoint whose policy does not allow the request.
	vpce, vpceEP := proxied(t, w)
	vpce.Add(faultproxy.Fault{Match: func(r *http.Request) bool { return r.URL.Query().Get("list-type") == "2" }, Status: 403, Code: "AccessDenied",
		Message: "User: arn:aws:sts::222222222222:assumed-role/team-a-access/s3mount is not authorized to perform: s3:ListBucket on resource: arn:aws:s3:::" + world.Bucket + " because no VPC endpoint policy allows the s3:ListBucket action"})

	cases := []struct {
		name      string
		args      []string // after w.MountArgs(), before the target
		setup     func(t *testing.T)
		code      int
		failing   string // the name of the failing check starts with this
		cause     string
		fixSays   string
		secretOut string // must not be printed
	}{
		{name: "AssumeRole AccessDenied: wrong External ID", args: []string{"--role-arn", world.AccessRole, "--external-id", "wrong-id-42"},
			code: 22, failing: "hop 1", cause: "assume-role-denied", fixSays: "check external_id of hop 1 with the role's owner", secretOut: "wrong-id-42"},
		{name: "AssumeRole AccessDenied: External ID missing", args: []string{"--role-arn", world.AccessRole},
			code: 22, failing: "hop 1", cause: "assume-role-denied", fixSays: "pass external_id=... for hop 1"},
		{name: "AssumeRole AccessDenied: principal not trusted", args: []string{"--role-arn", world.UntrustedRole},
			code: 22, failing: "hop 1", cause: "principal-not-trusted", fixSays: "to the Principal of " + world.UntrustedRole},
		{name: "AssumeRole AccessDenied on the second hop", args: append(accessChain(), "--role-arn", world.ReaderRole, "--external-id", "wrong-id-43"),
			code: 22, failing: "hop 2", cause: "assume-role-denied", fixSays: "check external_id of hop 2 with the role's owner"},
		{name: "InvalidClientTokenId", args: []string{"--credentials-file", fakeKeys, "--role-arn", world.AccessRole, "--external-id", world.AccessExtID},
			code: 22, failing: "hop 1", cause: "caller-credentials-invalid", fixSays: "unknown to STS"},
		{name: "S3 AccessDenied: missing action", args: append(accessChain(), "--role-arn", world.ReaderRole, "--external-id", world.ReaderExtID),
			code: 23, failing: "write", fixSays: "allow s3:PutObject on arn:aws:s3:::" + world.Bucket + "/" + prefix + "*"},
		{name: "S3 AccessDenied: KMS key", args: append(append(accessChain(), ep...), "--sse", "aws:kms", "--sse-kms-key-id", "arn:aws:kms:us-east-1:222222222222:key/backup"),
			code: 23, failing: "write", fixSays: "allow kms:GenerateDataKey and kms:Decrypt on arn:aws:kms:us-east-1:222222222222:key/backup"},
		{name: "IMDS hop limit in a container", args: accessChain(),
			setup: func(t *testing.T) { w.Emu.SetTokenHang(true); t.Cleanup(func() { w.Emu.SetTokenHang(false) }) },
			code:  21, failing: "instance profile", cause: "imds-unavailable", fixSays: "hop limit"},
		{name: "S3 AccessDenied: VPC endpoint policy", args: append(accessChain(), vpceEP...),
			code: 23, failing: "list", fixSays: "a VPC endpoint policy denies it"},
		{name: "S3 unreachable (no VPC endpoint)", args: append(accessChain(), "--endpoint", "http://"+closed),
			code: 23, failing: "bucket region", fixSays: "gateway VPC endpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup(t)
			}
			code, items, out := checkWith(t, append(append(w.MountArgs(), c.args...), target)...)
			if strings.Contains(out, world.AccessExtID) || strings.Contains(out, world.ReaderExtID) || (c.secretOut != "" && strings.Contains(out, c.secretOut)) {
				t.Errorf("check shows an External ID:\n%s", out)
			}
			var failed *checkItem
			for i := range items {
				if !items[i].OK && strings.HasPrefix(items[i].Name, c.failing) {
					failed = &items[i]
				}
			}
			if code != c.code || failed == nil || failed.Cause != c.cause || !strings.Contains(failed.Fix, c.fixSays) {
				t.Errorf("exit %d, want %d; want a failed check %q with cause %q and a fix saying %q:\n%s", code, c.code, c.failing, c.cause, c.fixSays, out)
			}
		})
	}
}

// TestInteg_TroubleshootingExpiredToken: the previous link's credentials have expired (here a
// keys file holding a session that ended), and STS answers ExpiredToken to the hop.
func TestInteg_TroubleshootingExpiredToken(t *testing.T) {
	w2 := startPrivateWorld(t, 2*time.Second)
	keys := filepath.Join(t.TempDir(), "keys")
	id, secret, token := instanceCredentials(t, w2.Emu.IMDSEndpoint())
	if err := os.WriteFile(keys, []byte(fmt.Sprintf("aws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n", id, secret, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the session ends
	code, items, out := checkWith(t, append(w2.MountArgs(), "--credentials-file", keys, "--role-arn", world.AccessRole, "--external-id", world.AccessExtID,
		"s3://"+world.Bucket+"/team-a")...)
	if strings.Contains(out, secret) || strings.Contains(out, token) || strings.Contains(out, world.AccessExtID) {
		t.Errorf("check shows a secret:\n%s", out)
	}
	last := items[len(items)-1]
	if code != 22 || !strings.HasPrefix(last.Name, "hop 1") || last.Cause != "caller-credentials-expired" || !strings.Contains(last.Fix, "clock") {
		t.Errorf("exit %d, want 22 at hop 1 with cause caller-credentials-expired and a fix about the clock:\n%s", code, out)
	}
}

// instanceCredentials fetches the instance profile's credentials from an IMDS (v2).
func instanceCredentials(t *testing.T, imds string) (id, secret, token string) {
	t.Helper()
	do := func(method, path, tok string) []byte {
		req, _ := http.NewRequest(method, imds+path, nil)
		if tok == "" {
			req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		} else {
			req.Header.Set("X-aws-ec2-metadata-token", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("IMDS %s %s: %s", method, path, resp.Status)
		}
		return body
	}
	tok := string(do(http.MethodPut, "/latest/api/token", ""))
	role := strings.TrimSpace(string(do(http.MethodGet, "/latest/meta-data/iam/security-credentials/", tok)))
	var c struct{ AccessKeyId, SecretAccessKey, Token string }
	if err := json.Unmarshal(do(http.MethodGet, "/latest/meta-data/iam/security-credentials/"+role, tok), &c); err != nil {
		t.Fatal(err)
	}
	return c.AccessKeyId, c.SecretAccessKey, c.Token
}

// TestInteg_SessionNameAndSourceIdentity: session_name names the hop's session (CloudTrail shows
// it in the assumed-role ARN) and source_identity reaches STS: a trust policy that requires a
// SourceIdentity admits the hop with it and refuses it without.
func TestInteg_SessionNameAndSourceIdentity(t *testing.T) {
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/s3mount-instance"},
		"Action":["sts:AssumeRole","sts:SetSourceIdentity"],"Condition":{"StringEquals":{"sts:SourceIdentity":"alice"}}}]}`
	if err := w.Emu.SetTrustPolicy(world.PolicyRole, json.RawMessage(trust)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Emu.SetTrustPolicy(world.PolicyRole, json.RawMessage(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole"}]}`))
	})
	target := "s3://" + world.Bucket + "/team-a"
	_, items, out := checkWith(t, append(w.MountArgs(), "--role-arn", world.PolicyRole, "--session-name", "backup-host1", "--source-identity", "alice", target)...)
	if len(items) < 2 || !items[1].OK || !strings.Contains(items[1].Detail, "assumed-role/policy-under-test/backup-host1") {
		t.Errorf("hop with session_name and the SourceIdentity the trust policy requires: want it assumed as session backup-host1:\n%s", out)
	}
	code, items, out := checkWith(t, append(w.MountArgs(), "--role-arn", world.PolicyRole, "--session-name", "backup-host1", target)...)
	if code != 22 || len(items) < 2 || items[1].OK {
		t.Errorf("hop without the SourceIdentity the trust policy requires: exit %d, want 22 at hop 1:\n%s", code, out)
	}
}
