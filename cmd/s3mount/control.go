package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/creds"
	"github.com/s3mount/s3mount/fs"
	"github.com/s3mount/s3mount/fs/metrics"
)

// The control socket: each mount's daemon answers `s3mount status` on a Unix socket that only the
// user who mounted can open. The socket lives in a directory of that user's, mode 0700 (/run/s3mount
// for root, else $XDG_RUNTIME_DIR/s3mount, else /tmp/s3mount-UID), is itself mode 0600, and every
// connection's peer is checked with SO_PEERCRED: another uid gets "denied" and nothing else.
// The socket is named after the mountpoint, so status finds it from /proc/self/mountinfo.

// statusWindow is how far back status reports errors.
const statusWindow = 5 * time.Minute

// rootControlDir is where root's mounts keep their control sockets.
var rootControlDir = "/run/s3mount"

// controlDirFor returns the directory of the control sockets of uid's mounts. For the calling
// user it follows $XDG_RUNTIME_DIR, as the daemon does.
func controlDirFor(uid int, own bool) string {
	if uid == 0 {
		return rootControlDir
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); own && x != "" {
		return filepath.Join(x, "s3mount")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("s3mount-%d", uid))
}

// socketName names the control socket of a mountpoint (an absolute, resolved path).
func socketName(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	return hex.EncodeToString(sum[:12]) + ".sock"
}

// resolveMountpoint returns the absolute path of dir as /proc/self/mountinfo shows it: the
// symlinks of its parent resolved, never touching dir itself (a dead or hung mount).
func resolveMountpoint(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return filepath.Clean(dir)
	}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(parent, filepath.Base(abs))
	}
	return abs
}

// ensureControlDir makes dir, or accepts it when it is a real directory owned by us with no
// access for anyone else (it tightens the mode of one of ours). A symlink or someone else's
// directory is refused.
func ensureControlDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case st.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink; remove it", dir)
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory; remove it", dir)
	case !ok || int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, not to us (uid %d); remove it", dir, sys.Uid, os.Geteuid())
	}
	if st.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// mountStatus is what the daemon knows for status beyond the filesystem: the command line, the
// credential links' refreshes and the metrics.
type mountStatus struct {
	c       *config
	m       *metrics.Registry
	started time.Time
	root    *fs.Root // set once mounted

	mu    sync.Mutex // protects links
	links map[int]linkRefresh
}

// linkRefresh is the outcome of a link's last refresh.
type linkRefresh struct {
	at      time.Time
	expires time.Time
	err     string
}

// newMountStatus records the credential refreshes of c's chain (on top of its OnRefresh).
func newMountStatus(c *config, m *metrics.Registry) *mountStatus {
	s := &mountStatus{c: c, m: m, started: time.Now(), links: map[int]linkRefresh{}}
	next := c.chain.OnRefresh
	c.chain.OnRefresh = func(step string, expires time.Time, err error) {
		if next != nil {
			next(step, expires, err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		r := s.links[linkIndex(step)]
		r.at = time.Now()
		if err != nil {
			r.err = err.Error()
		} else {
			r.err, r.expires = "", expires
		}
		s.links[linkIndex(step)] = r
	}
	return s
}

// linkIndex maps a link's name (creds: "hop N (ARN)" for hops, a fixed name for the source) to
// its place in the chain: 0 for the source, N for hop N.
func linkIndex(step string) int {
	var n int
	if _, err := fmt.Sscanf(step, "hop %d ", &n); err == nil {
		return n
	}
	return 0
}

// listen opens the control socket of the mount at mountpoint and answers on it until the
// returned function closes it (and removes the socket).
func (s *mountStatus) listen(mountpoint string, log *slog.Logger) (func(), error) {
	dir := controlDirFor(os.Geteuid(), true)
	if err := ensureControlDir(dir); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	path := filepath.Join(dir, socketName(resolveMountpoint(mountpoint)))
	// Whatever is there (a socket a crashed mount left, a symlink) is replaced: the directory is
	// ours alone, and this mountpoint is not mounted (checkMountpoint).
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	go func() {
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return // closed
			}
			go s.answer(conn, log)
		}
	}()
	log.Debug("control socket", "path", path)
	return func() { ln.Close() }, nil
}

// peerUID returns the uid of the process at the other end of conn.
func peerUID(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// answer serves one request: "status" gets the report as JSON. A peer that is not the mounting
// user gets "denied".
func (s *mountStatus) answer(conn *net.UnixConn, log *slog.Logger) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	uid, err := peerUID(conn)
	if err != nil || uid != os.Geteuid() {
		log.Warn("control socket: refused a connection from another user", "uid", uid)
		fmt.Fprintln(conn, "denied: only the user who mounted may ask")
		return
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "status" {
		fmt.Fprintln(conn, "error: unknown request")
		return
	}
	_ = json.NewEncoder(conn).Encode(s.report())
}

// mountReport is the status of one mount, as `s3mount status --json` prints it.
type mountReport struct {
	Mountpoint string    `json:"mountpoint"`
	Source     string    `json:"source"`
	State      string    `json:"state"` // live, failing, dead, unreachable, not-yours
	Problem    string    `json:"problem,omitempty"`
	PID        int       `json:"pid,omitempty"`
	Version    string    `json:"version,omitempty"`
	MountedAt  time.Time `json:"mounted_at,omitzero"`
	Endpoint   string    `json:"endpoint,omitempty"`
	Region     string    `json:"region,omitempty"`
	ReadOnly   bool      `json:"read_only,omitempty"`

	Credentials []linkReport `json:"credentials,omitempty"`
	Traffic     *traffic     `json:"since_mount,omitempty"`
	*fs.Status
}

// linkReport is one link of the credential chain: never an External ID, only whether one is sent.
type linkReport struct {
	Link           string    `json:"link"`
	RoleARN        string    `json:"role_arn,omitempty"`
	SessionName    string    `json:"session_name,omitempty"`
	SourceIdentity string    `json:"source_identity,omitempty"`
	ExternalID     bool      `json:"uses_external_id,omitempty"`
	Expires        time.Time `json:"expires,omitzero"`
	Refreshed      time.Time `json:"refreshed,omitzero"`
	Error          string    `json:"refresh_error,omitempty"`
}

// traffic is what the mount did since it started.
type traffic struct {
	Requests      int64 `json:"s3_requests"`
	RequestErrors int64 `json:"s3_request_errors"`
	BytesRead     int64 `json:"bytes_read"`
	BytesWritten  int64 `json:"bytes_written"`
	FuseOps       int64 `json:"fuse_ops"`
	CacheHits     int64 `json:"cache_hits"`      // blocks served from memory (or a fetch in flight)
	DiskCacheHits int64 `json:"disk_cache_hits"` // blocks served from the disk cache
	CacheMisses   int64 `json:"cache_misses"`    // blocks fetched from S3
}

func (s *mountStatus) report() mountReport {
	c := s.c
	r := mountReport{Mountpoint: resolveMountpoint(c.mountpoint), Source: c.fs.FsName, State: "live", PID: os.Getpid(),
		Version: version, MountedAt: s.started.UTC(), Endpoint: endpointName(c), Region: c.s3.Region, ReadOnly: c.fs.ReadOnly}
	s.mu.Lock()
	links := s.links
	link := func(i int, lr linkReport) linkReport {
		if got, ok := links[i]; ok {
			lr.Refreshed, lr.Error = got.at.UTC(), got.err
			if !got.expires.IsZero() {
				lr.Expires = got.expires.UTC()
			}
		}
		return lr
	}
	switch c.chain.Source {
	case creds.SourceNone:
		r.Credentials = append(r.Credentials, linkReport{Link: "none (unsigned requests)"})
	case creds.SourceFile:
		r.Credentials = append(r.Credentials, link(0, linkReport{Link: "credentials file " + c.chain.CredentialsFile}))
	case creds.SourceDefault:
		name := "default AWS credential chain"
		if c.chain.Profile != "" {
			name += " (profile " + c.chain.Profile + ")"
		}
		r.Credentials = append(r.Credentials, link(0, linkReport{Link: name}))
	default:
		r.Credentials = append(r.Credentials, link(0, linkReport{Link: "instance profile (IMDS)"}))
	}
	for i, h := range c.chain.Hops {
		session := h.SessionName
		if session == "" {
			session = creds.DefaultSessionName()
		}
		r.Credentials = append(r.Credentials, link(i+1, linkReport{Link: fmt.Sprintf("hop %d", i+1), RoleARN: h.RoleARN,
			SessionName: session, SourceIdentity: h.SourceIdentity, ExternalID: h.ExternalID != ""}))
	}
	s.mu.Unlock()
	r.Traffic = &traffic{
		Requests:      int64(s.m.Sum("s3mount_s3_requests_total")),
		RequestErrors: int64(s.m.Sum("s3mount_s3_request_errors_total")),
		BytesRead:     int64(s.m.Sum("s3mount_s3_bytes_read_total")),
		BytesWritten:  int64(s.m.Sum("s3mount_s3_bytes_written_total")),
		FuseOps:       int64(s.m.Sum("s3mount_fuse_ops_total")),
		CacheHits:     int64(s.m.Sum("s3mount_cache_hits_total")),
		DiskCacheHits: int64(s.m.Sum("s3mount_disk_cache_hits_total")),
		CacheMisses:   int64(s.m.Sum("s3mount_cache_misses_total")),
	}
	if s.root != nil {
		st := s.root.Status(statusWindow)
		r.Status = &st
		if st.LastCommit != nil && st.LastCommit.Error != "" {
			r.State, r.Problem = "failing", "the last commit failed: "+st.LastCommit.Key+": "+st.LastCommit.Error
		}
	}
	return r
}
