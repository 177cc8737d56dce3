// Package memback is an in-memory backend.Backend for tests. It behaves like S3 (lexicographic
// listings with common prefixes, ETags that change on every write, conditional writes, multipart
// uploads invisible until complete), counts requests per operation, and lets a test inject faults.
// It should only be used for tests.
package memback

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
)

// Op names an operation for counters and fault injection.
type Op string

// Operations, as counted by Calls and matched by Fault.
const (
	OpHead     Op = "Head"
	OpList     Op = "List"
	OpGet      Op = "Get"
	OpPut      Op = "Put"
	OpCreateMP Op = "CreateMultipart"
	OpPart     Op = "UploadPart"
	OpComplete Op = "Complete"
	OpAbort    Op = "Abort"
	OpCopy     Op = "Copy"
	OpDelete   Op = "Delete"
)

type object struct {
	data    []byte
	etag    string
	modTime time.Time
	meta    map[string]string
	headers backend.Headers
}

// FaultFunc is called before every operation with its name and key; a non-nil error is returned
// to the caller instead of doing the operation.
type FaultFunc func(op Op, key string) error

// GetFaultFunc is called before every GET (after FaultFunc) with its key and range (n < 0: to the
// end); a non-nil error is returned instead of the body.
type GetFaultFunc func(key string, off, n int64) error

// Backend is the in-memory store.
type Backend struct {
	fault    atomic.Pointer[FaultFunc]
	late     atomic.Pointer[FaultFunc]
	getFault atomic.Pointer[GetFaultFunc]
	bodyRate atomic.Int64 // bytes per second of GET bodies; 0: unlimited

	fullPagesTruncated atomic.Bool // see SetFullPagesTruncated

	mu      sync.Mutex // protects the following
	objects map[string]*object
	uploads map[string]*upload
	calls   map[Op]int
	read    int64 // bytes requested by GETs
	seq     int
}

var _ backend.Backend = (*Backend)(nil)

// New returns an empty store.
func New() *Backend {
	return &Backend{objects: map[string]*object{}, uploads: map[string]*upload{}, calls: map[Op]int{}}
}

// Calls returns how many times op was requested (including failed requests).
func (b *Backend) Calls(op Op) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[op]
}

// ResetCalls zeroes all counters.
func (b *Backend) ResetCalls() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = map[Op]int{}
	b.read = 0
}

// BytesRequested returns how many bytes GETs asked for (since the last ResetCalls).
func (b *Backend) BytesRequested() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}

// PutBytes stores an object directly (as another S3 client would), bypassing counters and faults.
func (b *Backend) PutBytes(key string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.store(key, bytes.Clone(data), nil, backend.Headers{})
}

// Bytes returns an object's content, and whether it exists.
func (b *Backend) Bytes(key string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return nil, false
	}
	return bytes.Clone(o.data), true
}

// Keys returns all object keys in order.
func (b *Backend) Keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]string, 0, len(b.objects))
	for k := range b.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PendingUploads returns the number of multipart uploads neither completed nor aborted.
func (b *Backend) PendingUploads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.uploads)
}

// SetFault installs (or, with nil, removes) a fault injector; it is safe while in use.
func (b *Backend) SetFault(f FaultFunc) {
	if f == nil {
		b.fault.Store(nil)
		return
	}
	b.fault.Store(&f)
}

// SetLateFault installs (or, with nil, removes) a fault injector called after CreateMultipart
// has taken effect: a non-nil error is returned although the store holds the new upload, as when
// S3 carries out a request whose answer the client never gets.
func (b *Backend) SetLateFault(f FaultFunc) {
	if f == nil {
		b.late.Store(nil)
		return
	}
	b.late.Store(&f)
}

// SetGetFault installs (or, with nil, removes) a fault injector for GETs that sees their range.
func (b *Backend) SetGetFault(f GetFaultFunc) {
	if f == nil {
		b.getFault.Store(nil)
		return
	}
	b.getFault.Store(&f)
}

// beginGet is begin for a GET of n bytes at off.
func (b *Backend) beginGet(key string, off, n int64) error {
	if err := b.begin(OpGet, key); err != nil {
		return err
	}
	if f := b.getFault.Load(); f != nil {
		return (*f)(key, off, n)
	}
	return nil
}

// SetBodyRate limits the bodies that GETs return to bytesPerSec each (0: no limit), as a slow
// network would; it applies to GETs started afterwards.
func (b *Backend) SetBodyRate(bytesPerSec int64) { b.bodyRate.Store(bytesPerSec) }

// body returns data as a GET's body, at the rate set.
func (b *Backend) body(data []byte) io.ReadCloser {
	r := io.Reader(bytes.NewReader(data))
	if rate := b.bodyRate.Load(); rate > 0 {
		r = &slowReader{r: r, rate: rate}
	}
	return io.NopCloser(r)
}

// slowReader returns at most 64 KiB per Read, taking the time its rate allows for them.
type slowReader struct {
	r    io.Reader
	rate int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p[:min(len(p), 64<<10)])
	time.Sleep(time.Duration(int64(n) * int64(time.Second) / s.rate))
	return n, err
}

func (b *Backend) begin(op Op, key string) error {
	b.mu.Lock()
	b.calls[op]++
	b.mu.Unlock()
	if f := b.fault.Load(); f != nil {
		return (*f)(op, key)
	}
	return nil
}

// store must be called with mu held.
func (b *Backend) store(key string, data []byte, meta map[string]string, h backend.Headers) *object {
	b.seq++
	sum := md5.Sum(append(data, []byte(strconv.Itoa(b.seq))...))
	o := &object{data: data, etag: `"` + hex.EncodeToString(sum[:]) + `"`, modTime: time.Now().UTC().Truncate(time.Second), meta: maps.Clone(meta), headers: h}
	b.objects[key] = o
	return o
}

func info(key string, o *object, withMeta bool) backend.ObjectInfo {
	oi := backend.ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: o.etag, ModTime: o.modTime}
	if withMeta {
		oi.Meta, oi.Headers = maps.Clone(o.meta), o.headers
	}
	return oi
}

func notExist(key string) error { return fmt.Errorf("memback: %q: %w", key, backend.ErrNotExist) }

// Head implements backend.Backend.
func (b *Backend) Head(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if err := b.begin(OpHead, key); err != nil {
		return backend.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return backend.ObjectInfo{}, notExist(key)
	}
	return info(key, o, true), nil
}

// List implements backend.Backend. The continuation token is the last key or prefix returned.
func (b *Backend) List(ctx context.Context, in backend.ListInput) (backend.Page, error) {
	if err := b.begin(OpList, in.Prefix); err != nil {
		return backend.Page{}, err
	}
	max := in.MaxKeys
	if max <= 0 {
		max = 1000
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	keys := make([]string, 0)
	for k := range b.objects {
		if strings.HasPrefix(k, in.Prefix) && k > in.Token {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var p backend.Page
	n := 0
	for _, k := range keys {
		if k <= p.NextToken {
			continue // inside a common prefix already returned
		}
		if n == max {
			return p, nil
		}
		rest := k[len(in.Prefix):]
		if i := strings.Index(rest, in.Delimiter); in.Delimiter != "" && i >= 0 {
			cp := in.Prefix + rest[:i+len(in.Delimiter)]
			p.Prefixes = append(p.Prefixes, cp)
			// Skip every key under cp: the token sorts after all of them.
			p.NextToken = cp + "\xff"
		} else {
			p.Objects = append(p.Objects, info(k, b.objects[k], false))
			p.NextToken = k
		}
		n++
	}
	if n == max && b.fullPagesTruncated.Load() {
		return p, nil // a full page says there may be more, as MinIO's do
	}
	p.NextToken = ""
	return p, nil
}

// SetFullPagesTruncated makes a LIST page that holds MaxKeys entries carry a continuation token
// even when no key follows, as MinIO does (S3 looks ahead); the next page is then empty.
func (b *Backend) SetFullPagesTruncated(on bool) { b.fullPagesTruncated.Store(on) }

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	if err := b.beginGet(key, off, n); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok && ifMatch == "" {
		return nil, notExist(key)
	}
	if ifMatch != "" && (!ok || ifMatch != o.etag) {
		return nil, fmt.Errorf("memback: %q: %w", key, backend.ErrStale)
	}
	size := int64(len(o.data))
	off = min(off, size)
	end := size
	if n >= 0 {
		end = min(off+n, size)
	}
	b.read += end - off
	return b.body(o.data[off:end]), nil
}

// GetFirst implements backend.Backend. It counts as a GET.
func (b *Backend) GetFirst(ctx context.Context, key string, n int64) (backend.ObjectInfo, io.ReadCloser, error) {
	if err := b.beginGet(key, 0, n); err != nil {
		return backend.ObjectInfo{}, nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return backend.ObjectInfo{}, nil, notExist(key)
	}
	end := min(n, int64(len(o.data)))
	b.read += end
	return info(key, o, true), b.body(o.data[:end]), nil
}

// readBody reads a request's body, which must hold size bytes, no fewer and no more.
func readBody(body io.Reader, size int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("body has %d bytes, want %d", len(data), size)
	}
	return data, nil
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if err := b.begin(OpPut, key); err != nil {
		return backend.ObjectInfo{}, err
	}
	data, err := readBody(body, size)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("memback: put %q: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[key]; ok && opts.IfNoneMatch {
		return backend.ObjectInfo{}, fmt.Errorf("memback: %q: %w", key, backend.ErrExist)
	}
	return info(key, b.store(key, data, opts.Meta, opts.Headers), true), nil
}

// Copy implements backend.Backend.
func (b *Backend) Copy(ctx context.Context, src, dst string, copyMeta backend.CopyMeta) (backend.ObjectInfo, string, error) {
	if err := b.begin(OpCopy, src); err != nil {
		return backend.ObjectInfo{}, "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[src]
	if !ok {
		return backend.ObjectInfo{}, "", notExist(src)
	}
	meta, h := o.meta, o.headers
	if copyMeta != nil {
		if opts := copyMeta(info(src, o, true)); opts != nil {
			meta, h = opts.Meta, opts.Headers
		}
	}
	from := o.etag
	return info(dst, b.store(dst, bytes.Clone(o.data), meta, h), true), from, nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.begin(OpDelete, key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, key)
	return nil
}

type upload struct {
	b     *Backend
	key   string
	id    string
	opts  backend.PutOptions
	start time.Time

	mu    sync.Mutex // protects parts
	parts map[int32][]byte
}

// NewUpload implements backend.Backend.
func (b *Backend) NewUpload(ctx context.Context, key string, opts backend.PutOptions) (backend.Upload, error) {
	if err := b.begin(OpCreateMP, key); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.seq++
	u := &upload{b: b, key: key, id: fmt.Sprintf("upload-%d", b.seq), opts: opts, start: time.Now(), parts: map[int32][]byte{}}
	b.uploads[u.id] = u
	b.mu.Unlock()
	if f := b.late.Load(); f != nil {
		if err := (*f)(OpCreateMP, key); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func (u *upload) ID() string { return u.id }

func (u *upload) UploadPart(ctx context.Context, number int32, body io.ReadSeeker, size int64) error {
	if err := u.b.begin(OpPart, u.key); err != nil {
		return err
	}
	if number < 1 || number > backend.MaxParts {
		return fmt.Errorf("memback: part number %d out of range", number)
	}
	data, err := readBody(body, size)
	if err != nil {
		return fmt.Errorf("memback: part %d: %w", number, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.parts[number] = data
	return nil
}

func (u *upload) Complete(ctx context.Context, parts int32) (backend.ObjectInfo, error) {
	if err := u.b.begin(OpComplete, u.key); err != nil {
		return backend.ObjectInfo{}, err
	}
	u.mu.Lock()
	var data []byte
	for n := int32(1); n <= parts; n++ {
		p, ok := u.parts[n]
		if !ok {
			u.mu.Unlock()
			return backend.ObjectInfo{}, fmt.Errorf("memback: complete: part %d was never uploaded", n)
		}
		if n < parts && len(p) < backend.MinPartSize {
			u.mu.Unlock()
			return backend.ObjectInfo{}, fmt.Errorf("memback: part %d is %d bytes, below the minimum", n, len(p))
		}
		data = append(data, p...)
	}
	u.mu.Unlock()
	b := u.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.uploads[u.id]; !ok {
		return backend.ObjectInfo{}, fmt.Errorf("memback: upload %s: %w", u.id, backend.ErrNotExist)
	}
	if _, ok := b.objects[u.key]; ok && u.opts.IfNoneMatch {
		return backend.ObjectInfo{}, fmt.Errorf("memback: %q: %w", u.key, backend.ErrExist)
	}
	delete(b.uploads, u.id)
	return info(u.key, b.store(u.key, data, u.opts.Meta, u.opts.Headers), true), nil
}

func (u *upload) Abort(ctx context.Context) error {
	if err := u.b.begin(OpAbort, u.key); err != nil {
		return err
	}
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	delete(u.b.uploads, u.id)
	return nil
}

// ListUploads implements backend.Backend.
func (b *Backend) ListUploads(ctx context.Context, prefix string) ([]backend.PendingUpload, error) {
	if err := b.begin(OpList, prefix); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backend.PendingUpload
	for _, u := range b.uploads {
		if strings.HasPrefix(u.key, prefix) {
			out = append(out, backend.PendingUpload{Key: u.key, UploadID: u.id, Initiated: u.start})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UploadID < out[j].UploadID })
	return out, nil
}

// AbortUpload implements backend.Backend.
func (b *Backend) AbortUpload(ctx context.Context, key, uploadID string) error {
	if err := b.begin(OpAbort, key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.uploads, uploadID)
	return nil
}
