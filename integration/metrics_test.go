//go:build integration

package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/s3mount/s3mount/integration/world"
)

func TestInteg_MetricsEndpoint(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--metrics-address", addr)...)
	if _, err := os.ReadFile(m.path("f")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
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
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	code, stderr := runFailing(t, append(append(w.MountArgs(), accessChain()...), "--metrics-address", "0.0.0.0:9290", "-f", "s3://"+world.Bucket+"/"+prefix)...)
	if code != 2 || !strings.Contains(stderr, "loopback") {
		t.Errorf("a non-loopback metrics address: exit %d, %s", code, stderr)
	}
}
