//go:build integration

package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

func TestInteg_MetricsEndpoint(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	m, addr := mountWithMetrics(t, "s3://"+world.Bucket+"/"+prefix)
	if _, err := os.ReadFile(m.path("f")); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, addr)
	for _, want := range []string{
		// The read got the block its lookup brought (still arriving, or kept): no GET of its own.
		"s3mount_s3_requests_total{op=\"GetObject\"} 1\n", "s3mount_s3_bytes_read_total 5\n",
		// The root's listing, taken beside the bucket probe (which is not counted) before the
		// mount appeared, answered the lookup: one LIST in all.
		"s3mount_s3_requests_total{op=\"ListObjectsV2\"} 1\n",
		`s3mount_fuse_ops_total{op="read"}`, "s3mount_cache_hits_total 1\n",
		`s3mount_credential_refreshes_total{step="hop 1 (` + world.AccessRole + `)"} 1`,
		`s3mount_credential_expiry_timestamp_seconds`, "# TYPE s3mount_s3_requests_total counter",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// A write: PutObject at close, and the FUSE operations of creating a file.
	if err := os.WriteFile(m.path("g"), []byte("world"), 0o644); err != nil {
		t.Fatal(err)
	}
	body = scrape(t, addr)
	for _, op := range []string{"GetObject", "ListObjectsV2", "PutObject"} {
		if n := histogramCount(body, "s3mount_s3_request_duration_seconds", op); n < 1 {
			t.Errorf("S3 latency histogram of %s: count %d:\n%s", op, n, body)
		}
	}
	for _, op := range []string{"lookup", "open", "read", "create", "write", "flush", "release"} {
		if n := histogramCount(body, "s3mount_fuse_op_duration_seconds", op); n < 1 {
			t.Errorf("FUSE latency histogram of %s: count %d:\n%s", op, n, body)
		}
	}
	for _, want := range []string{
		"# TYPE s3mount_s3_request_duration_seconds histogram", `s3mount_s3_request_duration_seconds_bucket{op="GetObject",le="+Inf"} 1`,
		"# TYPE s3mount_fuse_op_duration_seconds histogram", "s3mount_s3_bytes_written_total 5\n",
		"\ngo_goroutines ", "\ngo_memstats_heap_alloc_bytes ", "\nprocess_resident_memory_bytes ", "\nprocess_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	for _, secret := range []string{world.AccessExtID, w.MinIO.RootPassword} {
		if strings.Contains(body, secret) {
			t.Errorf("a secret in the metrics:\n%s", body)
		}
	}
	// The log summary, on SIGUSR1 and at unmount.
	if err := m.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	summary := `s3mount_fuse_op_duration_seconds{op=\"read\"}=count:`
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(m.stderr.String(), summary); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no metrics summary in the log after SIGUSR1:\n%s", m.stderr)
		}
	}
	m.unmount(t)
	if n := strings.Count(m.stderr.String(), summary); n != 2 {
		t.Errorf("%d metrics summaries with FUSE latencies in the log, want 2 (SIGUSR1, unmount):\n%s", n, m.stderr)
	}
	code, stderr := runFailing(t, append(append(w.MountArgs(), accessChain()...), "--metrics-address", "0.0.0.0:9290", "-f", "s3://"+world.Bucket+"/"+prefix)...)
	if code != 2 || !strings.Contains(stderr, "loopback") {
		t.Errorf("a non-loopback metrics address: exit %d, %s", code, stderr)
	}
}

// scrape returns the text of http://addr/metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	return string(body)
}

// histogramCount returns the count of the histogram name{op="op"}, -1 if it is missing.
func histogramCount(body, name, op string) int {
	prefix := name + `_count{op="` + op + `"} `
	for _, line := range strings.Split(body, "\n") {
		if n, ok := strings.CutPrefix(line, prefix); ok {
			v, err := strconv.Atoi(n)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// mountWithMetrics mounts target with the metrics served on a free loopback port, and returns
// the mount and that address.
func mountWithMetrics(t *testing.T, target string, args ...string) (*mounted, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return mount(t, target, append(append(accessChain(), "--metrics-address", addr), args...)...), addr
}
