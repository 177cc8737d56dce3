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
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.WriteText(w)
	})
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
