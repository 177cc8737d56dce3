package shaper

import (
	"bytes"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// backend answers GET with size bytes and reads PUT bodies to the end.
func backend(t testing.TB, size int) *httptest.Server {
	body := bytes.Repeat([]byte{'x'}, size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func start(t testing.TB, target string, p Profile) *Proxy {
	t.Helper()
	x, err := Start(target, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// client opens its own connections (none shared with other clients).
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
}

func do(t testing.TB, c *http.Client, method, u string, body io.Reader) (status int, n int64) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err = io.Copy(io.Discard, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, n
}

func TestLatencyDistribution(t *testing.T) {
	l := S3Like(0).S3.Latency
	r := rand.New(rand.NewSource(7))
	var s []time.Duration
	for i := 0; i < 20000; i++ {
		s = append(s, l.Sample(r))
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	med, p99 := s[len(s)/2], s[len(s)*99/100]
	if med < 19*time.Millisecond || med > 21*time.Millisecond {
		t.Errorf("median %v, want 20 ms ± 1", med)
	}
	// A tail of a few times the median: 2.85× for sigma 0.45.
	if p99 < 2*med || p99 > 4*med {
		t.Errorf("p99 %v, want 2–4 × the median %v", p99, med)
	}
	if s[len(s)-1] > l.Max {
		t.Errorf("largest %v above the cut %v", s[len(s)-1], l.Max)
	}
	if q := l.Quantile(0.99); q < 55*time.Millisecond || q > 60*time.Millisecond {
		t.Errorf("Quantile(0.99) = %v, want 57 ms", q)
	}
}

// Every answer's first byte waits the latency after the request's last byte: lower bounds only.
func TestLatencyHoldsTheFirstByte(t *testing.T) {
	const lat = 60 * time.Millisecond
	x := start(t, backend(t, 1000).URL, Profile{Latency: LogNormal{Median: lat}})
	c := client()
	for i := 0; i < 5; i++ {
		start := time.Now()
		if st, n := do(t, c, http.MethodGet, x.URL()+"/b/k", nil); st != 200 || n != 1000 {
			t.Fatalf("GET: %d, %d bytes", st, n)
		}
		if d := time.Since(start); d < lat {
			t.Errorf("GET %d answered after %v, before the latency %v", i, d, lat)
		}
	}
	// A PUT whose body takes a while: the latency counts from its last byte.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("a"))
		time.Sleep(100 * time.Millisecond)
		pw.Write([]byte("b"))
		pw.Close()
	}()
	start := time.Now()
	if st, _ := do(t, c, http.MethodPut, x.URL()+"/b/k", pr); st != 200 {
		t.Fatalf("PUT: %d", st)
	}
	if d := time.Since(start); d < 100*time.Millisecond+lat {
		t.Errorf("PUT answered %v after it started, before its body's end (100 ms) and the latency", d)
	}
	if req, _ := x.Stats(); req != 6 {
		t.Errorf("Stats: %d requests, want 6", req)
	}
}

// The pacer on a fake clock: N bytes take N/rate, and idle time earns no credit.
func TestPacerRate(t *testing.T) {
	var now time.Time
	p := &pacer{rate: 1 << 20, now: func() time.Time { return now }, sleep: func(d time.Duration) { now = now.Add(d) }}
	for i := 0; i < 64; i++ { // 4 MiB
		p.account(64 << 10)
	}
	if got := now.Sub(time.Time{}); got < 4*time.Second-quantum || got > 4*time.Second+quantum {
		t.Errorf("4 MiB at 1 MiB/s took %v on the fake clock, want 4 s", got)
	}
	now = now.Add(time.Hour) // idle
	before := now
	for i := 0; i < 16; i++ {
		p.account(64 << 10)
	}
	if got := now.Sub(before); got < time.Second-quantum {
		t.Errorf("1 MiB after an idle hour took %v, want 1 s: idle time must earn no credit", got)
	}
}

// Through the proxy: one connection takes at least size/rate; four connections at once, each
// capped alone, finish far sooner than four times that.
func TestConnectionCap(t *testing.T) {
	const size, rate = 1 << 20, 1 << 20
	x := start(t, backend(t, size).URL, Profile{ConnBytesPerSec: rate})
	start := time.Now()
	if _, n := do(t, client(), http.MethodGet, x.URL()+"/b/k", nil); n != size {
		t.Fatalf("got %d bytes", n)
	}
	// Less the two quanta a connection may run ahead.
	if d := time.Since(start); d < time.Second-2*quantum-50*time.Millisecond {
		t.Errorf("1 MiB at 1 MiB/s took %v", d)
	}
	start = time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do(t, client(), http.MethodGet, x.URL()+"/b/k", nil)
		}()
	}
	wg.Wait()
	// One cap shared by all would take 4 s; a generous bound that a loaded machine still meets.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("four connections of 1 MiB at 1 MiB/s each took %v: the cap is not per connection", d)
	}
	// Uploads are paced too.
	start = time.Now()
	do(t, client(), http.MethodPut, x.URL()+"/b/k", bytes.NewReader(make([]byte, size)))
	if d := time.Since(start); d < time.Second-2*quantum-50*time.Millisecond {
		t.Errorf("a 1 MiB upload at 1 MiB/s took %v", d)
	}
}

// Past a prefix's rate the shaper answers 503 SlowDown; other prefixes and the other kind of
// request have their own budgets. Counts, not speeds.
func TestThrottleAnswersSlowDown(t *testing.T) {
	const rate, burst = 20, 0.5 // 10 requests ahead
	x := start(t, backend(t, 10).URL, Profile{ReadRate: rate, WriteRate: rate, Burst: burst})
	c := client()
	var ok, slow atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				switch st, _ := do(t, c, http.MethodHead, x.URL()+"/b/dir/k", nil); st {
				case 200:
					ok.Add(1)
				case 503:
					slow.Add(1)
				default:
					t.Errorf("HEAD: %d", st)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start).Seconds()
	if max := rate*burst + rate*took + 1; float64(ok.Load()) > max {
		t.Errorf("%d of 80 HEADs answered in %.2f s, more than the rate allows (%.0f)", ok.Load(), took, max)
	}
	if slow.Load() == 0 && took < 3 {
		t.Errorf("no 503 among 80 HEADs in %.2f s at %d a second", took, rate)
	}
	if _, th := x.Stats(); th != slow.Load() {
		t.Errorf("Stats: %d throttled, clients saw %d", th, slow.Load())
	}
	req, _ := http.NewRequest(http.MethodGet, x.URL()+"/b/dir/k", nil)
	resp, err := c.Do(req)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 503 && !strings.Contains(string(body), "<Code>SlowDown</Code>") {
			t.Errorf("503 without SlowDown: %s", body)
		}
	}
	if st, _ := do(t, c, http.MethodGet, x.URL()+"/b/other/k", nil); st != 200 {
		t.Errorf("GET on another prefix: %d", st)
	}
	if st, _ := do(t, c, http.MethodPut, x.URL()+"/b/dir/k", strings.NewReader("x")); st != 200 {
		t.Errorf("PUT on the throttled prefix (writes have their own rate): %d", st)
	}
}

func TestPrefix(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"/b/k", "b/"},
		{"/b/a/b/c", "b/a/b/"},
		{"/b/a/b/?uploads", "b/a/b/"},
		{"/b?list-type=2&prefix=a/b/&delimiter=/", "b/a/b/"},
		{"/b/?list-type=2&prefix=a/b/c", "b/a/b/"},
		{"/b?delete", "b/"},
	} {
		u, _ := url.Parse(c.url)
		if got := Prefix(&http.Request{URL: u}); got != c.want {
			t.Errorf("Prefix(%s) = %q, want %q", c.url, got, c.want)
		}
	}
}

// BenchmarkCPUPerGiB reports the CPU the shaper costs per GiB moved, against the same GETs sent to
// the server directly: go test -run '^$' -bench CPUPerGiB -benchtime 1x ./integration/shaper/
func BenchmarkCPUPerGiB(b *testing.B) {
	const size, conns, total = 64 << 20, 16, 2 << 30
	srv := backend(b, size)
	direct := srv.URL
	plain := start(b, direct, Profile{}).URL()
	capped := start(b, direct, S3Like(0).S3).URL()
	cpu := func() float64 {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	run := func(u string) (float64, float64) {
		c := client()
		c0, t0 := cpu(), time.Now()
		var wg sync.WaitGroup
		for i := 0; i < conns; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < total/size/conns; j++ {
					do(b, c, http.MethodGet, u+"/b/k", nil)
				}
			}()
		}
		wg.Wait()
		return (cpu() - c0) / (total >> 30), float64(total>>20) / time.Since(t0).Seconds()
	}
	for i := 0; i < b.N; i++ {
		d, dr := run(direct)
		p, pr := run(plain)
		c, cr := run(capped)
		b.Logf("CPU s/GiB (client and server included): direct %.2f (%.0f MiB/s), through the shaper %.2f (%.0f MiB/s), "+
			"capped at 25 MiB/s per connection %.2f (%.0f MiB/s, %d connections)", d, dr, p, pr, c, cr, conns)
		b.ReportMetric(p-d, "shaper-cpu-s/GiB")
		b.ReportMetric(c-d, "capped-cpu-s/GiB")
	}
}
