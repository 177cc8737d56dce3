package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend"
)

// dirtyFile is the local content of a file that is being written, shared by every handle of the
// file, so that a handle reads its own unflushed writes and two handles see each other's.
//
// The staging file is the source of truth. While writes only append, every part that fills up is
// uploaded at once, in parallel, into a multipart upload (streaming); at commit (flush, fsync,
// close) the remaining parts are uploaded and the upload completed, or a small file is sent with
// one PutObject. Nothing is visible in S3 before the commit succeeds, and a failed commit leaves
// the previous version of the object intact. Under staging-space pressure, parts already uploaded
// are freed from the staging file (hole punching); such a part can no longer be rewritten or read
// back before the commit (EIO, documented).
//
// Lock order: dirtyFile.mu, then staging.mu. mu is never held across network requests.
type dirtyFile struct {
	r       *Root
	keyOf   func() string // the file's current key (it follows renames)
	partSz  int64
	staging *staging

	mu   sync.Mutex // protects the following
	cond *sync.Cond // signalled when inflight, committing or loading change
	f    *os.File   // the staging file
	size int64
	// accounted is what this file holds of the staging space: size minus punched bytes.
	accounted int64
	// base is the committed version the content came from; loaded says whether the staging file
	// holds it (a new or truncated-to-zero file counts as loaded).
	base    backend.ObjectInfo
	loaded  bool
	loading bool
	// dirty: the content or attributes differ from what S3 holds.
	dirty bool
	attrs attrs
	// mtimeSet: attrs.mtime was set explicitly (utimes) after the last write.
	mtimeSet   bool
	sequential bool // every write so far has appended at the end
	parts      []partState
	seq        int // last part version handed out; versions never repeat within a file
	upload     backend.Upload
	creating   bool // an upload is being created
	inflight   int  // part uploads under way
	committing bool
	// err is the sticky failure of a background part upload, returned by the next write or commit.
	err error
	// commitErr is the failure of the last commit, cleared by any change; content whose last commit
	// failed is dropped at release rather than retried behind the application's back.
	commitErr error
	// unlinked: the file was removed; its content lives on for open handles but is never committed.
	unlinked bool
	closed   bool
}

// partState is one part of the staging file.
type partState struct {
	version  int   // bumped by every change to the part's bytes
	uploaded int   // version uploaded into the current upload, -1 if none
	upLen    int64 // length uploaded (the last part may have grown since)
	inflight bool  // an upload of this part is under way
	punched  bool  // freed from the staging file after upload
}

// current reports whether part i is uploaded in its present content and length. Must hold mu.
func (d *dirtyFile) current(i int) bool {
	p := d.parts[i]
	off, size := partRange(i, d.partSz)
	return p.uploaded == p.version && p.upLen == min(size, d.size-off)
}

func newDirtyFile(r *Root, keyOf func() string, base backend.ObjectInfo, a attrs) (*dirtyFile, error) {
	f, err := r.staging.create()
	if err != nil {
		return nil, err
	}
	d := &dirtyFile{r: r, keyOf: keyOf, partSz: r.opts.PartSize, staging: r.staging, f: f, base: base, attrs: a, sequential: true}
	d.cond = sync.NewCond(&d.mu)
	return d, nil
}

// newEmpty returns a dirtyFile for a file created empty (or truncated to zero): it is loaded, and
// dirty so that the commit writes the empty object.
func newEmptyDirtyFile(r *Root, keyOf func() string, base backend.ObjectInfo, a attrs) (*dirtyFile, error) {
	d, err := newDirtyFile(r, keyOf, base, a)
	if err != nil {
		return nil, err
	}
	d.loaded, d.dirty = true, true
	return d, nil
}

// ensureLoaded downloads the base version into the staging file, once. Must hold mu.
func (d *dirtyFile) ensureLoaded(ctx context.Context) error {
	for d.loading {
		d.cond.Wait()
	}
	if d.loaded {
		return nil
	}
	d.loading = true
	base := d.base
	d.mu.Unlock()
	err := d.staging.reserve(base.Size)
	if err == nil {
		err = d.download(ctx, base)
		if err != nil {
			_ = d.staging.reserve(-base.Size)
		}
	}
	d.mu.Lock()
	d.loading = false
	d.cond.Broadcast()
	if err != nil {
		return fmt.Errorf("loading %s into the staging directory: %w", base.Key, err)
	}
	d.loaded, d.size, d.accounted = true, base.Size, base.Size
	d.parts = make([]partState, partCount(d.size, d.partSz))
	for i := range d.parts {
		d.parts[i].uploaded = -1
	}
	return nil
}

// download copies the version info of the object into the staging file from offset 0.
func (d *dirtyFile) download(ctx context.Context, info backend.ObjectInfo) error {
	if info.Size == 0 {
		return nil
	}
	body, err := d.r.b.Get(ctx, info.Key, 0, info.Size, info.ETag)
	if err != nil {
		return err
	}
	defer body.Close()
	n, err := io.Copy(io.NewOffsetWriter(d.f, 0), body)
	if err == nil && n != info.Size {
		err = fmt.Errorf("short download: %d of %d bytes: %w", n, info.Size, backend.ErrStale)
	}
	return err
}

// waitIdle waits until no commit or load is running. Must hold mu.
func (d *dirtyFile) waitIdle() {
	for d.committing || d.loading {
		d.cond.Wait()
	}
}

// reserveGrowth reserves staging space for the file to grow to end. It releases mu while it waits,
// since the space may be freed by this file's own part uploads, so the caller must re-check its
// state afterwards. It returns the bytes reserved, which the caller adds to accounted or gives back.
func (d *dirtyFile) reserveGrowth(end int64) (int64, error) {
	need := end - d.size
	d.mu.Unlock()
	err := d.staging.reserve(need)
	d.mu.Lock()
	if err != nil {
		return 0, err
	}
	return need, nil
}

// settle adds reserved bytes to the file's account, giving back what the growth did not need
// (another writer may have grown the file meanwhile). Must hold mu.
func (d *dirtyFile) settle(reserved, oldSize int64) {
	used := max(0, d.size-oldSize)
	if extra := reserved - used; extra > 0 {
		_ = d.staging.reserve(-extra)
		reserved = used
	}
	d.accounted += reserved
}

// punchedBytes returns the staging bytes freed by punching. Must hold mu.
func (d *dirtyFile) punchedBytes() int64 {
	var n int64
	for i, p := range d.parts {
		if p.punched {
			_, sz := partRange(i, d.partSz)
			n += sz
		}
	}
	return n
}

// touch records a change of bytes [off, end) and of the size. Must hold mu.
func (d *dirtyFile) touch(off, end int64) {
	if n := partCount(max(end, d.size), d.partSz); n > len(d.parts) {
		for len(d.parts) < n {
			d.parts = append(d.parts, partState{uploaded: -1})
		}
	}
	if end > off {
		for i := partIndex(off, d.partSz); i < len(d.parts); i++ {
			if o, _ := partRange(i, d.partSz); o >= end {
				break
			}
			d.seq++
			d.parts[i].version = d.seq
		}
	}
	d.dirty = true
	d.commitErr = nil
	if !d.mtimeSet || end > off {
		d.attrs.mtime, d.mtimeSet = time.Now(), false
	}
}

// checkNotPunched fails if [off, end) touches a part freed after upload. Must hold mu.
func (d *dirtyFile) checkNotPunched(off, end int64) error {
	if end <= off {
		return nil
	}
	for i := partIndex(off, d.partSz); i < len(d.parts); i++ {
		o, _ := partRange(i, d.partSz)
		if o >= end {
			break
		}
		if d.parts[i].punched {
			return fmt.Errorf("bytes %d-%d were already streamed to S3 and freed from the staging directory; "+
				"rewriting or reading them before the file is closed is not supported (raise --staging-size): %w", off, end, syscall.EIO)
		}
	}
	return nil
}

// write writes data at off.
func (d *dirtyFile) write(ctx context.Context, data []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	end := off + int64(len(data))
	var reserved int64
	for {
		d.waitIdle()
		if d.err != nil {
			_ = d.staging.reserve(-reserved)
			return 0, d.err
		}
		if err := d.ensureLoaded(ctx); err != nil {
			_ = d.staging.reserve(-reserved)
			return 0, err
		}
		if end <= d.size+reserved {
			break
		}
		n, err := d.reserveGrowth(end - reserved)
		if err != nil {
			_ = d.staging.reserve(-reserved)
			return 0, d.poison(err)
		}
		reserved += n
	}
	if err := d.checkNotPunched(off, end); err != nil {
		_ = d.staging.reserve(-reserved)
		return 0, d.poison(err)
	}
	if _, err := d.f.WriteAt(data, off); err != nil {
		_ = d.staging.reserve(-reserved)
		return 0, d.poison(fmt.Errorf("writing to the staging file: %w", err))
	}
	if off != d.size {
		d.sequential = false
	}
	oldSize := d.size
	d.touch(off, end)
	d.size = max(d.size, end)
	d.settle(reserved, oldSize)
	if d.sequential {
		d.streamFullParts()
	}
	return len(data), nil
}

// poison records a write that failed: the content is no longer what the application wrote, so it
// must never be committed. The error is returned by every later write, fsync and close until the
// content is replaced (truncate to zero) or the file is released. Must hold mu.
func (d *dirtyFile) poison(err error) error {
	if d.err == nil {
		d.err = err
	}
	return err
}

// streamFullParts starts uploads of the parts that are full and not yet uploaded. Must hold mu.
func (d *dirtyFile) streamFullParts() {
	for i := range d.parts {
		o, n := partRange(i, d.partSz)
		if o+n > d.size {
			break
		}
		d.startPart(i)
	}
}

// startPart uploads part i in the background unless it is current or already under way. Must
// hold mu.
func (d *dirtyFile) startPart(i int) {
	p := &d.parts[i]
	if p.inflight || p.punched || d.current(i) {
		return
	}
	p.inflight = true
	d.inflight++
	go d.uploadPart(i, p.version)
}

// uploadPart sends part i (of content version version) to the multipart upload.
func (d *dirtyFile) uploadPart(i, version int) {
	ctx := d.r.ctx
	err := d.r.acquireUpload(ctx)
	var n int64
	if err == nil {
		defer d.r.releaseUpload()
		var u backend.Upload
		u, err = d.ensureUpload(ctx)
		if err == nil {
			d.mu.Lock()
			off, size := partRange(i, d.partSz)
			n = min(size, d.size-off)
			d.mu.Unlock()
			err = d.sendPart(ctx, u, i, off, n)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inflight--
	d.cond.Broadcast()
	if i >= len(d.parts) {
		return // truncated away meanwhile
	}
	p := &d.parts[i]
	p.inflight = false
	if p.version != version {
		// The part changed while it was being sent (a rewrite or a truncate), so whatever was
		// sent is stale, and a failure to send it lost nothing: the part is sent again.
		return
	}
	if err != nil {
		d.poison(fmt.Errorf("uploading part %d of %s: %w", i+1, d.keyOf(), err))
		return
	}
	p.uploaded, p.upLen = version, n
	d.maybePunch(i)
}

// sendPart uploads the n bytes at off of the staging file as part i. A part of up to PartSize
// bytes is read once into a buffer (the SDK reads the body three times: to hash it, to sum it and
// to send it). Larger parts, those beyond the first 1,000 of a file, and parts that find every
// part buffer in use are sent from the staging file itself, so that the memory of uploads stays
// within UploadConcurrency × PartSize however large the file and however many parts are in
// flight; they cost two more reads of the page cache. A full part reports its rate to the upload
// slots (uploadSlots.observe).
func (d *dirtyFile) sendPart(ctx context.Context, u backend.Upload, i int, off, n int64) error {
	var body io.ReadSeeker = io.NewSectionReader(d.f, off, n)
	if n <= d.r.opts.PartSize {
		if buf := d.r.partBuffer(n); buf != nil {
			defer d.r.freePartBuffer(buf)
			if _, err := d.f.ReadAt(buf, off); err != nil {
				return err
			}
			body = bytes.NewReader(buf)
		}
	}
	start := time.Now()
	err := u.UploadPart(ctx, int32(i+1), body, n)
	if _, size := partRange(i, d.partSz); err == nil && n == size {
		d.r.uploads.observe(n, time.Since(start))
	}
	return err
}

// maybePunch frees an uploaded part from the staging file when space is short. Part 0 is kept,
// since formats often rewrite their header at the end. Must hold mu.
func (d *dirtyFile) maybePunch(i int) {
	off, n := partRange(i, d.partSz)
	if i == 0 || !d.sequential || off+n > d.size || !d.staging.pressure() {
		return
	}
	if err := unix.Fallocate(int(d.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return
	}
	d.parts[i].punched = true
	d.accounted -= n
	_ = d.staging.reserve(-n)
}

// ensureUpload returns the multipart upload, creating it once.
func (d *dirtyFile) ensureUpload(ctx context.Context) (backend.Upload, error) {
	d.mu.Lock()
	for d.creating {
		d.cond.Wait()
	}
	if u := d.upload; u != nil {
		d.mu.Unlock()
		return u, nil
	}
	d.creating = true
	key := d.keyOf()
	opts := d.attrs.contentOptions(key)
	d.mu.Unlock()
	start := time.Now()
	created := d.r.journal.startCreate(key)
	u, err := d.r.b.NewUpload(ctx, key, opts)
	if err == nil {
		d.r.journal.add(key, u.ID())
	}
	created()
	if r, ok := u.(backend.Retrier); err != nil || ok && r.Retried() {
		// S3 may have carried out an attempt whose answer never came: find and abort it.
		d.r.sweep(key, start)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.creating = false
	d.cond.Broadcast()
	if err != nil {
		return nil, err
	}
	d.upload = u
	return u, nil
}

// readAt reads the file's current content.
func (d *dirtyFile) readAt(ctx context.Context, dest []byte, off int64) (int, error) {
	d.mu.Lock()
	for d.loading {
		d.cond.Wait()
	}
	if !d.loaded {
		// Nothing written yet: read the version the file was opened at.
		base := d.base
		d.mu.Unlock()
		return readObject(ctx, d.r.b, base, dest, off)
	}
	defer d.mu.Unlock()
	if off >= d.size {
		return 0, nil
	}
	n := min(int64(len(dest)), d.size-off)
	if err := d.checkNotPunched(off, off+n); err != nil {
		return 0, err
	}
	got, err := d.f.ReadAt(dest[:n], off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return got, err
}

// truncate sets the size. Truncating to zero needs no download of the old content.
func (d *dirtyFile) truncate(ctx context.Context, size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var reserved int64
	giveBack := func() { _ = d.staging.reserve(-reserved) }
	for {
		d.waitIdle()
		if size == 0 {
			break // replaces the content, including content lost to a failed upload
		}
		if d.err != nil {
			giveBack()
			return d.err
		}
		if err := d.ensureLoaded(ctx); err != nil {
			giveBack()
			return err
		}
		if size <= d.size+reserved {
			break
		}
		n, err := d.reserveGrowth(size - reserved)
		if err != nil {
			giveBack()
			return err
		}
		reserved += n
	}
	if size == 0 {
		d.waitInflight()
		d.err = nil
		d.abortUpload()
		if err := d.f.Truncate(0); err != nil {
			giveBack()
			return err
		}
		_ = d.staging.reserve(-d.accounted - reserved)
		d.accounted, d.size, d.loaded, d.sequential = 0, 0, true, true
		d.parts = nil
		d.touch(0, 0)
		return nil
	}
	if size < d.size {
		if err := d.checkNotPunched(size-1, size); err != nil {
			giveBack()
			return err
		}
	}
	if err := d.f.Truncate(size); err != nil {
		giveBack()
		return err
	}
	old := d.size
	d.size = size
	d.sequential = false
	if size < old {
		release := old - size + reserved
		d.accounted -= old - size
		_ = d.staging.reserve(-release)
		d.parts = d.parts[:partCount(size, d.partSz)]
		d.touch(size-1, size) // the new last part changed length
		return nil
	}
	d.touch(old, size)
	d.settle(reserved, old)
	return nil
}

// waitInflight waits for part uploads to finish. Must hold mu.
func (d *dirtyFile) waitInflight() {
	for d.inflight > 0 || d.creating {
		d.cond.Wait()
	}
}

// abortUpload abandons the current multipart upload (in the background). Must hold mu, with no
// part in flight.
func (d *dirtyFile) abortUpload() {
	u := d.upload
	if u == nil {
		return
	}
	d.upload = nil
	for i := range d.parts {
		d.parts[i].uploaded = -1
	}
	d.r.abortUntilDone(u, d.keyOf())
}

// setAttrs updates the attributes to commit; mtimeExplicit marks a utimes call.
func (d *dirtyFile) setAttrs(update func(*attrs), mtimeExplicit bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	update(&d.attrs)
	d.dirty = true
	if mtimeExplicit {
		d.mtimeSet = true
	}
}

// stat returns the current size and attributes.
func (d *dirtyFile) stat() (int64, attrs, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	size := d.size
	if !d.loaded {
		size = d.base.Size
	}
	return size, d.attrs, d.dirty
}

// commit makes S3 hold exactly the current content and attributes, and returns only when it does
// (or with the error that prevented it; S3 then still holds the previous version).
func (d *dirtyFile) commit(ctx context.Context) (info backend.ObjectInfo, changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() { d.commitErr = err }()
	d.waitIdle()
	if !d.dirty || d.unlinked {
		return backend.ObjectInfo{}, false, nil
	}
	d.committing = true
	defer func() { d.committing = false; d.cond.Broadcast() }()
	if !d.loaded {
		// Only the attributes changed: rewrite them onto the object with a server-side copy.
		key, opts := d.keyOf(), d.attrs.putOptions()
		d.mu.Unlock()
		info, _, err := d.r.b.Copy(ctx, key, key, backend.Replace(opts))
		d.mu.Lock()
		if err != nil {
			return backend.ObjectInfo{}, false, err
		}
		d.base, d.dirty = info, false
		return info, true, nil
	}
	d.waitInflight()
	if d.err != nil {
		// A write was lost on the way (a part upload failed): the content is not what the
		// application wrote, so it is never committed. The error stays until the content is
		// replaced (truncate to zero) or the file is closed.
		d.abortUpload()
		return backend.ObjectInfo{}, false, d.err
	}
	if d.upload == nil && d.size <= d.partSz {
		info, err = d.putWhole(ctx)
	} else {
		info, err = d.completeMultipart(ctx)
	}
	if err != nil {
		return backend.ObjectInfo{}, false, err
	}
	d.base, d.dirty = info, false
	for i := range d.parts {
		d.parts[i].uploaded = -1
	}
	return info, true, nil
}

// putWhole sends the content with one PutObject. Must hold mu (released during the request).
func (d *dirtyFile) putWhole(ctx context.Context) (backend.ObjectInfo, error) {
	key, size := d.keyOf(), d.size
	opts := d.attrs.contentOptions(key)
	d.mu.Unlock()
	defer d.mu.Lock()
	if err := d.r.acquireUpload(ctx); err != nil {
		return backend.ObjectInfo{}, err
	}
	defer d.r.releaseUpload()
	// The body is read once, into a recycled buffer: the SDK reads it three times (to hash it, to
	// sum it and to send it), and a bytes.Reader lets it do so without buffers of its own.
	// Sent from the staging file when every part buffer is in use.
	var body io.ReadSeeker = io.NewSectionReader(d.f, 0, size)
	if buf := d.r.partBuffer(d.r.opts.PartSize); buf != nil && size <= int64(len(buf)) {
		defer d.r.freePartBuffer(buf)
		if _, err := d.f.ReadAt(buf[:size], 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
			return backend.ObjectInfo{}, fmt.Errorf("staging file: %w", err)
		}
		body = bytes.NewReader(buf[:size])
	} else {
		d.r.freePartBuffer(buf)
	}
	return d.r.b.Put(ctx, key, body, size, opts)
}

// completeMultipart uploads every part not yet uploaded in its current version, then completes.
// Must hold mu (released while waiting).
func (d *dirtyFile) completeMultipart(ctx context.Context) (backend.ObjectInfo, error) {
	for i := range d.parts {
		if d.parts[i].punched && !d.current(i) {
			return backend.ObjectInfo{}, fmt.Errorf("part %d changed after it was freed: %w", i+1, syscall.EIO)
		}
		d.startPart(i)
	}
	d.waitInflight()
	if d.err != nil {
		// Parts uploaded at commit failed: the local content is intact, so a later fsync or
		// close may try again.
		err := d.err
		d.err = nil
		d.abortUpload()
		return backend.ObjectInfo{}, err
	}
	u, n := d.upload, int32(len(d.parts))
	key := d.keyOf()
	d.mu.Unlock()
	info, err := u.Complete(ctx, n)
	d.mu.Lock()
	if err != nil {
		d.abortUpload()
		return backend.ObjectInfo{}, err
	}
	d.upload = nil
	d.r.journal.remove(key, u.ID())
	return info, nil
}

// failedCommit returns the error of the last commit if it failed and nothing changed since.
func (d *dirtyFile) failedCommit() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commitErr
}

// release frees the staging file and its space. The caller makes sure no handle uses d any more.
func (d *dirtyFile) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.waitIdle()
	d.waitInflight()
	if d.closed {
		return
	}
	d.closed = true
	d.abortUpload()
	_ = d.staging.reserve(-d.accounted)
	d.accounted = 0
	_ = d.f.Close()
}
