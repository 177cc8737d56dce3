package fs

import (
	"context"
	"errors"
	"strings"

	"github.com/s3mount/s3mount/fs/backend"
)

// dirEntry is one name in a directory listing.
type dirEntry struct {
	name  string
	isDir bool
	info  backend.ObjectInfo // for files: key, size, ETag, modification time from the listing
	// listed: info is the listing's alone (Options.ListingAttrs); the stored attributes are unknown.
	listed bool
}

// lister streams the entries of one directory from ListObjectsV2 pages, one page at a time (and
// the next one requested ahead), in key order. It hides the directory's own marker object ("dir/")
// and names that cannot be file names, and when a key is both an object and a prefix ("x" and
// "x/..."), shows only the directory.
type lister struct {
	b        backend.Backend
	prefix   string // the directory's key prefix: "" or ending in "/"
	pageSize int

	queue []dirEntry // fetched, not yet returned; in name order
	token string
	done  bool // no more pages
	// pending is the page after the last one fetched, requested as soon as that one arrived, so that
	// the round trip overlaps with the kernel's reading of the entries before it.
	pending chan pageResult
	// onEntry, if set, sees every entry as soon as its page arrives (before next returns it), so
	// that work for the entries ahead (their HEADs) can start early.
	onEntry func(dirEntry)
	// maxPages, if not 0: only a listing of at most that many pages is wanted, so the next page
	// is not requested ahead, and fetching one more fails with errMorePages.
	maxPages int
	pages    int // fetched so far
}

// errMorePages: the directory has more than the lister's maxPages pages.
var errMorePages = errors.New("more pages than wanted")

func newLister(b backend.Backend, prefix string, pageSize int) *lister {
	return &lister{b: b, prefix: prefix, pageSize: pageSize}
}

type pageResult struct {
	p   backend.Page
	err error
}

func (l *lister) input() backend.ListInput {
	return backend.ListInput{Prefix: l.prefix, Delimiter: "/", Token: l.token, MaxKeys: l.pageSize}
}

// fetch appends the next page's entries to the queue, merged into key order, and requests the
// page after it.
func (l *lister) fetch(ctx context.Context) error {
	if l.maxPages > 0 && l.pages >= l.maxPages {
		return errMorePages
	}
	l.pages++
	var p backend.Page
	var err error
	if l.pending != nil {
		r := <-l.pending
		l.pending, p, err = nil, r.p, r.err
	} else {
		p, err = l.b.List(ctx, l.input())
	}
	if err != nil {
		return err
	}
	l.token, l.done = p.NextToken, p.NextToken == ""
	if !l.done && l.pages == l.maxPages {
		// MinIO marks a page that holds the last MaxKeys entries as truncated (S3 looks ahead):
		// a one-key look at the next page tells whether the directory ends with this one.
		in := l.input()
		in.MaxKeys = 1
		q, err := l.b.List(ctx, in)
		if err == nil && len(q.Objects) == 0 && len(q.Prefixes) == 0 && q.NextToken == "" {
			l.done = true
		}
	}
	if !l.done && l.maxPages == 0 {
		pending, in := make(chan pageResult, 1), l.input()
		go func() {
			p, err := l.b.List(context.WithoutCancel(ctx), in)
			pending <- pageResult{p, err}
		}()
		l.pending = pending
	}
	objs, dirs := p.Objects, p.Prefixes
	for len(objs) > 0 || len(dirs) > 0 {
		if len(dirs) == 0 || (len(objs) > 0 && objs[0].Key < dirs[0]) {
			if name := objs[0].Key[len(l.prefix):]; validName(name) {
				l.push(dirEntry{name: name, info: objs[0]})
			}
			objs = objs[1:]
			continue
		}
		if name := strings.TrimSuffix(dirs[0][len(l.prefix):], "/"); validName(name) {
			l.push(dirEntry{name: name, isDir: true})
		}
		dirs = dirs[1:]
	}
	return nil
}

func (l *lister) push(e dirEntry) {
	l.queue = append(l.queue, e)
	if l.onEntry != nil {
		l.onEntry(e)
	}
}

// next returns the next entry, or ok=false at the end of the directory.
func (l *lister) next(ctx context.Context) (e dirEntry, ok bool, err error) {
	for {
		for len(l.queue) == 0 {
			if l.done {
				return dirEntry{}, false, nil
			}
			if err := l.fetch(ctx); err != nil {
				return dirEntry{}, false, err
			}
		}
		e = l.queue[0]
		if !e.isDir {
			shadowed, err := l.shadowedByDir(ctx, e.name)
			if err != nil {
				return dirEntry{}, false, err
			}
			if shadowed {
				l.queue = l.queue[1:]
				continue
			}
		}
		l.queue = l.queue[1:]
		return e, true, nil
	}
}

// shadowedByDir reports whether a directory named name follows in the listing. Between the object
// "name" and the prefix "name/" only keys "name" + a byte below '/' can sort, so it fetches pages
// until an entry outside that range shows up.
func (l *lister) shadowedByDir(ctx context.Context, name string) (bool, error) {
	for i := 1; ; i++ {
		for i >= len(l.queue) {
			if l.done {
				return false, nil
			}
			if err := l.fetch(ctx); err != nil {
				return false, err
			}
		}
		e := l.queue[i]
		if e.name == name && e.isDir {
			return true, nil
		}
		if !strings.HasPrefix(e.name, name) || e.name == name || e.name[len(name)] >= '/' {
			return false, nil
		}
	}
}
