package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/s3mount/s3mount/fs/metrics"
)

// serveMetrics exposes the registry at http://ADDR/metrics, and with withPprof Go's profiles at
// /debug/pprof/. Only loopback addresses are accepted: the endpoint has no authentication, so
// every local user can read it, and profiles (goroutine stacks, traces) show what the daemon is
// doing: they are served only when asked for.
func serveMetrics(addr string, withPprof bool, m *metrics.Registry, log *slog.Logger) (net.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_address %q: want host:port, like 127.0.0.1:9290", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("metrics_address %q: only a loopback address is allowed (the endpoint has no authentication)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(promRegistry(m), promhttp.HandlerOpts{
		ErrorLog: slogPrinter{log}, ErrorHandling: promhttp.ContinueOnError,
	}))
	if withPprof {
		// Go's profiler, for performance work (same loopback-only endpoint).
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("metrics served", "url", "http://"+ln.Addr().String()+"/metrics", "pprof", withPprof)
	return ln.Addr(), nil
}

// promRegistry is a Prometheus registry of its own (not the global default, which would take any
// library's metrics) with m, Go's runtime metrics (go_*) and the process's (process_*).
func promRegistry(m *metrics.Registry) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collector{m})
	return reg
}

// collector exposes a metrics.Registry to Prometheus. It is unchecked (Describe sends nothing):
// series appear as the code first records them.
type collector struct{ m *metrics.Registry }

func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.m.Each(func(s metrics.Series) {
		var names, values []string
		for i := 0; i+1 < len(s.Labels); i += 2 {
			names, values = append(names, s.Labels[i]), append(values, s.Labels[i+1])
		}
		desc := prometheus.NewDesc(s.Name, s.Help, names, nil)
		var m prometheus.Metric
		var err error
		switch s.Kind {
		case metrics.Counter:
			m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, s.Value, values...)
		case metrics.Gauge:
			m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.Value, values...)
		case metrics.Histogram:
			buckets := make(map[float64]uint64, len(s.Counts))
			for i, n := range s.Counts {
				buckets[metrics.Buckets[i]] = n
			}
			m, err = prometheus.NewConstHistogram(desc, s.Count, s.Sum, buckets, values...)
		}
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	})
}

// slogPrinter logs promhttp's errors (a series it could not serve).
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", fmt.Sprint(v...)) }

// logMetricsOnSIGUSR1 writes the metrics summary to the log whenever SIGUSR1 arrives.
func logMetricsOnSIGUSR1(m *metrics.Registry, log *slog.Logger) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	go func() {
		for range sigs {
			log.Info("metrics", "summary", m.Summary())
		}
	}()
}

// retryMetrics records the S3 requests the SDK tries again, and those S3 throttled.
func retryMetrics(m *metrics.Registry) func(op string, throttled bool) {
	return func(op string, throttled bool) {
		m.Inc("s3mount_s3_retries_total", "S3 request attempts that failed and were tried again, by operation", "op", op)
		if throttled {
			m.Inc("s3mount_s3_throttles_total", "S3 request attempts that S3 throttled (SlowDown, 503) and were tried again, by operation", "op", op)
		}
	}
}

// credentialMetrics records credential refreshes.
func credentialMetrics(m *metrics.Registry) func(step string, expires time.Time, err error) {
	return func(step string, expires time.Time, err error) {
		if err != nil {
			m.Inc("s3mount_credential_refresh_errors_total", "failed credential refreshes by link", "step", step)
			return
		}
		m.Inc("s3mount_credential_refreshes_total", "credential refreshes by link", "step", step)
		if !expires.IsZero() {
			m.Set("s3mount_credential_expiry_timestamp_seconds", "when the current credentials of a link expire", float64(expires.Unix()), "step", step)
		}
	}
}
