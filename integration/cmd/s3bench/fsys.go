package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// filesystem is one column measured through a mount. Each has its own prefix, team-a/bench-<slug>,
// holding its copy of the read data and everything it writes.
type filesystem struct {
	name    string
	slug    string
	missing string // why it cannot be measured ("" when it can)
	// command returns the foreground command that mounts root() on dir.
	command func(dir string) *exec.Cmd
	// options is how it is mounted, for the report (no secrets).
	options string
	// floor: the FUSE floor, which stores nothing; it runs only the jobs in floorJobs, and its
	// writes are timed until the writer returned (nothing reaches S3).
	floor bool

	mountFailures int
	lastMountErr  string
}

// root is the filesystem's key prefix (no trailing slash); the role may use only team-a/.
func (f *filesystem) root() string { return "team-a/bench-" + f.slug }

func (b *bench) filesystems() []*filesystem {
	endpoint := b.ep.S3
	session := b.sessionEnv
	missing := func(bin string) string {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not installed"
		}
		return ""
	}
	staging := filepath.Join(b.tmp, "s3mount-staging")
	s3mount := &filesystem{name: colS3mount, slug: "s3mount",
		options: "s3mount --endpoint … --path-style --region us-east-1 --imds-endpoint … --sts-endpoint … " +
			"--role-arn " + world.AccessRole + " --external-id … --staging-dir … -f s3://" + world.Bucket + "/team-a/bench-s3mount DIR (defaults otherwise)"}
	if b.s3mountExtra != "" {
		s3mount.options += " " + b.s3mountExtra
	}
	s3mountCmd := func(extra ...string) func(dir string) *exec.Cmd {
		return func(dir string) *exec.Cmd {
			args := append(b.ep.MountArgs(), "--role-arn", world.AccessRole, "--external-id", world.AccessExtID,
				"--staging-dir", staging)
			args = append(args, strings.Fields(b.s3mountExtra)...)
			args = append(args, extra...)
			args = append(args, "-f", "s3://"+world.Bucket+"/"+s3mount.root(), dir)
			cmd := exec.Command(b.s3mountBin, args...)
			cmd.Env = world.CleanEnv()
			return cmd
		}
	}
	s3mount.command = s3mountCmd()
	// The ls -l rows also measure s3mount with listing_attrs (no HEAD per file), on the same
	// objects: listing is read-only.
	b.s3mountLA = &filesystem{name: colS3mount, slug: "s3mount", options: s3mount.options + " -o listing_attrs",
		command: s3mountCmd("-o", "listing_attrs")}
	s3fs := &filesystem{name: colS3fs, slug: "s3fs", missing: missing("s3fs"),
		options: "s3fs " + world.Bucket + ":/team-a/bench-s3fs DIR -f -o url=" + endpoint +
			",use_path_request_style,endpoint=us-east-1 (AWS_ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _SESSION_TOKEN of the role's session; defaults otherwise)"}
	s3fs.command = func(dir string) *exec.Cmd {
		cmd := exec.Command("s3fs", world.Bucket+":/"+s3fs.root(), dir, "-f",
			"-o", "url="+endpoint+",use_path_request_style,endpoint=us-east-1")
		cmd.Env = append(world.CleanEnv(), session()...)
		return cmd
	}
	rclone := func(mode, col string) *filesystem {
		f := &filesystem{name: col, slug: "rclone-" + mode, missing: missing("rclone"),
			options: "rclone mount bench:" + world.Bucket + "/team-a/bench-rclone-" + mode + " DIR --vfs-cache-mode " + mode +
				" --cache-dir … (RCLONE_CONFIG_BENCH_TYPE=s3, _PROVIDER=Minio, _ENDPOINT, _ENV_AUTH=true with the role's session in AWS_*; defaults otherwise)"}
		f.command = func(dir string) *exec.Cmd {
			cmd := exec.Command("rclone", "mount", "bench:"+world.Bucket+"/"+f.root(), dir,
				"--vfs-cache-mode", mode, "--cache-dir", dir+".rclone-cache")
			// Debian's rclone 1.60 fails with AWS_CA_BUNDLE set: the environment is cleaned.
			cmd.Env = append(world.CleanEnv(),
				"RCLONE_CONFIG_BENCH_TYPE=s3", "RCLONE_CONFIG_BENCH_PROVIDER=Minio",
				"RCLONE_CONFIG_BENCH_ENDPOINT="+endpoint, "RCLONE_CONFIG_BENCH_REGION=us-east-1",
				"RCLONE_CONFIG_BENCH_ENV_AUTH=true")
			cmd.Env = append(cmd.Env, session()...)
			return cmd
		}
		return f
	}
	floor := &filesystem{name: colFloor, slug: "floor", floor: true,
		options: "nullfs (integration/cmd/nullfs: go-fuse with s3mount's FUSE settings; reads answered from memory, writes discarded)"}
	floor.command = func(dir string) *exec.Cmd {
		args := []string{"-file", "data/seq=" + i64(b.sz.SeqFile)}
		for i := 0; i < 4; i++ {
			args = append(args, "-file", fmt.Sprintf("data/par%d=%d", i, b.sz.ParFile))
		}
		return exec.Command(b.nullfsBin, append(args, dir)...)
	}
	return []*filesystem{s3mount, s3fs, rclone("off", colRcOff), rclone("writes", colRcWr), floor}
}

// sessionEnv is a fresh copy of the role's session credentials for a peer's environment (what a
// keyless host would hand it), valid for 15 minutes, longer than any one job.
func (b *bench) sessionEnv() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := b.roleCreds.Retrieve(ctx)
	if err != nil {
		b.logf("the role's session credentials for a peer: %v", err)
		return nil
	}
	return []string{"AWS_ACCESS_KEY_ID=" + c.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + c.SecretAccessKey, "AWS_SESSION_TOKEN=" + c.SessionToken}
}

// floorJobs are the jobs the FUSE floor runs: those whose bound is FUSE itself. Random reads are
// served from a local copy after the first pass, and listings need metadata that it does not have.
var floorJobs = map[string]bool{"seqread": true, "seqread4": true, "seqwrite": true, "smallfiles": true, "ttfb": true}

// mount is a running filesystem process and its mountpoint.
type mount struct {
	fs     *filesystem
	dir    string
	cmd    *exec.Cmd
	stderr *tailBuffer
	exited chan struct{}
	err    error // the process's exit, once exited is closed
}

// mountFresh mounts f on a new directory and waits until the mount is live. Every mount is
// registered, so that cleanup can undo it whatever happens.
func (b *bench) mountFresh(ctx context.Context, f *filesystem) (*mount, error) {
	b.mu.Lock()
	b.mountSeq++
	dir := filepath.Join(b.tmp, fmt.Sprintf("mnt-%s-%d", f.slug, b.mountSeq))
	b.mu.Unlock()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	m := &mount{fs: f, dir: dir, cmd: f.command(dir), stderr: &tailBuffer{max: 4096}, exited: make(chan struct{})}
	m.cmd.Stdout, m.cmd.Stderr = m.stderr, m.stderr
	// Own process group: a Ctrl-C reaches s3bench only, which unmounts in order. Pdeathsig: if
	// s3bench is killed outright, the filesystem goes with it.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := m.cmd.Start(); err != nil {
		os.Remove(dir)
		return nil, err
	}
	go func() { m.err = m.cmd.Wait(); close(m.exited) }()
	b.mu.Lock()
	b.mounts[m] = true
	b.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for !isMounted(dir) {
		select {
		case <-m.exited:
			b.unmount(m)
			return nil, fmt.Errorf("exited before mounting (%v): %s", m.err, lastLine(m.stderr.String()))
		case <-ctx.Done():
			b.unmount(m)
			return nil, fmt.Errorf("not mounted: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.unmount(m)
			return nil, fmt.Errorf("not mounted after 60 s: %s", lastLine(m.stderr.String()))
		}
	}
	return m, nil
}

// unmount unmounts, waits for the process to exit (killing it if it hangs) and removes the
// directory. It is safe to call twice.
func (b *bench) unmount(m *mount) {
	b.mu.Lock()
	if !b.mounts[m] {
		b.mu.Unlock()
		return
	}
	delete(b.mounts, m)
	b.mu.Unlock()
	for i := 0; i < 30 && isMounted(m.dir); i++ {
		if exec.Command("fusermount3", "-u", m.dir).Run() == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // busy: a killed reader may still hold a file
	}
	if isMounted(m.dir) {
		// Still busy: stop the daemon (which aborts the connection, so no caller stays blocked
		// in the kernel) and detach.
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
	}
	select {
	case <-m.exited:
	case <-time.After(60 * time.Second): // s3mount and rclone may finish uploads on the way out
		b.logf("%s did not exit 60 s after unmounting; killed", m.fs.name)
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
	}
	if isMounted(m.dir) {
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
	}
	if !isMounted(m.dir) {
		os.Remove(m.dir)
		os.RemoveAll(m.dir + ".rclone-cache")
	}
}

// unmountAll undoes every mount still registered (after a failure or an interrupt).
func (b *bench) unmountAll() {
	b.mu.Lock()
	var all []*mount
	for m := range b.mounts {
		all = append(all, m)
	}
	b.mu.Unlock()
	for _, m := range all {
		b.unmount(m)
	}
}

// isMounted reports whether dir is a mountpoint.
func isMounted(dir string) bool {
	return len(mountsUnder(dir, true)) > 0
}

// mountsUnder lists the mountpoints at dir (exact) or below it.
func mountsUnder(dir string, exact bool) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) <= 4 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || (!exact && strings.HasPrefix(mp, dir+"/")) {
			out = append(out, mp)
		}
	}
	return out
}

func unescapeMountinfo(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// peakRSS is a process's peak resident memory (VmHWM) in MiB.
func peakRSS(pid int) (float64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		var kb int64
		if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &kb); n == 1 {
			return float64(kb) / 1024, true
		}
	}
	return 0, false
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
