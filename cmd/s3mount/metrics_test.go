package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/s3mount/s3mount/fs/metrics"
)

// TestMetricsEndpoint: /metrics serves the registry's counters, gauges and histograms in the
// Prometheus format, with Go's runtime and the process's metrics.
func TestMetricsEndpoint(t *testing.T) {
	m := metrics.New()
	m.Inc("s3mount_s3_requests_total", "S3 requests by operation", "op", "GetObject")
	m.Observe("s3mount_s3_request_duration_seconds", "latency", 0.003, "op", "GetObject")
	m.Observe("s3mount_s3_request_duration_seconds", "latency", 2, "op", "GetObject")
	credentialMetrics(m)("hop 1 (role)", time.Unix(1700000000, 0), nil)
	retryMetrics(m)("PutObject", true)
	retryMetrics(m)("PutObject", false)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr, err := serveMetrics("127.0.0.1:0", false, m, log)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"# TYPE s3mount_s3_requests_total counter\n",
		"s3mount_s3_requests_total{op=\"GetObject\"} 1\n",
		"# TYPE s3mount_s3_request_duration_seconds histogram\n",
		"s3mount_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"0.0025\"} 0\n",
		"s3mount_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"0.005\"} 1\n",
		"s3mount_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"2.5\"} 2\n",
		"s3mount_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"+Inf\"} 2\n",
		"s3mount_s3_request_duration_seconds_sum{op=\"GetObject\"} 2.003\n",
		"s3mount_s3_request_duration_seconds_count{op=\"GetObject\"} 2\n",
		"# TYPE s3mount_credential_expiry_timestamp_seconds gauge\n",
		"s3mount_credential_expiry_timestamp_seconds{step=\"hop 1 (role)\"} 1.7e+09\n",
		"s3mount_s3_retries_total{op=\"PutObject\"} 2\n",
		"s3mount_s3_throttles_total{op=\"PutObject\"} 1\n",
		"go_goroutines ", "go_memstats_heap_alloc_bytes ", "process_cpu_seconds_total ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
