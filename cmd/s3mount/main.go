// Command s3mount mounts an S3 bucket or prefix as a directory. See s3mount --help and docs/.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/creds"
	"github.com/s3mount/s3mount/fs"
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
	stagingRoot                string // "" for the default
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
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version":
			fmt.Fprintln(stdout, "s3mount", version)
			return exitOK
		case "help", "--help", "-h":
			fmt.Fprint(stdout, usage())
			return exitOK
		}
	}
	err := mountCommand(args, stderr)
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
	c := &config{s3: s3backend.NewConfig(), fs: fs.DefaultOptions(), chain: creds.Chain{Source: creds.SourceIMDS}}
	c.s3.Region = ""
	if err := c.apply(settings); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	if len(positional) != 2 {
		return nil, fail(exitUsage, "expected a bucket and a mountpoint, got %d arguments (usage: s3mount [options] s3://BUCKET[/PREFIX] MOUNTPOINT)", len(positional))
	}
	if c.bucket, c.prefix, err = parseTarget(positional[0]); err != nil {
		return nil, fail(exitUsage, "%v", err)
	}
	c.mountpoint = positional[1]
	c.s3.Bucket = c.bucket
	c.fs.Prefix = c.prefix
	c.fs.FsName = "s3://" + c.bucket + "/" + c.prefix
	c.fs.StagingDir = stagingDir(c.stagingRoot, c.bucket, c.prefix)
	return c, nil
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
	log := newLogger(stderr, c.debug)
	if err := checkMountpoint(c.mountpoint, c.nonEmpty); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	b, err := connect(ctx, c, log)
	cancel()
	if err != nil {
		return err
	}
	c.fs.Logger = log
	setMemoryLimit(c.fs)
	root, err := fs.NewRoot(b, c.fs)
	if err != nil {
		return fail(exitError, "%v", err)
	}
	if n, err := root.RecoverUploads(context.Background()); err != nil {
		log.Warn("could not clean up after an earlier crashed mount", "err", err)
	} else if n > 0 {
		log.Info("aborted multipart uploads left by an earlier crashed mount", "count", n)
	}
	srv, err := fs.Mount(c.mountpoint, root)
	if err != nil {
		return fail(exitMount, "mounting %s: %v", c.mountpoint, err)
	}
	log.Info("mounted", "source", c.fs.FsName, "mountpoint", c.mountpoint)
	return serve(srv, c, log)
}

// serve runs until the filesystem is unmounted, or a signal asks to unmount it.
func serve(srv *fs.Server, c *config, log *slog.Logger) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	for {
		select {
		case <-done:
			log.Info("unmounted", "mountpoint", c.mountpoint)
			return nil
		case s := <-sigs:
			log.Info("signal received, unmounting", "signal", s.String())
			if err := srv.Unmount(); err != nil {
				log.Warn("unmount failed (files still open?); retrying lazily", "err", err)
				_ = syscall.Unmount(c.mountpoint, syscall.MNT_DETACH)
			}
		}
	}
}

// setMemoryLimit tells the Go runtime how much memory the daemon is meant to use: the block
// cache, the read-ahead budget and the upload buffers, plus headroom. Without it the garbage
// collector lets the heap grow to twice what is live.
func setMemoryLimit(o fs.Options) {
	limit := o.CacheSize + o.ReadaheadBudget + int64(o.UploadConcurrency)*o.PartSize + 96<<20
	debug.SetMemoryLimit(limit)
}

// checkMountpoint refuses what would hide data or fail late: a missing path, a file, a non-empty
// directory (unless allowed), an existing mount.
func checkMountpoint(dir string, allowNonEmpty bool) error {
	st, err := os.Stat(dir)
	switch {
	case err != nil && errors.Is(err, syscall.ENOTCONN):
		return fail(exitMountpoint, "mountpoint %s is a dead FUSE mount (transport endpoint is not connected); run: fusermount3 -u %s", dir, dir)
	case errors.Is(err, os.ErrNotExist):
		return fail(exitMountpoint, "mountpoint %s does not exist; create it with: mkdir -p %s", dir, dir)
	case err != nil:
		return fail(exitMountpoint, "mountpoint %s: %v", dir, err)
	case !st.IsDir():
		return fail(exitMountpoint, "mountpoint %s is not a directory", dir)
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
