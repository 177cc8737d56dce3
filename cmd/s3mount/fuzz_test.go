package main

// Run longer with: go test -fuzz=FuzzOptionList -fuzztime=30s ./cmd/s3mount/
// (and FuzzCommandLine). `make fuzz` runs each briefly.

import (
	"strings"
	"testing"
)

func FuzzOptionList(f *testing.F) {
	for _, s := range []string{"ro", "a=b,c", `external_id="a,b",ro`, `x="`, ",,", "=", `a="b"c`, "role_arn=arn:aws:iam::123456789012:role/x,external_id=é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := splitOptionList(s)
		if err != nil {
			return
		}
		for _, st := range list {
			if st.name == "" && st.value != "" {
				t.Errorf("%q: a value without a name: %+v", s, st)
			}
		}
		// A quoted value round-trips with its commas.
		if !strings.ContainsAny(s, `"`) {
			quoted := `external_id="` + s + `"`
			got, err := splitOptionList(quoted)
			if err != nil || len(got) != 1 || got[0].value != s {
				t.Errorf("quoted %q came back as %+v (%v)", s, got, err)
			}
		}
	})
}

func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{"--ro s3://b-1/x /mnt", "-o ro,region=x s3://bucket /m", "--role-arn --ro", "-f", "--external-id", "bucket:pre/fix /m", "s3:// /"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		c, err := parseConfig(args)
		if err != nil {
			return
		}
		// Whatever parses names a valid bucket, a prefix that is "" or ends in "/" without
		// empty, "." or ".." segments, and a valid chain.
		if !validBucket(c.bucket) {
			t.Errorf("%q: accepted bucket %q", s, c.bucket)
		}
		if c.prefix != "" {
			if !strings.HasSuffix(c.prefix, "/") {
				t.Errorf("%q: prefix %q does not end in /", s, c.prefix)
			}
			for _, seg := range strings.Split(strings.TrimSuffix(c.prefix, "/"), "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Errorf("%q: prefix %q has segment %q", s, c.prefix, seg)
				}
			}
		}
		if err := c.chain.Validate(); err != nil {
			t.Errorf("%q: parsed but the chain is invalid: %v", s, err)
		}
	})
}
