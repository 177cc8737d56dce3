// Command s3mount mounts an S3 bucket or prefix as a directory. See s3mount --help and docs/.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/creds"
	"github.com/s3mount/s3mount/fs"
	"github.com/s3mount/s3mount/fs/backend/metered"
	"github.com/s3mount/s3mount/fs/metrics"
	"github.com/s3mount/s3mount/internal/safepath"
	"github.com/s3mount/s3mount/s3backend"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// config is everything the command line says.
type config struct {
	bucket, prefix, mountpoint string
	region                     string
	s3                         s3backend.Config
	chain                      creds.Chain
	fs                         fs.Options
	foreground, debug          bool
	nonEmpty                   bool
	permissions                permChoice // default_permissions or no_default_permissions given
	stagingRoot                string     // "" for the default
	logFile                    string
	shutdownGrace              time.Duration
	retryTimeout               time.Duration
	scopeDown                  bool
	metricsAddr                string
	pprof                      bool   // serve /debug/pprof/ beside the metrics
	allowHTTP                  bool   // accept http:// endpoints on other hosts
	source, mountpointOpt      string // source= and mountpoint= (see unitconf.go)
}

// cliError is an error with the exit code it should produce.
type cliError struct {
	code int
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

func fail(code int, format string, args ...any) error {
	return &cliError{code, fmt.Errorf(format, args...)}
}

func main() {
	// First of all: no secret left in our command line (see secrets.go), and before anything
	// holds one, no ptrace, no /proc/PID/mem, no core dump (see notDumpable).
	args := cloneArgs(os.Args[1:])
	scrubArgs(os.Args[1:])
	if err := notDumpable(); err != nil {
		fmt.Fprintln(os.Stderr, "s3mount: cannot make the process non-dumpable:", err)
		os.Exit(exitError)
	}
	switch {
	case os.Getenv(childEnv) != "":
		// The background child: its command line is the masked copy; the real one comes over a pipe.
		var err error
		if args, err = receiveArgs(); err != nil {
			fmt.Fprintln(os.Stderr, "s3mount:", err)
			os.Exit(exitError)
		}
	case isMountHelper(os.Args[0]):
		var fake bool
		var err error
		if args, fake, err = helperArgs(args); err != nil {
			fmt.Fprintln(os.Stderr, "s3mount:", err)
			os.Exit(exitUsage)
		}
		if fake {
			os.Exit(exitOK)
		}
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if helpFor(args, stdout) {
		return exitOK
	}
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version":
			fmt.Fprintln(stdout, "s3mount", version)
			return exitOK
		case "help", "--help", "-h":
			fmt.Fprint(stdout, usage())
			return exitOK
		case "man":
			writeManPage(stdout)
			return exitOK
		case "completion":
			writeBashCompletion(stdout)
			return exitOK
		}
	}
	var err error
	switch {
	case len(args) > 0 && args[0] == "check":
		err = checkCommand(args[1:], stdout)
	case len(args) > 0 && args[0] == "policy":
		err = policyCommand(args[1:], stdout)
	case len(args) > 0 && args[0] == "status":
		err = statusCommand(args[1:], stdout)
	default:
		err = mountCommand(args, stderr)
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "s3mount:", err)
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitError
}

// parseConfig turns the command line into a config.
func parseConfig(args []string) (*config, error) {
	settings, positional, err := parseArgs(args)
	if err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	c := &config{s3: s3backend.NewConfig(), fs: fs.DefaultOptions(), chain: creds.Chain{Source: creds.SourceIMDS}, shutdownGrace: defaultShutdownGrace, retryTimeout: 30 * time.Second}
	c.chain.RequestTimeout, c.chain.RefreshTimeout = c.s3.RequestTimeout, c.s3.OpTimeout
	c.s3.Region = ""
	if err := c.apply(settings); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	source, mountpoint, err := c.targets(positional)
	if err != nil {
		return nil, err
	}
	if c.bucket, c.prefix, err = parseTarget(source); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	if err := c.resolvePermissions(os.Geteuid()); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	// The connection pool keeps 2 × Concurrency idle: one for each request that may be in flight
	// (GETs, part uploads, the HEADs `ls -l` runs at once), so that none opens a connection of its own.
	c.s3.Concurrency = max(c.s3.Concurrency, c.fs.ReadConcurrency, c.fs.MaxUploadConcurrency, fs.ListingHeadsInFlight/2)
	if c.scopeDown {
		if len(c.chain.Hops) == 0 {
			return nil, fail(exitUsage, "scope_down narrows the last role_arn hop; give a role_arn")
		}
		doc, _ := json.Marshal(permissionPolicy(c.bucket, c.prefix, c.fs.ReadOnly))
		c.chain.Hops[len(c.chain.Hops)-1].Policy = string(doc)
	}
	if err := c.checkEndpoints(); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	if c.pprof && c.metricsAddr == "" {
		return nil, fail(exitUsage, "pprof is served at the metrics address; give metrics_address too (a loopback HOST:PORT)")
	}
	if err := c.chain.Validate(); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	if err := c.s3.ValidateOptions(); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	if c.fs.PartSize < 5<<20 || c.fs.ReadPartSize < 256<<10 {
		return nil, fail(exitUsage, "part_size must be at least 5M (S3's minimum) and read_part_size at least 256K")
	}
	c.mountpoint = mountpoint
	c.s3.Bucket = c.bucket
	c.fs.Prefix = c.prefix
	c.fs.FsName = "s3://" + c.bucket + "/" + c.prefix
	c.fs.StagingDir = stagingDir(c.stagingRoot, c.bucket, c.prefix)
	return c, nil
}

// permChoice is what the command line says of the kernel's permission checks.
type permChoice int

const (
	permsUnset permChoice = iota // on when other users are let in (allow_other, allow_root)
	permsOn                      // default_permissions
	permsOff                     // no_default_permissions
)

// resolvePermissions decides whether the kernel checks modes and owners (default_permissions).
// Without it, nothing checks the caller: every user that allow_other or allow_root lets in could
// read, change and delete every file with the role's power, so letting them in implies it, and
// only no_default_permissions turns it off.
//
// allow_root is libfuse's: the library lets in root besides the mounting user. fusermount3 does
// not know it, and go-fuse has no such filter, so for a mount by root (who is let in already) it
// changes nothing, and for any other user it is refused.
func (c *config) resolvePermissions(euid int) error {
	shared := c.fs.AllowOther || c.fs.AllowRoot
	if c.fs.AllowRoot {
		if euid != 0 {
			return fmt.Errorf("allow_root is not supported for a mount by a user other than root (fusermount3 does not know it); use allow_other, which lets every user in as the modes and owners allow, or mount as root")
		}
		c.fs.AllowRoot = false // root mounts it, and so has access already
	}
	switch c.permissions {
	case permsOn:
		c.fs.DefaultPermissions = true
	case permsOff:
		c.fs.DefaultPermissions = false
	default:
		c.fs.DefaultPermissions = shared
	}
	if shared && c.fs.DefaultPermissions && c.fs.ListingAttrs {
		return fmt.Errorf("listing_attrs shows files without their stored modes and owners, which the kernel needs to keep other users (allow_other, allow_root) out of files not theirs; drop listing_attrs")
	}
	return nil
}

// stagingDir returns the staging directory of a mount target. It is the same for every mount of
// the same bucket and prefix, so that a new mount finds (and cleans up) what a crashed one left.
func stagingDir(root, bucket, prefix string) string {
	if root == "" {
		root = "/var/cache/s3mount"
		if os.Geteuid() != 0 {
			if home, err := os.UserCacheDir(); err == nil {
				root = filepath.Join(home, "s3mount")
			}
		}
	}
	sum := sha256.Sum256([]byte(bucket + "/" + prefix))
	return filepath.Join(root, bucket+"-"+hex.EncodeToString(sum[:6]))
}

// parseTarget accepts s3://bucket[/prefix] and bucket[:prefix]; the prefix comes back as "" or
// ending in "/".
func parseTarget(s string) (bucket, prefix string, err error) {
	switch {
	case strings.HasPrefix(s, "s3://"):
		bucket, prefix, _ = strings.Cut(strings.TrimPrefix(s, "s3://"), "/")
	case strings.Contains(s, ":"):
		bucket, prefix, _ = strings.Cut(s, ":")
	default:
		bucket = s
	}
	if !validBucket(bucket) {
		return "", "", fmt.Errorf("%q is not a valid bucket name (3-63 lowercase letters, digits, dots and hyphens); the target looks like s3://BUCKET/PREFIX", bucket)
	}
	prefix = strings.Trim(prefix, "/")
	for _, seg := range strings.Split(prefix, "/") {
		if prefix != "" && (seg == "" || seg == "." || seg == "..") {
			return "", "", fmt.Errorf("prefix %q has an empty, . or .. segment", prefix)
		}
	}
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func newLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func mountCommand(args []string, stderr io.Writer) error {
	c, err := parseConfig(args)
	if err != nil {
		return err
	}
	if !c.foreground && os.Getenv(childEnv) == "" {
		if err := checkMountpoint(c.mountpoint, c.nonEmpty); err != nil {
			return err // fail fast, before starting anything
		}
		if err := checkLocalPaths(c); err != nil {
			return err
		}
		return daemonize(args, stderr)
	}
	n := newNotifier()
	log := newLogger(stderr, c.debug)
	if n.pipe != nil {
		var closer io.Closer
		if log, closer, err = backgroundLogger(c); err != nil {
			err = unsafePath("log file (log_file)", err)
			n.failed(err.(*cliError).code, err)
			return err
		}
		defer closer.Close()
	}
	err = mountAndServe(c, log, n)
	if err != nil {
		code := exitError
		var ce *cliError
		if errors.As(err, &ce) {
			code = ce.code
		}
		n.failed(code, err)
		log.Error("s3mount failed", "err", err)
	}
	return err
}

// mountAndServe checks everything, mounts, tells the waiting parent or systemd, and serves until
// unmounted or told to stop.
func mountAndServe(c *config, log *slog.Logger, n *notifier) error {
	if err := checkMountpoint(c.mountpoint, c.nonEmpty); err != nil {
		return err
	}
	if err := checkLocalPaths(c); err != nil {
		return err
	}
	m := metrics.New()
	c.chain.OnRefresh, c.s3.OnRetry = credentialMetrics(m), retryMetrics(m)
	status := newMountStatus(c, m)
	var stopRequests context.CancelFunc
	c.s3.Shutdown, stopRequests = context.WithCancel(context.Background())
	defer stopRequests()
	ctx, cancel := context.WithTimeout(context.Background(), c.retryTimeout+2*time.Minute)
	defer cancel()
	s3b, err := connect(ctx, c, log)
	if err != nil {
		return err
	}
	if c.metricsAddr != "" {
		if _, err := serveMetrics(c.metricsAddr, c.pprof, m, log); err != nil {
			return fail(exitUsage, "%v", err)
		}
	}
	logMetricsOnSIGUSR1(m, log)
	c.fs.Logger, c.fs.Metrics = log, m
	go followLiveHeap(setMemoryLimit(c.fs))
	root, err := openRoot(ctx, c, s3b, m, log)
	if err != nil {
		return err
	}
	if n, err := root.RecoverUploads(context.Background()); err != nil {
		log.Warn("could not clean up after an earlier crashed mount", "err", err)
	} else if n > 0 {
		log.Info("aborted multipart uploads left by an earlier crashed mount", "count", n)
	}
	// The control socket is there before the mount appears, for status to find.
	status.root = root
	if stop, err := status.listen(c.mountpoint, log); err != nil {
		log.Warn("s3mount status will not reach this mount", "err", err)
	} else {
		defer stop()
	}
	srv, err := fs.Mount(c.mountpoint, root)
	if err != nil {
		root.Close() // as when the probe fails: no disk-cache directory left behind
		return fail(exitMount, "mounting %s: %v", c.mountpoint, err)
	}
	log.Info("mounted", "source", c.fs.FsName, "mountpoint", c.mountpoint)
	n.ready()
	err = serve(srv, root, c, log, stopRequests)
	log.Info("metrics", "summary", m.Summary())
	return err
}

// openRoot builds the filesystem on s3b and proves the bucket. A bucket found in another region
// than the one the mount signs for, which came from the environment or the instance (not from
// --region), is looked up and the mount moves there, as the AWS CLI and s3fs do.
func openRoot(ctx context.Context, c *config, s3b *s3backend.Backend, m *metrics.Registry, log *slog.Logger) (*fs.Root, error) {
	for moved := false; ; moved = true {
		root, err := fs.NewRoot(metered.New(s3b, m), c.fs)
		var unsafe *safepath.Error
		if errors.As(err, &unsafe) {
			return nil, fail(exitUnsafePath, "%v", err) // changed since checkLocalPaths
		}
		if err != nil {
			return nil, fail(exitError, "%v", err)
		}
		// The bucket probe and the root's listing go out together: the mount is ready one round
		// trip sooner, and two connections are open for the first lookup, which sends two
		// requests at once (dialing the second had taken 0.6–4.6 ms of it; see docs/notes/performance.md).
		listed := make(chan struct{})
		go func() { root.ListRoot(ctx); close(listed) }()
		err = probeBucket(ctx, s3b, c)
		<-listed
		if err == nil {
			return root, nil
		}
		root.Close() // no disk-cache directory left behind
		var mb *movedBucket
		if !errors.As(err, &mb) {
			return nil, err
		}
		if c.region != "" || mb.to == "" || moved {
			return nil, fail(exitS3, "%v", err)
		}
		log.Info("the bucket is in another region; using it (--region skips this lookup)", "bucket", c.bucket, "region", mb.to, "signed_for", mb.from)
		if s3b, err = s3b.InRegion(mb.to); err != nil {
			return nil, fail(exitUsage, "%v", err)
		}
		c.s3.Region = mb.to
	}
}

// serve runs until the filesystem is unmounted, or a signal asks to unmount it. On SIGTERM or
// SIGINT it refuses new writers, gives open files the grace period to be closed (and so
// committed), then op_timeout for the last commits before it cancels the requests still in flight
// (stopRequests), unmounts, and reports every file whose changes did not reach S3. Every wait is
// bounded: the grace period, op_timeout, then 10 s for the kernel to let go.
func serve(srv *fs.Server, root *fs.Root, c *config, log *slog.Logger, stopRequests context.CancelFunc) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	var lost []string
	select {
	case <-done:
		lost = root.Shutdown(context.Background(), 0)
		stopRequests()
		root.Close()
	case s := <-sigs:
		log.Info("signal received: finishing writes, then unmounting", "signal", s.String(), "grace", c.shutdownGrace)
		// Commits still running op_timeout after the grace period (a large body on a slow link)
		// are cancelled, so that the files' release, and so the unmount, can go on.
		ctx, cancel := context.WithTimeout(context.Background(), c.shutdownGrace+c.s3.OpTimeout)
		context.AfterFunc(ctx, stopRequests)
		lost = root.Shutdown(ctx, c.shutdownGrace)
		cancel()
		if err := srv.Unmount(); err != nil {
			log.Warn("unmount failed (files still open); detaching", "err", err)
			_ = syscall.Unmount(c.mountpoint, syscall.MNT_DETACH)
		}
		select {
		case <-done:
			root.Close()
		case <-time.After(10 * time.Second):
		}
	}
	if len(lost) > 0 {
		for _, k := range lost {
			log.Error("NOT written to S3: the file was still being written", "key", k)
		}
		return fail(exitUncommitted, "%d file(s) were not written to S3 before unmounting: %s", len(lost), strings.Join(lost, ", "))
	}
	log.Info("unmounted", "mountpoint", c.mountpoint)
	return nil
}

// setMemoryLimit tells the Go runtime how much memory its heap is meant to use: the block cache
// plus 32 MiB, at least 96 MiB. The buffers of read-ahead and of uploads live outside the Go heap
// (fs's buffer pools), bounded by the read-ahead budget and the upload concurrency; with them the
// daemon stays within the cache plus the read-ahead budget plus 32 MiB (384 MiB by default: issue
// 5's bound of cache + 128 MiB) while it reads. Without a limit the garbage collector lets the
// heap grow to twice what is live.
//
// Below the limit the heap may grow to five times what is live (GOGC=400, unless GOGC is set)
// before a collection. With Go's default a small heap, as on a fresh or quiet mount, is collected
// every few MiB: a fresh mount's first lookups shared the two cores with a collection, which
// doubled its time to first byte (median of 20 fresh mounts each: about 20 ms against 11 ms).
// Under load the limit decides when to collect either way. The price is a larger small heap: a
// quiet mount holds some 15 MiB more. It returns the limit, the base of memoryLimit.
func setMemoryLimit(o fs.Options) int64 {
	limit := max(o.CacheSize+32<<20, 96<<20)
	debug.SetMemoryLimit(limit)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	return limit
}

// memoryLimit is Go's memory limit for a live heap of live bytes: base (see setMemoryLimit), or
// once the live heap nears it, the live heap plus a quarter and 32 MiB. The nodes of the names the
// kernel remembers live in the heap, under 1 KiB each (fs's TestMemoryPerEntry: a million names
// after `ls -l` take some 860 MiB), and a limit at or below the live heap would make the collector
// run back to back.
func memoryLimit(base, live int64) int64 { return max(base, live+live/4+32<<20) }

// followLiveHeap sets the memory limit from the live heap (see memoryLimit) every second, for
// the life of the process.
func followLiveHeap(base int64) {
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := base
	for range time.Tick(time.Second) {
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() != rtmetrics.KindUint64 {
			return // not in this Go version
		}
		if limit := memoryLimit(base, int64(sample[0].Value.Uint64())); limit != last {
			debug.SetMemoryLimit(limit)
			last = limit
		}
	}
}

// gcPercent is the collector's target when GOGC is not set (see setMemoryLimit).
const gcPercent = 400

// checkMountpoint refuses what would hide data or fail late: a missing path, a file, a non-empty
// directory (unless allowed), a live mount. A dead FUSE mount (its daemon gone: "transport
// endpoint is not connected") is unmounted so that the new mount can take its place.
func checkMountpoint(dir string, allowNonEmpty bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, syscall.ENOTCONN) {
		if uerr := syscall.Unmount(dir, syscall.MNT_DETACH); uerr != nil {
			if out, ferr := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput(); ferr != nil {
				return fail(exitMountpoint, "mountpoint %s is a dead FUSE mount and cannot be unmounted: %v %s", dir, uerr, out)
			}
		}
		st, err = os.Stat(dir)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fail(exitMountpoint, "mountpoint %s does not exist; create it with: mkdir -p %s", dir, dir)
	case err != nil:
		return fail(exitMountpoint, "mountpoint %s: %v", dir, err)
	case !st.IsDir():
		return fail(exitMountpoint, "mountpoint %s is not a directory", dir)
	}
	if mounted, fstype := isMountpoint(dir); mounted {
		return fail(exitMountpoint, "%s is already a mountpoint (%s); unmount it first (umount %s)", dir, fstype, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fail(exitMountpoint, "mountpoint %s: %v", dir, err)
	}
	if len(entries) > 0 && !allowNonEmpty {
		return fail(exitMountpoint, "mountpoint %s is not empty (mounting would hide its files); empty it or pass --nonempty", dir)
	}
	return nil
}

// isMountpoint reports whether dir is a mountpoint, and of what type, from /proc/self/mountinfo.
func isMountpoint(dir string) (bool, string) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, ""
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		// mount ID, parent ID, major:minor, root, mount point, options, optional fields..., "-", type
		if len(fields) < 7 || unescapeMountinfo(fields[4]) != abs {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				return true, fields[i+1]
			}
		}
		return true, "unknown"
	}
	return false, ""
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
