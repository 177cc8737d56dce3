package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestConfigFileIsAWholeMount: source= and mountpoint= in a config file stand for the two
// arguments; arguments on the command line take precedence; without either it is a usage error.
func TestConfigFileIsAWholeMount(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "m.conf")
	if err := os.WriteFile(conf, []byte("source=s3://from-conf/p\nmountpoint=/mnt/conf\nro\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args               []string
		bucket, mountpoint string
	}{
		{[]string{"--config", conf}, "from-conf", "/mnt/conf"},
		{[]string{"--config", conf, "/mnt/arg"}, "from-conf", "/mnt/arg"},
		{[]string{"--config", conf, "s3://from-arg/x", "/mnt/arg"}, "from-arg", "/mnt/arg"},
	}
	for _, c := range cases {
		cfg, err := parseConfig(c.args)
		if err != nil || cfg.bucket != c.bucket || cfg.mountpoint != c.mountpoint || !cfg.fs.ReadOnly {
			t.Errorf("%v: %v; want bucket %s at %s", c.args, err, c.bucket, c.mountpoint)
		}
	}
	if _, err := parseConfig([]string{"--ro"}); err == nil {
		t.Errorf("no source and no mountpoint: accepted")
	}
}
