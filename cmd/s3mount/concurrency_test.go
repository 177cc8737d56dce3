package main

import "testing"

// TestConnectionPoolCoversTheParallelism: the HTTP client keeps an idle connection for each GET
// and each part upload that may be in flight (s3backend sizes its pool from Concurrency), by
// default and with -o concurrency.
func TestConnectionPoolCoversTheParallelism(t *testing.T) {
	for _, c := range []struct {
		args                      []string
		reads, uploads, maxUpload int
	}{
		{[]string{"s3://bucket/p", "/mnt"}, 32, 8, 32},
		{[]string{"-o", "concurrency=16", "s3://bucket/p", "/mnt"}, 16, 16, 64},
	} {
		cfg, err := parseConfig(c.args)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.fs.ReadConcurrency != c.reads || cfg.fs.UploadConcurrency != c.uploads || cfg.fs.MaxUploadConcurrency != c.maxUpload {
			t.Errorf("%v: %d GETs, uploads from %d to %d; want %d, %d to %d", c.args, cfg.fs.ReadConcurrency,
				cfg.fs.UploadConcurrency, cfg.fs.MaxUploadConcurrency, c.reads, c.uploads, c.maxUpload)
		}
		if cfg.s3.Concurrency < c.reads || cfg.s3.Concurrency < c.maxUpload {
			t.Errorf("%v: connection pool sized for %d requests, want at least %d and %d", c.args, cfg.s3.Concurrency, c.reads, c.maxUpload)
		}
	}
}
