//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

var (
	binary string       // the s3mount binary under test
	w      *world.World // shared by every test; each test works under its own prefix
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "s3mount-integ-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binary = filepath.Join(tmp, "s3mount")
	build := exec.Command("go", "build", "-o", binary, "./cmd/s3mount")
	build.Dir = world.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building s3mount: %v\n%s", err, out)
		return 1
	}
	logf, err := os.Create(filepath.Join(os.TempDir(), "s3mount-integ-world.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err = world.Start(ctx, world.Options{Dir: tmp, Log: logf})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the test world (run scripts/install-deps.sh first): %v\n", err)
		return 1
	}
	defer w.Close()
	return m.Run()
}

// testPrefix is a per-test key prefix under team-a/, the part of the bucket the roles may use.
func testPrefix(t *testing.T) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("team-a/%s-%d/", name, time.Now().UnixNano()%1e6)
}

// accessChain is the usual chain: instance profile, then team-a-access with its External ID.
func accessChain() []string {
	return []string{"--role-arn", world.AccessRole, "--external-id", world.AccessExtID}
}

// mounted is a running s3mount process.
type mounted struct {
	dir    string
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// isMounted reports whether dir is a mountpoint in /proc/self/mountinfo.
func isMounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	abs, _ := filepath.Abs(dir)
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && fields[4] == abs {
			return true
		}
	}
	return false
}

// command returns an s3mount command with a clean environment.
func command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = world.CleanEnv()
	return cmd
}

// mount starts s3mount in the foreground on a new directory and waits until the mount is live.
// It unmounts and stops the process when the test ends, also when it fails.
func mount(t *testing.T, target string, args ...string) *mounted {
	t.Helper()
	return mountEnv(t, nil, target, args...)
}

// mountEnv is mount with extra environment variables (the environment is otherwise free of AWS_
// variables).
func mountEnv(t *testing.T, env []string, target string, args ...string) *mounted {
	t.Helper()
	return mountWith(t, env, append(w.MountArgs(), args...), target)
}

// mountWith mounts target with exactly args (not the world's endpoints).
func mountWith(t *testing.T, env, args []string, target string) *mounted {
	t.Helper()
	dir := t.TempDir()
	all := append(append([]string(nil), args...), "-f", target, dir)
	m := &mounted{dir: dir, cmd: command(all...), stderr: &syncBuffer{}, done: make(chan error, 1)}
	m.cmd.Env = append(m.cmd.Env, env...)
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.done <- m.cmd.Wait() }()
	t.Cleanup(func() { m.unmount(t) })
	deadline := time.Now().Add(60 * time.Second)
	for !isMounted(dir) {
		select {
		case err := <-m.done:
			m.done <- err
			t.Fatalf("s3mount exited before mounting (%v):\n%s", err, m.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount did not appear within 60s:\n%s", m.stderr)
		}
	}
	return m
}

// unmount unmounts and waits for the process to exit, killing it if it hangs.
func (m *mounted) unmount(t *testing.T) {
	t.Helper()
	if isMounted(m.dir) {
		if out, err := exec.Command("fusermount3", "-u", m.dir).CombinedOutput(); err != nil {
			t.Logf("fusermount3 -u: %v: %s; detaching", err, out)
			_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
		}
	}
	select {
	case err := <-m.done:
		m.done <- err
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		t.Errorf("s3mount did not exit after unmount:\n%s", m.stderr)
	}
	if t.Failed() {
		t.Logf("s3mount stderr:\n%s", m.stderr)
	}
}

// path returns the mounted path of a name inside the mount.
func (m *mounted) path(parts ...string) string {
	return filepath.Join(append([]string{m.dir}, parts...)...)
}

// runFailing runs s3mount on a fresh directory, expecting it to fail; it returns the exit code and
// stderr, and asserts that nothing was left mounted.
func runFailing(t *testing.T, args ...string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	cmd := command(append(args, dir)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	go func() {
		<-ctx.Done()
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}()
	err := cmd.Run()
	if isMounted(dir) {
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		t.Errorf("a failed s3mount left %s mounted", dir)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running s3mount: %v", err)
	}
	return code, stderr.String()
}
