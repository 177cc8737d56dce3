package main

import (
	"os"
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
		if strings.Contains(c.opts, "allow_root") && os.Geteuid() != 0 {
			continue // refused for other users' mounts (TestAllowRoot)
		}
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

// TestAllowRoot: allow_root changes nothing for a mount by root (who is let in anyway) and is
// refused for another user's mount, which fusermount3 would fail late.
func TestAllowRoot(t *testing.T) {
	c := &config{}
	c.fs.AllowRoot = true
	if err := c.resolvePermissions(0); err != nil || c.fs.AllowRoot || !c.fs.DefaultPermissions {
		t.Errorf("as root: %v, AllowRoot %v, DefaultPermissions %v; want nil, false, true", err, c.fs.AllowRoot, c.fs.DefaultPermissions)
	}
	c = &config{}
	c.fs.AllowRoot = true
	if err := c.resolvePermissions(1000); err == nil || !strings.Contains(err.Error(), "use allow_other") {
		t.Errorf("as uid 1000: %v, want refused", err)
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
