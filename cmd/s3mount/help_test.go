package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpEverywhere: every subcommand prints its own usage for --help and -h, with exit 0,
// wherever the flag stands; the mount command prints the full usage.
func TestHelpEverywhere(t *testing.T) {
	cases := []struct {
		args []string
		want string // the start of the usage printed
	}{
		{[]string{"--help"}, "Usage: s3mount [options]"},
		{[]string{"-h"}, "Usage: s3mount [options]"},
		{[]string{"help"}, "Usage: s3mount [options]"},
		{[]string{"s3://bucket/x", "/mnt", "--help"}, "Usage: s3mount [options]"},
		{[]string{"-o", "ro", "-h", "s3://bucket/x"}, "Usage: s3mount [options]"},
		{[]string{"check", "--help"}, "Usage: s3mount check"},
		{[]string{"check", "-h"}, "Usage: s3mount check"},
		{[]string{"check", "--json", "--role-arn", "arn:aws:iam::123456789012:role/r", "s3://bucket", "--help"}, "Usage: s3mount check"},
		{[]string{"policy", "--help"}, "Usage: s3mount policy"},
		{[]string{"policy", "-h"}, "Usage: s3mount policy"},
		{[]string{"policy", "--read-only", "s3://bucket", "-h"}, "Usage: s3mount policy"},
		{[]string{"status", "--help"}, "Usage: s3mount status"},
		{[]string{"status", "--json", "/mnt", "-h"}, "Usage: s3mount status"},
		{[]string{"completion", "-h"}, "Usage: s3mount completion"},
		{[]string{"version", "--help"}, "Usage: s3mount version"},
		{[]string{"man", "-h"}, "Usage: s3mount man"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != exitOK || !strings.HasPrefix(stdout.String(), c.want) || stderr.Len() != 0 {
			t.Errorf("s3mount %s: exit %d, stdout starts %.40q, stderr %q; want exit 0 and %q",
				strings.Join(c.args, " "), code, stdout.String(), stderr.String(), c.want)
		}
	}
	// After "--" a word is an argument, not a request for help.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"policy", "--", "-h"}, &stdout, &stderr); code == exitOK {
		t.Errorf("s3mount policy -- -h: exit 0, want a usage error")
	}
}
