//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/creds"
	"github.com/s3mount/s3mount/integration/world"
)

// runCheck runs `s3mount check --json` with the world's endpoints and args, and returns the exit
// code and the parsed checklist.
func runCheck(t *testing.T, args ...string) (int, []map[string]any) {
	t.Helper()
	code, _, stdout := checkWith(t, append(w.MountArgs(), args...)...)
	var out struct {
		Checks []map[string]any `json:"checks"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	return code, out.Checks
}

// firstFailure returns the name of the first failed check.
func firstFailure(checks []map[string]any) string {
	for _, c := range checks {
		if ok, _ := c["ok"].(bool); !ok {
			return c["name"].(string)
		}
	}
	return ""
}

// warned reports whether the check step named name (a prefix of it) passed with a warning
// whose detail says why.
func warned(checks []map[string]any, name string) bool {
	for _, c := range checks {
		if n, _ := c["name"].(string); strings.HasPrefix(n, name) {
			w, _ := c["warning"].(bool)
			d, _ := c["detail"].(string)
			return w && d != ""
		}
	}
	return false
}

func TestInteg_CheckPassesAndNamesTheBrokenPiece(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	if err := w.Put(ctx, prefix+"some-object", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	target := "s3://" + world.Bucket + "/" + prefix
	code, checks := runCheck(t, append(accessChain(), target)...)
	if code != 0 {
		t.Fatalf("check of a working setup exited %d: %v", code, checks)
	}
	var names []string
	for _, c := range checks {
		names = append(names, c["name"].(string))
	}
	for _, want := range []string{"instance profile", "hop 1", "bucket region", "list", "read", "write", "delete", "multipart"} {
		if !strings.Contains(strings.Join(names, "|"), want) {
			t.Errorf("checklist lacks %q: %q", want, names)
		}
	}
	code, checks = runCheck(t, "--role-arn", world.AccessRole, "--external-id", "not-the-id", target)
	if code != 22 || !strings.HasPrefix(firstFailure(checks), "hop 1") {
		t.Errorf("check with a wrong External ID: exit %d, first failure %q; want 22 at hop 1", code, firstFailure(checks))
	}
}

// TestInteg_PolicyMakesCheckPass feeds `s3mount policy` into the emulator: with it, check passes;
// without any one of its statements, a named check step fails.
func TestInteg_PolicyMakesCheckPass(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	if err := w.Put(ctx, prefix+"obj", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	target := "s3://" + world.Bucket + "/" + strings.TrimSuffix(prefix, "/")
	policyJSON := func(args ...string) []byte {
		out, err := command(append([]string{"policy"}, args...)...).Output()
		if err != nil {
			t.Fatalf("s3mount policy: %v", err)
		}
		return out
	}
	const extID = "policy-test-6b1f"
	trust := policyJSON("--only", "trust", "--principal", "arn:aws:iam::111111111111:role/s3mount-instance", "--external-id", extID, target)
	perm := policyJSON("--only", "permission", target)
	if err := w.Emu.SetTrustPolicy(world.PolicyRole, trust); err != nil {
		t.Fatal(err)
	}
	defer w.Emu.SetTrustPolicy(world.PolicyRole, json.RawMessage(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole"}]}`))
	chain := []string{"--role-arn", world.PolicyRole, "--external-id", extID, target}
	if err := w.Emu.SetPermissionPolicy(world.PolicyRole, perm); err != nil {
		t.Fatal(err)
	}
	if code, checks := runCheck(t, chain...); code != 0 {
		t.Fatalf("check with the generated policy exited %d at %q: %v", code, firstFailure(checks), checks)
	}
	var doc struct {
		Version   string
		Statement []json.RawMessage
	}
	if err := json.Unmarshal(perm, &doc); err != nil {
		t.Fatal(err)
	}
	wantFailure := map[string]string{"ListPrefix": "list", "BucketRegion": "bucket region", "ReadObjects": "read", "WriteObjects": "write"}
	// Optional statements: without one, check passes with a warning at its step.
	wantWarning := map[string]string{"CleanUploads": "list multipart uploads", "ReadLifecycle": "lifecycle rule"}
	for i := range doc.Statement {
		var st struct{ Sid string }
		_ = json.Unmarshal(doc.Statement[i], &st)
		without := doc
		without.Statement = append(append([]json.RawMessage(nil), doc.Statement[:i]...), doc.Statement[i+1:]...)
		reduced, _ := json.Marshal(without)
		if err := w.Emu.SetPermissionPolicy(world.PolicyRole, reduced); err != nil {
			t.Fatal(err)
		}
		code, checks := runCheck(t, chain...)
		if step, ok := wantWarning[st.Sid]; ok {
			if code != 0 || !warned(checks, step) {
				t.Errorf("without statement %s: exit %d, warnings %v; want 0 with a warning at %q", st.Sid, code, checks, step)
			}
			continue
		}
		first := firstFailure(checks)
		if code != 23 || !strings.HasPrefix(first, wantFailure[st.Sid]) {
			t.Errorf("without statement %s: exit %d, first failure %q; want 23 at %q", st.Sid, code, first, wantFailure[st.Sid])
		}
	}
}

// TestInteg_ScopeDownNarrowsTheLastHop: the session policy generated for a prefix keeps the
// role's other permissions out of the mount's credentials.
func TestInteg_ScopeDownNarrowsTheLastHop(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	outside := "team-a/outside-" + filepath.Base(strings.TrimSuffix(prefix, "/"))
	for _, k := range []string{prefix + "in", outside} {
		if err := w.Put(ctx, k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	policy, err := command("policy", "--only", "permission", "--read-only", "s3://"+world.Bucket+"/"+prefix).Output()
	if err != nil {
		t.Fatal(err)
	}
	chain := creds.Chain{Source: creds.SourceIMDS, Region: "us-east-1", IMDSEndpoint: w.Emu.IMDSEndpoint(), STSEndpoint: w.Emu.STSEndpoint(),
		Hops: []creds.Hop{{RoleARN: world.AccessRole, ExternalID: world.AccessExtID, Policy: string(policy)}}}
	b, err := chain.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(w.MinIO.Endpoint), UsePathStyle: true, Credentials: b.Provider()})
	if _, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + "in")}); err != nil {
		t.Errorf("read inside the scoped prefix: %v", err)
	}
	if _, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(outside)}); err == nil {
		t.Error("read outside the scoped prefix succeeded; the role allows it, the session must not")
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + "new"), Body: strings.NewReader("x")}); err == nil {
		t.Error("write with a read-only scoped session succeeded")
	}
	// And the option works through a real mount.
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--scope-down", "--ro")...)
	if data, err := os.ReadFile(m.path("in")); err != nil || string(data) != "x" {
		t.Errorf("read through a scoped-down mount: %q, %v", data, err)
	}
}

// TestInteg_RefreshDuringLongTransfer: with credentials that expire every 15 s, a reader and a
// writer run for 75 s through one mount without a single error, and the chain is refreshed as
// often as expected (not per request, not never).
func TestInteg_RefreshDuringLongTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	ctx := context.Background()
	w2, err := world.Start(ctx, world.Options{Dir: t.TempDir(), ReportedExpiry: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	prefix := testPrefix(t)
	src := randomBytes(5, 8<<20)
	if _, err := w2.Admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + "src"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}
	args := append(w2.MountArgs(), accessChain()...)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(args, "--cache-size", "0")...)
	deadline := time.Now().Add(75 * time.Second)
	errs := make(chan error, 2)
	go func() { // reader: the whole file again and again
		for time.Now().Before(deadline) {
			data, err := os.ReadFile(m.path("src"))
			if err != nil || !bytes.Equal(data, src) {
				errs <- errors.Join(errors.New("reader"), err)
				return
			}
		}
		errs <- nil
	}()
	go func() { // writer: a file every second, each checked back in S3
		for i := 0; time.Now().Before(deadline); i++ {
			body := randomBytes(int64(i), 256<<10)
			name := "out-" + string(rune('a'+i%26))
			if err := os.WriteFile(m.path(name), body, 0o644); err != nil {
				errs <- errors.Join(errors.New("writer"), err)
				return
			}
			out, err := w2.Admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + name)})
			if err != nil {
				errs <- err
				return
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if sha256.Sum256(got) != sha256.Sum256(body) {
				errs <- errors.New("writer: S3 holds different bytes")
				return
			}
			time.Sleep(time.Second)
		}
		errs <- nil
	}()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Errorf("transfer failed while credentials rolled over: %v", err)
		}
	}
	// 75 s with 15 s credentials, refreshed 5 to 7.5 s early: about 8 to 11 AssumeRole calls.
	if n := w2.Emu.Calls("AssumeRole"); n < 5 || n > 20 {
		t.Errorf("%d AssumeRole calls in 75 s with 15 s credentials, want about 10", n)
	}
	t.Logf("AssumeRole calls: %d, IMDS credential fetches: %d", w2.Emu.Calls("AssumeRole"), w2.Emu.Calls("IMDSCredentials"))
}
