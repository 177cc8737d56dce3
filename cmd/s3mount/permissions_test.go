package main

import (
	"strings"
	"testing"
)

// TestSharedMountsCheckPermissions: letting other users in (allow_other, allow_root) turns the
// kernel's permission checks on; only no_default_permissions turns them off again.
func TestSharedMountsCheckPermissions(t *testing.T) {
	cases := []struct {
		opts        string
		want, fails bool
	}{
		{"ro", false, false},
		{"allow_other", true, false},
		{"allow_root", true, false},
		{"default_permissions", true, false},
		{"allow_other,no_default_permissions", false, false},
		{"no_default_permissions,allow_other", false, false},
		{"allow_other,default_permissions", true, false},
		{"allow_other,listing_attrs", false, true},
		{"allow_other,listing_attrs,no_default_permissions", false, false},
		{"listing_attrs", false, false},
	}
	for _, c := range cases {
		cfg, err := parseConfig([]string{"-o", c.opts, "s3://bucket/p", "/mnt"})
		if c.fails {
			if err == nil || !strings.Contains(err.Error(), "listing_attrs") {
				t.Errorf("%s: %v, want refused", c.opts, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.opts, err)
			continue
		}
		if cfg.fs.DefaultPermissions != c.want {
			t.Errorf("%s: default_permissions %v, want %v", c.opts, cfg.fs.DefaultPermissions, c.want)
		}
	}
}

// TestSuidOption: setuid bits are hidden unless suid is given; nosuid, the default, undoes it.
func TestSuidOption(t *testing.T) {
	for opts, want := range map[string]bool{"ro": false, "suid": true, "nosuid": false, "suid,nosuid": false, "nosuid,suid": true} {
		cfg, err := parseConfig([]string{"-o", opts, "s3://bucket/p", "/mnt"})
		if err != nil || cfg.fs.Suid != want {
			t.Errorf("%s: Suid %v (%v), want %v", opts, cfg != nil && cfg.fs.Suid, err, want)
		}
	}
}
