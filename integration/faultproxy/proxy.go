// Package faultproxy is a reverse proxy that stands between s3mount and MinIO in fault tests and
// injects what S3 and networks do to clients: error answers (500, 503 SlowDown), connection
// resets, latency, and response bodies cut short. It forwards the original Host header, so SigV4
// signatures stay valid.
package faultproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Fault describes what to do to matching requests.
type Fault struct {
	// Match selects requests; nil matches all.
	Match func(*http.Request) bool
	// Status, with Code, answers with an S3 error instead of forwarding (e.g. 503 "SlowDown").
	Status  int
	Code    string
	Message string // the error's Message; "" for a generic one
	// Reset closes the connection without answering.
	Reset bool
	// CutAfter forwards the request but cuts the response body after this many bytes (> 0).
	CutAfter int64
	// Delay waits before handling the request.
	Delay time.Duration
	// Hang accepts the request and never answers: the connection stays open, silent, until the
	// client gives up or the proxy is closed (an endpoint that is up but stuck).
	Hang bool
	// LateBy forwards the request (so the server carries it out) and holds the answer back this
	// long before passing it on: a client that gives up sooner never learns what was done.
	LateBy time.Duration
	// Drop, with LateBy, closes the connection after the wait instead of answering: the server
	// carried the request out and the client never learns it, as when it gives up waiting (a
	// timeout) before the answer arrives.
	Drop bool
	// Times limits how many requests the fault hits; 0 means every matching request.
	Times int
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	ln  net.Listener
	srv *http.Server
	rp  *httputil.ReverseProxy

	mu     sync.Mutex // protects faults and hits
	faults []*Fault
	hits   int

	closed    chan struct{} // closed by Close: hung requests end
	closeOnce sync.Once
}

// Start starts a proxy on 127.0.0.1 in front of target (e.g. MinIO's endpoint).
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, rp: httputil.NewSingleHostReverseProxy(u), closed: make(chan struct{})}
	p.rp.ErrorLog = nil
	// No X-Forwarded-For: IMDS refuses token requests that carry one (as a guard against
	// being reached through a proxy), and the proxy stands in for the network, not a proxy.
	director := p.rp.Director
	p.rp.Director = func(r *http.Request) {
		director(r)
		r.Header["X-Forwarded-For"] = nil
	}
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

// URL is the proxy's address, to give s3mount as its endpoint.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Add installs a fault; faults are tried in the order added.
func (p *Proxy) Add(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &f)
}

// Clear removes every fault.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Hits returns how many requests a fault was applied to.
func (p *Proxy) Hits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits
}

// Close stops the proxy, ending hung requests too.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return p.srv.Close()
}

// pick returns the fault for r, counting it, or nil.
func (p *Proxy) pick(r *http.Request) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.Times < 0 || (f.Match != nil && !f.Match(r)) {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				f.Times = -1 // used up
			}
		}
		p.hits++
		return f
	}
	return nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	f := p.pick(r)
	if f == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	if f.Delay > 0 {
		time.Sleep(f.Delay)
	}
	switch {
	case f.Hang:
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
		panic(http.ErrAbortHandler)
	case f.LateBy > 0:
		rec := &heldResponse{header: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		select {
		case <-time.After(f.LateBy):
		case <-r.Context().Done():
			panic(http.ErrAbortHandler)
		case <-p.closed:
			panic(http.ErrAbortHandler)
		}
		if f.Drop {
			panic(http.ErrAbortHandler)
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(max(rec.status, http.StatusOK))
		_, _ = w.Write(rec.body)
	case f.Reset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, not FIN
				}
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case f.Status != 0:
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(f.Status)
		msg := f.Message
		if msg == "" {
			msg = "injected by faultproxy"
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, f.Code, msg)
	case f.CutAfter > 0:
		cw := &cutWriter{ResponseWriter: w, left: f.CutAfter}
		p.rp.ServeHTTP(cw, r)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// heldResponse records a whole answer so that it can be passed on later.
type heldResponse struct {
	header http.Header
	status int
	body   []byte
}

func (h *heldResponse) Header() http.Header { return h.header }
func (h *heldResponse) WriteHeader(s int) {
	if h.status == 0 {
		h.status = s
	}
}
func (h *heldResponse) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	h.body = append(h.body, b...)
	return len(b), nil
}

// cutWriter passes the first left bytes of the body, then aborts the connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.left <= 0 {
		panic(http.ErrAbortHandler)
	}
	if int64(len(b)) > c.left {
		_, _ = c.ResponseWriter.Write(b[:c.left])
		c.left = 0
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // the connection is closed mid-body
	}
	n, err := c.ResponseWriter.Write(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Matchers for common S3 requests (path-style: /bucket/key?query).

// IsGet matches object GETs.
func IsGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Count(strings.TrimPrefix(r.URL.Path, "/"), "/") >= 1 && r.URL.Query().Get("list-type") == ""
}

// IsUploadPart matches multipart part uploads.
func IsUploadPart(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != ""
}

// IsPut matches single-request object writes.
func IsPut(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "" && r.Header.Get("X-Amz-Copy-Source") == ""
}

// IsCreateMultipart matches CreateMultipartUpload.
func IsCreateMultipart(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploads")
}

// IsListUploads matches ListMultipartUploads.
func IsListUploads(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Query().Has("uploads")
}

// IsComplete matches CompleteMultipartUpload.
func IsComplete(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}
