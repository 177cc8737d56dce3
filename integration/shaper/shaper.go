// Package shaper stands between S3 clients and the local test world (MinIO, the IMDS and STS
// emulator) and makes the loopback look like the network an EC2 instance sees: a sampled latency
// before each answer's first byte, a bandwidth cap per connection, and 503 SlowDown past a request
// rate per prefix (profile.go; docs/notes/performance.md says where each number comes from).
//
// It is an HTTP reverse proxy on 127.0.0.1: latency and throttling need to see requests, which
// keep-alive connections carry one after another. The bandwidth cap paces the bytes of each
// client connection (pace.go), so a client gets more throughput only by opening more connections,
// as from S3. The original Host header is forwarded, so SigV4 signatures stay valid.
//
// Toxiproxy's toxics act on TCP streams (latency per chunk, bandwidth per link), so a request's
// latency on a keep-alive connection and 503 SlowDown per prefix would need an HTTP layer on top
// of it anyway; this one, on the standard library, does all three.
//
// Locks: Proxy.mu guards the random source; the throttle has its own lock (throttle.go); each
// pacer its own. None is held while another is taken.
package shaper

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a running shaper in front of one server.
type Proxy struct {
	p   Profile
	ln  net.Listener
	srv *http.Server
	rp  *httputil.ReverseProxy
	thr *throttle

	mu  sync.Mutex // guards rnd
	rnd *rand.Rand

	requests, throttled atomic.Int64
}

// Start starts a shaper on 127.0.0.1 in front of target (an http:// URL), with random latencies
// drawn from seed.
func Start(target string, p Profile, seed int64) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("shaper: target %q: want http://HOST:PORT", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	x := &Proxy{p: p, rnd: rand.New(rand.NewSource(seed)), thr: newThrottle(p)}
	if p.ConnBytesPerSec > 0 {
		ln = &pacedListener{Listener: ln, rate: p.ConnBytesPerSec}
	}
	x.ln = ln
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // pass bodies as the server sent them
	}
	x.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
			pr.Out.Host = pr.In.Host // what the client signed
		},
		Transport:      transport,
		BufferPool:     bufferPool{},
		ModifyResponse: x.holdFirstByte,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	x.srv = &http.Server{Handler: http.HandlerFunc(x.serve), ReadHeaderTimeout: 30 * time.Second}
	go x.srv.Serve(x.ln)
	return x, nil
}

// URL is the shaper's address, to give clients as their endpoint.
func (x *Proxy) URL() string { return "http://" + x.ln.Addr().String() }

// Close stops the shaper and closes its connections.
func (x *Proxy) Close() error { return x.srv.Close() }

// Stats are the requests seen so far, and of them those answered 503 SlowDown.
func (x *Proxy) Stats() (requests, throttled int64) { return x.requests.Load(), x.throttled.Load() }

func (x *Proxy) sample() time.Duration {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.p.Latency.Sample(x.rnd)
}

type holdKey struct{}

// hold is one request's latency and when its last byte arrived.
type hold struct {
	latency time.Duration
	arrived time.Time
	body    *trackedBody // nil when the request has no body
}

// sent is when the request's last byte arrived (or now, if the server answered before reading all).
func (h *hold) sent() time.Time {
	if h.body == nil {
		return h.arrived
	}
	if t := h.body.done.Load(); t != nil {
		return *t
	}
	return time.Now()
}

func (x *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	x.requests.Add(1)
	h := &hold{latency: x.sample(), arrived: time.Now()}
	if !x.thr.allow(r, h.arrived) {
		x.throttled.Add(1)
		if sleepCtx(r.Context(), h.latency) != nil {
			return
		}
		slowDown(w)
		return
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		h.body = &trackedBody{ReadCloser: r.Body}
		r.Body = h.body
	}
	x.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), holdKey{}, h)))
}

// holdFirstByte keeps an answer's headers (and so its first byte) until the request's latency has
// passed since its last byte arrived.
func (x *Proxy) holdFirstByte(resp *http.Response) error {
	h, _ := resp.Request.Context().Value(holdKey{}).(*hold)
	if h == nil {
		return nil
	}
	return sleepCtx(resp.Request.Context(), time.Until(h.sent().Add(h.latency)))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slowDown answers as S3 does past a prefix's request rate.
func slowDown(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
}

// trackedBody records when a request body was read to its end.
type trackedBody struct {
	io.ReadCloser
	done atomic.Pointer[time.Time]
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		now := time.Now()
		t.done.CompareAndSwap(nil, &now)
	}
	return n, err
}

// bufferPool gives the reverse proxy 256 KiB copy buffers: fewer, larger writes per GiB.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
