package creds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/s3mount/s3mount/integration/awsemu"
	"github.com/s3mount/s3mount/integration/world"
)

// startWorld starts MinIO and the AWS emulator. Without MinIO the test is skipped, unless
// S3MOUNT_REQUIRE_WORLD is set (as `make test` does), which makes a missing world a failure.
func startWorld(t *testing.T, reportedExpiry time.Duration) *world.World {
	t.Helper()
	if _, err := awsemu.FindMinIOBinary(); err != nil {
		if os.Getenv("S3MOUNT_REQUIRE_WORLD") != "" {
			t.Fatalf("the test world is required: %v", err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := world.Start(ctx, world.Options{Dir: t.TempDir(), ReportedExpiry: reportedExpiry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// chain returns a chain from the emulated instance profile through hops.
func chain(w *world.World, hops ...Hop) Chain {
	return Chain{
		Source: SourceIMDS, Region: "us-east-1",
		IMDSEndpoint: w.Emu.IMDSEndpoint(), STSEndpoint: w.Emu.STSEndpoint(), IAMEndpoint: w.Emu.STSEndpoint(),
		Hops: hops, RefreshWindow: time.Second,
	}
}

func clearAWSEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

func verify(t *testing.T, c Chain) (*Built, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := c.Build(ctx)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return b, b.Verify(ctx)
}

func TestChainAgainstEmulator(t *testing.T) {
	clearAWSEnv(t)
	w := startWorld(t, 0)
	access := Hop{RoleARN: world.AccessRole, ExternalID: world.AccessExtID}
	reader := Hop{RoleARN: world.ReaderRole, ExternalID: world.ReaderExtID}

	t.Run("two hops with the right External IDs", func(t *testing.T) {
		b, err := verify(t, chain(w, access, reader))
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		results := b.Check(context.Background(), true)
		if got := results[len(results)-1].Identity; !strings.Contains(got, ":assumed-role/team-a-reader/s3mount@") {
			t.Errorf("final identity %q: want a team-a-reader session named after host and user", got)
		}
	})

	cases := []struct {
		name      string
		hops      []Hop
		cause     Cause
		mentions  []string
		hopNumber int
	}{
		{"wrong External ID", []Hop{{RoleARN: world.AccessRole, ExternalID: "wrong-id-1"}}, CauseDenied,
			[]string{"External ID given does not match", "arn:aws:sts::111111111111:assumed-role/s3mount-instance/"}, 1},
		{"missing External ID", []Hop{{RoleARN: world.AccessRole}}, CauseDenied,
			[]string{"requires an External ID", "external_id="}, 1},
		{"wrong External ID on the second hop", []Hop{access, {RoleARN: world.ReaderRole, ExternalID: "nope-nope"}}, CauseDenied,
			[]string{"External ID given does not match", "assumed-role/team-a-access/"}, 2},
		{"principal not named by the trust policy", []Hop{{RoleARN: world.UntrustedRole}}, CauseNotTrusted,
			[]string{"does not name principal", "arn:aws:iam::111111111111:role/s3mount-instance"}, 1},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := verify(t, chain(w, c.hops...))
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("verify: %v, want a *StepError", err)
			}
			if se.Cause != c.cause {
				t.Errorf("cause %q, want %q (%v)", se.Cause, c.cause, err)
			}
			if !strings.HasPrefix(se.Step, fmt.Sprintf("hop %d ", c.hopNumber)) {
				t.Errorf("step %q, want hop %d", se.Step, c.hopNumber)
			}
			for _, m := range c.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error does not mention %q: %v", m, err)
				}
			}
			if strings.Contains(err.Error(), world.AccessExtID) || strings.Contains(err.Error(), "wrong-id-1") {
				t.Errorf("error shows an External ID: %v", err)
			}
			if seen[se.Message] {
				t.Errorf("message %q is not distinct", se.Message)
			}
			seen[se.Message] = true
		})
	}
}

func TestCredentialsAreRefreshedBeforeExpiry(t *testing.T) {
	clearAWSEnv(t)
	w := startWorld(t, 6*time.Second)
	b, err := verify(t, chain(w, Hop{RoleARN: world.AccessRole, ExternalID: world.AccessExtID}))
	if err != nil {
		t.Fatal(err)
	}
	p := b.Provider()
	ctx := context.Background()
	first, err := p.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := p.Retrieve(ctx)
		if err != nil {
			t.Fatalf("retrieve while credentials roll over: %v", err)
		}
		if time.Until(c.Expires) <= 0 {
			t.Fatalf("handed out expired credentials (expired %s)", c.Expires)
		}
		time.Sleep(200 * time.Millisecond)
	}
	last, _ := p.Retrieve(ctx)
	if last.AccessKeyID == first.AccessKeyID {
		t.Error("the credentials were never refreshed")
	}
	if n := w.Emu.Calls("AssumeRole"); n < 2 || n > 8 {
		t.Errorf("%d AssumeRole calls in 15 s with 6 s credentials, want a handful", n)
	}
}

// TestIMDSClientAgainstAWSMock runs the instance-profile source against AWS's own IMDS mock in
// IMDSv2-only mode, to show compatibility beyond our emulator.
func TestIMDSClientAgainstAWSMock(t *testing.T) {
	clearAWSEnv(t)
	home, _ := os.UserHomeDir()
	bin := filepath.Join(home, ".cache", "s3mount", "tools", "bin", "ec2-metadata-mock")
	if p, err := exec.LookPath("ec2-metadata-mock"); err == nil {
		bin = p
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("S3MOUNT_REQUIRE_WORLD") != "" {
			t.Fatalf("ec2-metadata-mock is required: %v", err)
		}
		t.Skip("ec2-metadata-mock not installed (scripts/install-deps.sh)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--imdsv2", "--hostname", "127.0.0.1", "--port", fmt.Sprint(port))
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(endpoint + "/latest/meta-data/"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// IMDSv1 is refused by the mock in this mode: our client must be using tokens.
	if resp, err := http.Get(endpoint + "/latest/meta-data/iam/security-credentials/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the mock answered IMDSv1 with %d; want it in IMDSv2-only mode", resp.StatusCode)
		}
	}
	b, err := verify(t, Chain{Source: SourceIMDS, IMDSEndpoint: endpoint})
	if err != nil {
		t.Fatalf("instance profile from the AWS mock: %v", err)
	}
	c, err := b.Provider().Retrieve(context.Background())
	if err != nil || c.AccessKeyID == "" || c.SessionToken == "" {
		t.Errorf("credentials %+v, %v", c.AccessKeyID, err)
	}
	if b.Region() == "" {
		t.Error("no region from the instance identity")
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 1225)
	for _, c := range []struct {
		hop  Hop
		want string
	}{
		{Hop{RoleARN: "arn:aws:iam::1234:role/x"}, "not a role ARN"},
		{Hop{RoleARN: "arn:aws:iam::123456789012:user/x"}, "not a role ARN"},
		{Hop{RoleARN: "arn:aws:iam::123456789012:role/" + strings.Repeat("r", 513)}, "not a role ARN"},
		{Hop{RoleARN: "arn:aws:iam::123456789012:role/x", ExternalID: "é-non-ascii"}, "External ID"},
		{Hop{RoleARN: "arn:aws:iam::123456789012:role/x", ExternalID: Secret(long)}, "External ID"},
		{Hop{RoleARN: "arn:aws:iam::123456789012:role/x", SessionName: "has space"}, "session name"},
		{Hop{RoleARN: "arn:aws:iam::123456789012:role/x", Duration: time.Minute}, "duration"},
	} {
		err := Chain{Source: SourceIMDS, Hops: []Hop{c.hop}}.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.hop, err, c.want)
		}
		if err != nil && c.hop.ExternalID != "" && strings.Contains(err.Error(), string(c.hop.ExternalID)) {
			t.Errorf("error shows the External ID: %v", err)
		}
	}
	if err := (Chain{Source: SourceIMDS, Hops: []Hop{{RoleARN: "arn:aws:iam::123456789012:role/" + strings.Repeat("r", 512)}}}).Validate(); err != nil {
		t.Errorf("a role path and name of 512 characters: %v", err)
	}
	if err := (Chain{Source: SourceIMDS, Hops: []Hop{{RoleARN: "arn:aws:iam::123456789012:role/path/x", ExternalID: "a,b=c@d"}}}).Validate(); err != nil {
		t.Errorf("valid chain: %v", err)
	}
	if err := (Chain{Source: SourceNone, Hops: []Hop{{RoleARN: "arn:aws:iam::123456789012:role/x"}}}).Validate(); err == nil || !strings.Contains(err.Error(), "cannot assume a role") {
		t.Errorf("unsigned requests with a hop: %v, want an error", err)
	}
}

// TestUnsignedChainHasNoLink: credential source none builds without any request (no IMDS, even
// for the region) and gives the SDK's anonymous credentials, which it does not sign with.
func TestUnsignedChainHasNoLink(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1") // nothing answers there
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	b, err := Chain{Source: SourceNone}.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Provider().(aws.AnonymousCredentials); !ok || b.Region() != "us-east-1" {
		t.Errorf("provider %T, region %q; want aws.AnonymousCredentials and us-east-1", b.Provider(), b.Region())
	}
	if r := b.Check(context.Background(), true); len(r) != 1 || r[0].Err != nil || !r[0].IsSource {
		t.Errorf("Check = %+v, want one passing source", r)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("top-secret-id")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %#v", s, s, s, s), fmt.Sprintf("%+v", Hop{ExternalID: s})} {
		if strings.Contains(out, "top-secret-id") {
			t.Errorf("printed: %s", out)
		}
	}
}

// TestIMDSTokenTimeoutIsDiagnosedAsHopLimit: IMDS answers, but the IMDSv2 token never arrives, as
// in a container whose instance allows one network hop for the token's answer.
func TestIMDSTokenTimeoutIsDiagnosedAsHopLimit(t *testing.T) {
	clearAWSEnv(t)
	w := startWorld(t, 0)
	w.Emu.SetTokenHang(true)
	defer w.Emu.SetTokenHang(false)
	_, err := verify(t, chain(w))
	if err == nil || !strings.Contains(err.Error(), "hop limit") {
		t.Errorf("verify with a hanging token request: %v; want the hop-limit diagnosis", err)
	}
}
