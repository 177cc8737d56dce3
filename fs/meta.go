package fs

import (
	"maps"
	"mime"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/fs/backend"
)

// Object metadata names for POSIX attributes. They are the names s3fs-fuse uses
// (x-amz-meta-mode/uid/gid/mtime), so trees written by one read right in the other.
const (
	metaMode  = "mode"  // st_mode in decimal, including the file type bits
	metaUID   = "uid"   // decimal
	metaGID   = "gid"   // decimal
	metaMtime = "mtime" // seconds since the epoch, with an optional fraction: "1700000000.123456789"
)

// attrs are the POSIX attributes stored with an object. Zero values mean "not stored".
type attrs struct {
	mode     uint32 // full st_mode, 0 if not stored
	uid, gid *uint32
	mtime    time.Time
	// other is the rest of the object's user metadata (another client's: an application's tags,
	// s3fs's atime and ctime), nil if there is none, and headers its standard headers
	// (Content-Type, Cache-Control...), nil if it has none. Both are written back unchanged with
	// the attributes and with new content.
	other   map[string]string
	headers *backend.Headers // shared (see internHeaders); never changed
}

func parseUint32(s string) *uint32 {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return nil
	}
	u := uint32(v)
	return &u
}

// attrsOf reads the attrs an object stores (see parseMeta), and its headers.
func attrsOf(info backend.ObjectInfo) attrs {
	a := parseMeta(info.Meta)
	a.headers = internHeaders(info.Headers)
	return a
}

// interned holds one copy of each set of headers seen, up to maxInterned: a node per name keeps
// a pointer to its object's headers, and most objects share a few (a Content-Type of
// binary/octet-stream and nothing else, say), so a node costs 8 bytes for them, not 80.
var interned struct {
	mu sync.Mutex
	m  map[backend.Headers]*backend.Headers
}

const maxInterned = 4096

// internHeaders returns a shared copy of h, or nil for no headers.
func internHeaders(h backend.Headers) *backend.Headers {
	if h == (backend.Headers{}) {
		return nil
	}
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if p, ok := interned.m[h]; ok {
		return p
	}
	p := &h
	if interned.m == nil {
		interned.m = map[backend.Headers]*backend.Headers{}
	}
	if len(interned.m) < maxInterned {
		interned.m[h] = p
	}
	return p
}

// parseMeta reads attrs from object metadata; malformed values are ignored.
func parseMeta(m map[string]string) attrs {
	var a attrs
	for k, v := range m {
		switch k {
		case metaMode, metaUID, metaGID, metaMtime:
		default:
			if a.other == nil {
				a.other = map[string]string{}
			}
			a.other[k] = v
		}
	}
	if v := parseUint32(m[metaMode]); v != nil {
		a.mode = *v
	}
	a.uid, a.gid = parseUint32(m[metaUID]), parseUint32(m[metaGID])
	if s := m[metaMtime]; s != "" {
		sec, frac, _ := strings.Cut(s, ".")
		if secs, err := strconv.ParseInt(sec, 10, 64); err == nil {
			var nsec int64
			if frac != "" {
				frac = (frac + "000000000")[:9]
				nsec, _ = strconv.ParseInt(frac, 10, 64)
			}
			a.mtime = time.Unix(secs, nsec)
		}
	}
	return a
}

// toMeta writes attrs as object metadata.
func (a attrs) toMeta() map[string]string {
	m := maps.Clone(a.other)
	if m == nil {
		m = map[string]string{}
	}
	if a.mode != 0 {
		m[metaMode] = strconv.FormatUint(uint64(a.mode), 10)
	}
	if a.uid != nil {
		m[metaUID] = strconv.FormatUint(uint64(*a.uid), 10)
	}
	if a.gid != nil {
		m[metaGID] = strconv.FormatUint(uint64(*a.gid), 10)
	}
	if !a.mtime.IsZero() {
		s := strconv.FormatInt(a.mtime.Unix(), 10)
		if ns := a.mtime.Nanosecond(); ns != 0 {
			s += "." + strings.TrimRight(strconv.FormatInt(int64(ns)+1e9, 10)[1:], "0")
		}
		m[metaMtime] = s
	}
	return m
}

// putOptions writes attrs as what a PUT, an upload or a copy stores with the object.
func (a attrs) putOptions() backend.PutOptions {
	o := backend.PutOptions{Meta: a.toMeta()}
	if a.headers != nil {
		o.Headers = *a.headers
	}
	return o
}

// contentOptions is what new content of the object key is stored with: putOptions, and for an
// object without a Content-Type of its own (a new file) the type its name's extension gives.
func (a attrs) contentOptions(key string) backend.PutOptions {
	o := a.putOptions()
	if o.Headers.ContentType == "" {
		o.Headers.ContentType = contentType(key)
	}
	return o
}

// contentType is the Content-Type of key's extension in Go's table and the system's
// (/etc/mime.types), "" for none: what s3fs and rclone give new objects too.
func contentType(key string) string {
	return mime.TypeByExtension(path.Ext(key))
}

// retypeOnRename is the CopyMeta of a rename from srcKey to dstKey: an object without a type of
// its own (none, S3's default, or the type its old name gave it) takes the one its new name
// gives, with its metadata and other headers unchanged, as a file written under a temporary name
// (rsync's .name.XXXXXX, name.part) and renamed into place should. A symlink is not retyped. It
// is nil (the copy keeps everything) when the two names give the same type, or the new one none.
func retypeOnRename(srcKey, dstKey string) backend.CopyMeta {
	old, typ := contentType(srcKey), contentType(dstKey)
	if typ == "" || typ == old {
		return nil
	}
	return func(src backend.ObjectInfo) *backend.PutOptions {
		switch src.Headers.ContentType {
		case "", "binary/octet-stream", "application/octet-stream", old:
		default:
			return nil // a type of its own
		}
		if parseMeta(src.Meta).fileType() != syscall.S_IFREG {
			return nil
		}
		h := src.Headers
		h.ContentType = typ
		return &backend.PutOptions{Meta: src.Meta, Headers: h}
	}
}

// fileType returns the S_IFMT bits of a stored mode, S_IFREG when none is stored.
func (a attrs) fileType() uint32 {
	if t := a.mode & syscall.S_IFMT; t != 0 {
		return t
	}
	return syscall.S_IFREG
}
