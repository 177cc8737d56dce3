package s3backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptrace"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/s3mount/s3mount/fs/backend"
)

// Deadlines. No call waits on the network without bound:
//
//   - each attempt of a request fails once nothing has moved on its connection for
//     Config.RequestTimeout (dialing, TLS, sending, waiting for the answer, reading it: see
//     bodyConn); the SDK's retryer then tries again;
//   - each call fails with backend.ErrTimeout once it has waited Config.OpTimeout in all for S3 to
//     answer (credentials, connecting, retries and their backoff), not counting the time its
//     request body is being sent, nor while the kernel still sends what it was handed, nor the time
//     an answer is being read: those move, and a stall in them is an attempt's RequestTimeout. A
//     large part on a slow link is never cut while it moves;
//   - when Config.Shutdown ends, every call in flight fails at once.
//
// Lock order: watch.mu is taken alone (bodyConn has no lock).

// errShutdown is the cause of a call cancelled because the mount shuts down.
var errShutdown = errors.New("the mount is shutting down")

// stallError is the cause of a call cancelled by its deadline.
type stallError struct{ after time.Duration }

func (e *stallError) Error() string {
	return fmt.Sprintf("no answer from S3 within %s (op_timeout)", e.after)
}

// timeoutError replaces the SDK's error of a call its deadline cancelled: it does not unwrap to
// context.Canceled, which would read as an interruption.
type timeoutError struct {
	cause error // *stallError or errShutdown
	err   error // what the SDK returned, for the log
}

func (e *timeoutError) Error() string { return e.cause.Error() + ": " + e.err.Error() }

// watch is the deadline of one call: a clock of Config.OpTimeout that runs while the call waits
// for S3 and pauses while bytes of a body move (see the httptrace hooks in newWatch).
type watch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	limit  time.Duration
	stop   func() bool // undoes the shutdown hook

	mu      sync.Mutex // protects the following
	timer   *time.Timer
	left    time.Duration // what the clock may still run
	started time.Time     // when the clock last started; zero while paused
	ended   bool
	conn    *bodyConn // the latest attempt's connection, if ours
	unsent  int       // its send queue at the last look (see bodyConn.acknowledged)
	idle    time.Duration
}

// deadlines puts every call of the client under its deadline: the outermost middleware, so that
// it covers retries, backoff and the wait for credentials. The body of a GetObject is read after
// the call returns: it carries the call's context, ended when it is closed.
func deadlines(cfg Config) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("s3mountDeadline",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				w := newWatch(ctx, cfg)
				out, md, err := next.HandleInitialize(w.ctx, in)
				if get, ok := out.Result.(*s3.GetObjectOutput); ok && err == nil && get.Body != nil {
					w.settle()
					get.Body = &watchedBody{get.Body, w}
					return out, md, nil
				}
				w.end()
				return out, md, w.explain(err)
			}), middleware.Before)
	}
}

// newWatch starts the deadline of a call on ctx. The caller must call end (or settle, and hand
// end to a body).
func newWatch(ctx context.Context, cfg Config) *watch {
	w := &watch{limit: cfg.OpTimeout, left: cfg.OpTimeout, idle: cfg.RequestTimeout}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	if cfg.Shutdown != nil {
		w.stop = context.AfterFunc(cfg.Shutdown, func() { w.cancel(errShutdown) })
	}
	if w.limit <= 0 {
		return w
	}
	w.started = time.Now()
	w.timer = time.AfterFunc(w.limit, w.expire)
	w.ctx = httptrace.WithClientTrace(w.ctx, &httptrace.ClientTrace{
		GetConn:              func(string) { w.resume() },
		GotConn:              w.gotConn,
		WroteHeaders:         w.pause, // the body moves; a stall is the attempt's RequestTimeout
		WroteRequest:         func(httptrace.WroteRequestInfo) { w.resume() },
		GotFirstResponseByte: w.pause, // the answer is coming; a stall is the attempt's too
	})
	return w
}

func (w *watch) gotConn(info httptrace.GotConnInfo) {
	c := info.Conn
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = tc.NetConn()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.conn, _ = c.(*bodyConn)
	w.unsent = -1
}

// expire ends the call, unless the body it sent is still leaving on a slow link: the clock
// started when the last byte was handed to the kernel, which sends it at the link's pace.
func (w *watch) expire() {
	w.mu.Lock()
	if w.ended || w.started.IsZero() { // stopped while the timer fired
		w.mu.Unlock()
		return
	}
	if w.conn != nil && w.idle > 0 && w.conn.acknowledged(&w.unsent) {
		w.timer.Reset(w.idle)
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	w.cancel(&stallError{w.limit})
}

func (w *watch) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.started.IsZero() {
		return
	}
	w.left -= time.Since(w.started)
	w.started = time.Time{}
	w.timer.Stop()
}

func (w *watch) resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || !w.started.IsZero() {
		return
	}
	w.started = time.Now()
	w.timer.Reset(max(w.left, 0))
}

// settle stops the clock for good: the call has its answer, whose body is read at the reader's
// pace (and bounded by the connection's RequestTimeout).
func (w *watch) settle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// end stops the clock for good and releases the call's context.
func (w *watch) end() {
	w.mu.Lock()
	w.ended = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	if w.stop != nil {
		w.stop()
	}
	w.cancel(nil)
}

// explain returns err, or a *timeoutError if the call's deadline or the shutdown cancelled it.
func (w *watch) explain(err error) error {
	if err == nil {
		return nil
	}
	cause := context.Cause(w.ctx)
	var se *stallError
	if errors.As(cause, &se) || cause == errShutdown {
		return &timeoutError{cause: cause, err: err}
	}
	return err
}

// watchedBody is the body of a GET: it ends the call's watch when closed, and reports a read that
// the shutdown cut as such.
type watchedBody struct {
	io.ReadCloser
	w *watch
}

func (r *watchedBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		if err = r.w.explain(err); isTimeout(err) {
			err = fmt.Errorf("%w: %w", backend.ErrTimeout, err)
		}
	}
	return n, err
}

func (r *watchedBody) Close() error {
	err := r.ReadCloser.Close()
	r.w.end()
	return err
}

// isTimeout reports whether err is a deadline that passed: a connection without progress, a
// context's deadline, or the call's own.
func isTimeout(err error) bool {
	var ne net.Error
	var te *timeoutError
	switch {
	case errors.As(err, &te):
		return te.cause != errShutdown
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return true
	case errors.As(err, &ne):
		return ne.Timeout()
	}
	return false
}
