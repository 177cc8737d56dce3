package fs

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/s3mount/s3mount/fs/backend"
)

// listingCache remembers a directory's last listing for the metadata TTL: which names it held and
// whether each is a file or a directory. A lookup right after a listing (what `ls -l` and rsync
// do: read the whole directory, then stat every name) then needs no LIST, and the HEADs that files
// still need for their stored attributes run ahead of the lookups, headsInFlight at a time, in
// listing order. Changes made through the mount keep a complete listing up to date (a commit records
// the file as stored, with its attributes, so its lookup needs no HEAD; an unlink drops the name),
// and forget a listing still in progress. A directory this mount has just created starts with a
// complete, empty listing, so that creating files in it needs no lookups in S3.
type listingCache struct {
	mu      sync.Mutex // protects the following
	at      time.Time  // when the listing last received entries (or ended)
	order   []*cachedEntry
	entries map[string]*cachedEntry
	done    bool // the listing reached its end
	// forLookups: the listing was taken for lookups of names one by one (see refreshIfStale), not
	// for a readdir, so no HEADs are started ahead of them (see head).
	forLookups bool
	gen        uint64        // counts changes, so that a refresh does not overwrite a newer state
	refresh    chan struct{} // closed when the refresh in progress ends; nil if none
	// Lookups that asked S3 for one name (see missed), counted from firstMiss; after
	// lookupsBeforeListing of them within a listing TTL, the directory is listed instead (see
	// refreshIfStale), unless one found more than lookupListPages pages before noListUntil.
	misses      int
	firstMiss   time.Time
	noListUntil time.Time
}

// lookupsBeforeListing is how many lookups of names a directory's listing does not answer may ask
// S3 one at a time (a GET and a LIST each) within a listing TTL before the directory is listed.
const lookupsBeforeListing = 3

// lookupListPages is how many pages a directory may take to be listed for its lookups; a listing of
// P pages pays for itself once P more names are looked up (one LIST each otherwise).
const lookupListPages = 4

// listBackoff is how long a directory that such a listing did not list (it was larger than
// lookupListPages pages, the LIST failed, or a change overtook it) is not listed again for lookups.
const listBackoff = time.Minute

// maxCachedEntries bounds the memory a listing may hold; larger directories are not remembered.
const maxCachedEntries = 200000

type cachedEntry struct {
	e    dirEntry
	idx  int
	head *headResult // started HEAD of a file, or nil
	// stored: e.info is what this mount stored (with its attributes), so a lookup needs no HEAD.
	stored bool
	gone   bool // a name removed since the listing: skipped by the HEADs ahead
	// known: when listed, the tree's node held the attributes stored on this version, so a
	// lookup needs no HEAD while it still does (see Dir.addListed).
	known bool
}

// needsHead reports whether a lookup of the entry needs a HEAD: a file known from the listing only.
func (ce *cachedEntry) needsHead() bool { return !ce.e.isDir && !ce.gone && !ce.stored && !ce.known }

// headResult is a HEAD started ahead of its lookup.
type headResult struct {
	done chan struct{}
	info backend.ObjectInfo
	err  error
}

// headsAhead is how many entries after the one looked up have their HEAD started (headsInFlight
// of them run at once). Lookups take the answers in listing order, so the window is several times
// the requests in flight: a slow answer holds one lookup up, not the requests behind it.
const headsAhead = 256

// headsInFlight bounds the HEADs started ahead of lookups that run at once, per mount. At S3's
// latency (some 20 ms), 64 at once ask for about S3's request rate per prefix (5,500 a second).
const headsInFlight = 64

// ListingHeadsInFlight is headsInFlight, for sizing the S3 client's connection pool.
const ListingHeadsInFlight = headsInFlight

// reset starts remembering a new listing.
func (c *listingCache) reset(r *Root) {
	c.mu.Lock()
	c.gen++
	c.at, c.order, c.entries, c.done, c.forLookups = time.Now(), nil, map[string]*cachedEntry{}, false, false
	c.mu.Unlock()
	r.listings.hold(c)
}

// forget drops the listing (the directory changed).
func (c *listingCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.order, c.entries = nil, nil
}

// seedEmpty starts a complete, empty listing: the directory was just found empty (this mount
// created it).
func (c *listingCache) seedEmpty(r *Root) {
	c.mu.Lock()
	c.gen++
	c.at, c.order, c.entries, c.done = time.Now(), nil, map[string]*cachedEntry{}, true
	c.mu.Unlock()
	r.listings.hold(c)
}

// stored records that this mount just stored e (a committed file, a new directory or symlink) in
// S3. A listing in progress, which may or may not show it, is forgotten instead. The listing's
// age is kept: the change says nothing about what other clients did.
func (c *listingCache) stored(e dirEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if !c.done || c.entries == nil || len(c.order) >= maxCachedEntries {
		c.order, c.entries = nil, nil
		return
	}
	ce := &cachedEntry{e: e, idx: len(c.order), stored: true}
	if old, ok := c.entries[e.name]; ok {
		ce.idx = old.idx
		c.order[old.idx] = ce
	} else {
		c.order = append(c.order, ce)
	}
	c.entries[e.name] = ce
}

// storedInParent records in the listing cache of n's parent that this mount just stored n (its
// content or its attributes), so that lookups answered from that listing show the new version,
// not what an earlier store or listing of n showed.
func storedInParent(n *fusefs.Inode, isDir bool, info backend.ObjectInfo) {
	name, parent := n.Parent()
	if parent == nil {
		return
	}
	if dir, ok := parent.Operations().(*Dir); ok {
		dir.lc.stored(dirEntry{name: name, isDir: isDir, info: info})
	}
}

// removed records that this mount just deleted name in S3 (or, with ok false, tried to: then the
// listing is forgotten, since the outcome is unknown).
func (c *listingCache) removed(name string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if !ok || !c.done || c.entries == nil {
		c.order, c.entries = nil, nil
		return
	}
	if ce, found := c.entries[name]; found {
		delete(c.entries, name)
		c.order[ce.idx] = &cachedEntry{idx: ce.idx, gone: true} // nothing to HEAD ahead there
	}
}

// add records an entry of the listing in progress; known: the tree's node for it holds the
// attributes stored on the version listed (see Dir.addListed).
func (c *listingCache) add(e dirEntry, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.entries == nil || len(c.order) >= maxCachedEntries {
		c.order, c.entries = nil, nil
		return
	}
	c.at = time.Now() // fresh for the TTL after the last page arrived, however long the listing took
	ce := &cachedEntry{e: e, idx: len(c.order), known: known}
	c.order = append(c.order, ce)
	c.entries[e.name] = ce // a directory listed after a file of the same name shadows it
}

// complete marks the end of the listing.
func (c *listingCache) complete() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.done = c.entries != nil
	c.at = time.Now()
}

// find returns what the listing says of name, while it is fresh: the entry, and for a complete
// listing whether name is known to be absent.
func (c *listingCache) find(name string, ttl time.Duration) (ce *cachedEntry, absent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || time.Since(c.at) > ttl {
		return nil, false
	}
	ce, ok := c.entries[name]
	return ce, !ok && c.done
}

// missed records that a lookup asked S3 for one name of the directory (see refreshIfStale).
func (c *listingCache) missed(ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.firstMiss) > ttl {
		c.misses, c.firstMiss = 0, now
	}
	c.misses++
}

// refreshIfStale lists the directory (with key prefix) if its complete listing has just expired,
// and the listing fits one page; or if lookupsBeforeListing lookups asked S3 for names it did not
// answer within a listing TTL, and it fits lookupListPages pages. A directory being written
// through this mount, whose listing the mount keeps up to date, then costs one LIST per listing
// TTL instead of a GET and a LIST per new name; a program that opens many files of a directory by
// name without listing it, a few LISTs per TTL instead of one per name (a LIST costs as much as
// 12.5 GETs on AWS). A directory that was not listed so is not listed again for lookups before
// listBackoff.
// Concurrent callers wait for one refresh.
func (c *listingCache) refreshIfStale(ctx context.Context, r *Root, prefix string) {
	c.mu.Lock()
	if ch := c.refresh; ch != nil {
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	// Only a listing that expired recently: a directory in use. After a quiet spell, a LIST of up
	// to a page for one lookup would cost more than the lookup's own requests.
	ttl, age := r.listingTTL(), time.Since(c.at)
	expired := c.done && c.entries != nil && len(c.entries) < r.opts.ListPageSize && age > ttl && age <= 2*ttl
	busy := ttl > 0 && (c.entries == nil || age > ttl) && c.misses >= lookupsBeforeListing &&
		time.Since(c.firstMiss) <= ttl && time.Now().After(c.noListUntil)
	if !expired && !busy {
		c.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	c.refresh = ch
	c.mu.Unlock()
	pages := 1
	if busy {
		pages = lookupListPages
	}
	listed := c.relist(ctx, r, prefix, pages, busy || c.forLookups)
	c.mu.Lock()
	c.refresh = nil
	c.misses = 0
	if !listed && busy {
		c.noListUntil = time.Now().Add(listBackoff)
	}
	c.mu.Unlock()
	close(ch)
}

// relist lists the directory (with key prefix) and, if it fits the given number of pages, makes
// that its complete listing (forLookups: see listingCache), unless a change overtook the request
// (lookups then ask S3 one name at a time); it reports whether it did. Entries this mount stored
// keep their attributes if the object's ETag is still the same (a directory's, if it is still a
// directory).
func (c *listingCache) relist(ctx context.Context, r *Root, prefix string, pages int, forLookups bool) bool {
	c.mu.Lock()
	gen, start := c.gen, time.Now()
	c.mu.Unlock()
	var got []dirEntry
	l := newLister(r.b, prefix, r.opts.ListPageSize)
	l.maxPages = pages
	e, ok, err := l.next(ctx)
	for ; err == nil && ok; e, ok, err = l.next(ctx) {
		got = append(got, e)
	}
	c.mu.Lock()
	if err != nil || c.gen != gen {
		c.mu.Unlock()
		return false // failed, more pages than wanted (errMorePages), or overtaken by a change
	}
	order, entries := make([]*cachedEntry, len(got)), make(map[string]*cachedEntry, len(got))
	for i, e := range got {
		ce := &cachedEntry{e: e, idx: i}
		if old, ok := c.entries[e.name]; ok && old.stored && old.e.isDir == e.isDir && (e.isDir || old.e.info.ETag == e.info.ETag) {
			ce.e, ce.stored = old.e, true
		}
		order[i], entries[e.name] = ce, ce
	}
	c.gen++
	c.order, c.entries, c.at, c.done, c.forLookups = order, entries, start, true, forLookups
	c.mu.Unlock()
	r.listings.hold(c)
	return true
}

// listingSet holds the listing caches that hold entries, so that the ones no longer of use can be
// freed (sweep). A listing answers lookups for the listing TTL, and decides whether to list again
// for as long again (see refreshIfStale); after that it would only hold memory, some 300 bytes an
// entry, in every directory ever listed, for as long as the kernel remembers the directory.
type listingSet struct {
	mu  sync.Mutex
	set map[*listingCache]struct{}
}

// hold adds c, which has just been given entries.
func (s *listingSet) hold(c *listingCache) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[*listingCache]struct{}{}
	}
	s.set[c] = struct{}{}
}

// len returns how many listings the set holds.
func (s *listingSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.set)
}

// sweep frees the listings that last changed more than twice ttl ago (or were dropped already),
// unless one is being refreshed.
func (s *listingSet) sweep(ttl time.Duration) {
	s.mu.Lock()
	held := make([]*listingCache, 0, len(s.set))
	for c := range s.set {
		held = append(held, c)
	}
	s.mu.Unlock()
	for _, c := range held {
		c.mu.Lock()
		if c.refresh == nil && (c.entries == nil || time.Since(c.at) > 2*ttl) {
			c.gen++
			c.order, c.entries = nil, nil
			s.mu.Lock() // after c.mu, so that a hold of c cannot fall between the check and this
			delete(s.set, c)
			s.mu.Unlock()
		}
		c.mu.Unlock()
	}
}

// head returns the HEAD of the file entry ce, started ahead if it was (else its lookup's GET, see
// Root.statObject), and starts HEADs for the entries up to headsAhead after it in the listing. A
// HEAD started ahead that failed for a reason that may pass (not a missing object, not a denial) is
// asked again, as the lookup's own request.
func (c *listingCache) head(ctx context.Context, r *Root, ce *cachedEntry) (backend.ObjectInfo, error) {
	c.mu.Lock()
	res, ahead := ce.head, ce.head != nil
	if res == nil {
		res = c.start(r, ce, r.statObject)
	}
	for i := ce.idx + 1; i < min(ce.idx+1+headsAhead, len(c.order)) && !c.forLookups; i++ {
		if next := c.order[i]; next.needsHead() && next.head == nil {
			c.start(r, next, r.b.Head)
		}
	}
	c.mu.Unlock()
	select {
	case <-res.done:
	case <-ctx.Done():
		return backend.ObjectInfo{}, ctx.Err()
	}
	if ahead && res.err != nil && !errors.Is(res.err, backend.ErrNotExist) && !errors.Is(res.err, backend.ErrPermission) {
		return r.throttled(ctx, ce.e.info.Key, r.b.Head)
	}
	return res.info, res.err
}

// start launches the HEAD (or another stat) of a file entry, headsInFlight at a time. Must hold mu.
func (c *listingCache) start(r *Root, ce *cachedEntry, stat func(context.Context, string) (backend.ObjectInfo, error)) *headResult {
	res := &headResult{done: make(chan struct{})}
	ce.head = res
	go func(key string) {
		r.heads <- struct{}{}
		res.info, res.err = r.throttled(r.ctx, key, stat)
		<-r.heads
		close(res.done)
	}(ce.e.info.Key)
	return res
}

// throttleRetries is how often a stat answered 503 SlowDown is tried again (after the S3
// client's own retries), each after twice as long a pause as the one before, from
// throttleBackoff.
const (
	throttleRetries = 6
	throttleBackoff = 50 * time.Millisecond
)

// throttled runs stat for key, and again while S3 answers that requests come too fast: a listing's
// HEADs run many at once, so a prefix can reach S3's request rate, and slowing down is the answer,
// not a failed lookup. The caller's slot (see Root.heads) stays taken meanwhile, so HEADs ahead
// slow down as a whole.
func (r *Root) throttled(ctx context.Context, key string, stat func(context.Context, string) (backend.ObjectInfo, error)) (backend.ObjectInfo, error) {
	pause := throttleBackoff
	for i := 0; ; i++ {
		info, err := stat(ctx, key)
		if err == nil || !errors.Is(err, backend.ErrThrottled) || i == throttleRetries {
			return info, err
		}
		select {
		case <-time.After(pause/2 + rand.N(pause)):
		case <-ctx.Done():
			return backend.ObjectInfo{}, err
		}
		pause *= 2
	}
}
