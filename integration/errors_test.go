//go:build integration

package integration

import (
	"strings"
	"testing"

	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_MountFailsEarly: setups that cannot work fail before mounting, with a message that
// names the cause and the fix, a distinct exit code, and nothing mounted.
func TestInteg_MountFailsEarly(t *testing.T) {
	target := "s3://" + world.Bucket + "/team-a"
	cases := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"wrong external id", []string{"--role-arn", world.AccessRole, "--external-id", "wrong-id-000"}, 11,
			[]string{"External ID", "hop 1", world.AccessRole}},
		{"missing external id", []string{"--role-arn", world.AccessRole}, 11,
			[]string{"requires an External ID", "external_id="}},
		{"untrusted principal", []string{"--role-arn", world.UntrustedRole}, 11,
			[]string{"does not name principal", "arn:aws:iam::111111111111:role/s3mount-instance"}},
		{"missing bucket", append(accessChain(), "s3://demo-missing/x"), 12,
			[]string{"does not exist"}},
		{"bad role arn", []string{"--role-arn", "arn:aws:iam::12:role/x"}, 2,
			[]string{"not a role ARN"}},
		{"external id before role", []string{"--external-id", "abc", "--role-arn", world.AccessRole}, 2,
			[]string{"give role_arn first"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(w.MountArgs(), c.args...)
			if !strings.HasPrefix(args[len(args)-1], "s3://") {
				args = append(args, target)
			}
			code, stderr := runFailing(t, args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			for _, s := range c.contains {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not mention %q:\n%s", s, stderr)
				}
			}
			if strings.Contains(stderr, world.AccessExtID) || strings.Contains(stderr, "wrong-id-000") {
				t.Errorf("stderr shows an External ID:\n%s", stderr)
			}
		})
	}
}
