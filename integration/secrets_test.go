//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// procPoller is what an attacker runs: it reads /proc/*/cmdline as fast as it can and notes every
// sighting of the secret in the command line of a process that concerns dir (its command line
// names dir). New processes are read on every pass for their first seconds (a process is most
// likely to show a secret just after its exec), the others once they concern dir.
type procPoller struct {
	secret, dir []byte
	stop        chan struct{}
	done        chan struct{}

	mu        sync.Mutex // protects the following
	sightings []sighting
	children  int // background children of s3mount seen (by their environment)
}

// sighting is the secret seen in a process's command line.
type sighting struct {
	pid     int
	at      time.Time
	child   bool // a background child, started by s3mount's own code
	wasMask bool // the same process had shown a masked command line before: its main had run
	cmdline string
}

func startPoller(secret, dir string) *procPoller {
	p := &procPoller{secret: []byte(secret), dir: []byte(dir), stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

type procState struct {
	first    time.Time
	relevant bool // its command line named dir
	child    bool
	masked   bool // seen as an s3mount process with dir and without the secret
}

func (p *procPoller) run() {
	// A thread of its own, given back when done: a locked thread whose goroutine exits is ended
	// by the runtime, and the kernel then kills every child forked from it with Pdeathsig, such as
	// the test world's MinIO.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(p.done)
	procs := map[int]*procState{}
	proc, err := os.Open("/proc")
	if err != nil {
		return
	}
	defer proc.Close()
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		proc.Seek(0, 0)
		names, _ := proc.Readdirnames(-1)
		now := time.Now()
		for _, name := range names {
			pid, err := strconv.Atoi(name)
			if err != nil {
				continue
			}
			st := procs[pid]
			if st == nil {
				st = &procState{first: now}
				procs[pid] = st
			}
			if !st.relevant && now.Sub(st.first) > 3*time.Second {
				continue
			}
			cmdline := readInto(buf, "/proc/"+name+"/cmdline")
			if !bytes.Contains(cmdline, p.dir) {
				continue
			}
			st.relevant = true
			if !st.child {
				if env := readInto(make([]byte, 64<<10), "/proc/"+name+"/environ"); bytes.Contains(env, []byte("\x00S3MOUNT_DAEMON_CHILD=1\x00")) || bytes.HasPrefix(env, []byte("S3MOUNT_DAEMON_CHILD=1\x00")) {
					// The environment was read after the command line: if it is the child's,
					// so was the command line (an exec replaces both; there is no second one).
					st.child = true
					p.mu.Lock()
					p.children++
					p.mu.Unlock()
				}
			}
			if !bytes.Contains(cmdline, p.secret) {
				if exe, _ := os.Readlink("/proc/" + name + "/exe"); exe == binary {
					st.masked = true
				}
				continue
			}
			p.mu.Lock()
			p.sightings = append(p.sightings, sighting{pid: pid, at: now, child: st.child, wasMask: st.masked,
				cmdline: string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))})
			p.mu.Unlock()
		}
	}
}

// readInto reads a small /proc file into buf.
func readInto(buf []byte, path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	n, _ := f.Read(buf)
	return buf[:n]
}

// finish stops the poller and fails t for every sighting after s3mount's own code had run: in a
// background child (started by s3mount), in a process that had shown a masked command line, or
// after the mount was live (live is when the test saw it). What remains is the window between a
// process's exec and its main, which the kernel opens and no program can close.
func (p *procPoller) finish(t *testing.T, live time.Time, wantChild bool) {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	reported := map[int]bool{}
	for _, s := range p.sightings {
		if reported[s.pid] {
			continue
		}
		reported[s.pid] = s.child || s.wasMask || !live.IsZero() && s.at.After(live)
		switch {
		case s.child:
			t.Errorf("the background child (pid %d) showed the External ID: %s", s.pid, s.cmdline)
		case s.wasMask:
			t.Errorf("pid %d showed the External ID after it had masked it: %s", s.pid, s.cmdline)
		case !live.IsZero() && s.at.After(live):
			t.Errorf("pid %d showed the External ID after the mount was live: %s", s.pid, s.cmdline)
		}
	}
	if wantChild && p.children == 0 {
		t.Errorf("the poller never saw the background child: it proves nothing about it")
	}
}

// TestInteg_SecretsNeverInProcessList: an attacker polling every /proc/*/cmdline never sees the
// External ID once s3mount's main has run, in any spelling of the option, in the foreground, in
// the background child and through the mount.fuse.s3mount helper.
func TestInteg_SecretsNeverInProcessList(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("secret")); err != nil {
		t.Fatal(err)
	}
	target := "s3://" + world.Bucket + "/" + prefix
	role, id := world.AccessRole, world.AccessExtID
	conf := filepath.Join(t.TempDir(), "mount.conf")
	if err := os.WriteFile(conf, []byte("role_arn="+role+"\nexternal_id="+id+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	helper := filepath.Join(bin, "mount.fuse.s3mount")
	if err := os.Symlink(binary, helper); err != nil {
		t.Fatal(err)
	}
	spellings := []struct {
		name   string
		args   []string // for s3mount
		opts   string   // for the helper's -o (only -o spellings exist there); "" skips the helper
		inArgv bool     // the secret is on the command line at all
	}{
		{"--external-id X", []string{"--role-arn", role, "--external-id", id}, "", true},
		{"--external-id=X", []string{"--role-arn", role, "--external-id=" + id}, "", true},
		{"--external_id X", []string{"--role-arn", role, "--external_id", id}, "", true},
		{"-o external_id=X", []string{"-o", "role_arn=" + role + ",external_id=" + id}, "role_arn=" + role + ",external_id=" + id, true},
		{"-o external-id=X", []string{"-o", "role_arn=" + role + ",external-id=" + id}, "role_arn=" + role + ",external-id=" + id, true},
		{`-o external_id="X"`, []string{"-o", "role_arn=" + role + `,external_id="` + id + `"`}, "role_arn=" + role + `,external_id="` + id + `"`, true},
		{"-oexternal_id=X", []string{"--role-arn", role, "-oexternal_id=" + id}, "", true},
		{"config file", []string{"--config", conf}, "config=" + conf, false},
	}
	for _, sp := range spellings {
		for _, mode := range []string{"foreground", "background", "mount helper"} {
			if mode == "mount helper" && sp.opts == "" {
				continue
			}
			t.Run(sp.name+"/"+mode, func(t *testing.T) {
				dir := t.TempDir()
				p := startPoller(id, dir)
				var live time.Time // when the test saw the mount live; zero if it never did
				// Registered first, so it runs last: after the unmount, also when the test fails.
				t.Cleanup(func() { p.finish(t, live, mode != "foreground" && !live.IsZero()) })
				switch mode {
				case "foreground":
					cmd := command(append(append(append(w.MountArgs(), sp.args...), "-f"), target, dir)...)
					var stderr syncBuffer
					cmd.Stderr = &stderr
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					done := make(chan error, 1)
					go func() { done <- cmd.Wait() }()
					t.Cleanup(func() { unmountAndWait(t, dir, done, cmd) })
					deadline := time.Now().Add(60 * time.Second)
					for !isMounted(dir) && time.Now().Before(deadline) {
						select {
						case err := <-done:
							done <- err
							t.Fatalf("s3mount exited before mounting (%v): %s", err, stderr.String())
						case <-time.After(5 * time.Millisecond):
						}
					}
				case "background":
					code, out := runCommand(t, append(append(w.MountArgs(), sp.args...), target, dir)...)
					t.Cleanup(func() { unmountAndWait(t, dir, nil, nil) })
					if code != 0 {
						t.Fatalf("background mount exited %d: %s", code, out)
					}
				case "mount helper":
					opts := strings.Join([]string{"_netdev", "endpoint=" + w.MinIO.Endpoint, "path_style", "region=us-east-1",
						"imds_endpoint=" + w.Emu.IMDSEndpoint(), "sts_endpoint=" + w.Emu.STSEndpoint(), sp.opts}, ",")
					cmd := exec.Command(helper, target, dir, "-o", opts)
					cmd.Env = world.CleanEnv()
					out, err := cmd.CombinedOutput()
					t.Cleanup(func() { unmountAndWait(t, dir, nil, nil) })
					if err != nil {
						t.Fatalf("mount.fuse.s3mount: %v: %s", err, out)
					}
				}
				if !isMounted(dir) {
					t.Fatal("not mounted")
				}
				live = time.Now()
				if data, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(data) != "secret" {
					t.Errorf("read through the mount: %q, %v", data, err)
				}
				time.Sleep(50 * time.Millisecond) // the poller's passes over the live mount
				assertNoSecretInProc(t, dir)
			})
		}
	}
	record(t, "secrets", "External ID in the process list", "never seen by a /proc poller after s3mount's main ran: 7 spellings and a config file, foreground, background child and mount helper")
}

// unmountAndWait unmounts dir and waits until no s3mount process serves it (or the foreground
// process, when given, has exited).
func unmountAndWait(t *testing.T, dir string, done chan error, cmd *exec.Cmd) {
	t.Helper()
	if isMounted(dir) {
		if out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
			t.Logf("fusermount3 -u: %v: %s", err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	}
	if done != nil {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("s3mount did not exit after unmount")
		}
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(s3mountPIDs(dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range s3mountPIDs(dir) {
		t.Errorf("s3mount pid %d still runs after unmount", pid)
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	}
}

// TestInteg_ConfigFileRefused: a config file others may change, or that shows its External ID to
// everyone, stops the mount before anything starts, naming the file and the fix.
func TestInteg_ConfigFileRefused(t *testing.T) {
	target := "s3://" + world.Bucket + "/" + testPrefix(t)
	dir := t.TempDir()
	conf := func(mode os.FileMode) string {
		p := filepath.Join(dir, fmt.Sprintf("mount-%o.conf", mode))
		if err := os.WriteFile(p, []byte("role_arn="+world.AccessRole+"\nexternal_id="+world.AccessExtID+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		mode os.FileMode
		fix  string
	}{{0o644, "chmod 600"}, {0o666, "chmod go-w"}} {
		p := conf(c.mode)
		for _, fg := range []bool{true, false} {
			args := append(append(w.MountArgs(), "--config", p), target)
			if fg {
				args = append(args, "-f")
			}
			code, out := runFailing(t, args...)
			if code != 2 || !strings.Contains(out, p) || !strings.Contains(out, c.fix) || strings.Contains(out, world.AccessExtID) {
				t.Errorf("config file mode %04o (foreground %v): exit %d, output %q; want 2, naming the file and %q, without the External ID", c.mode, fg, code, out, c.fix)
			}
		}
	}
}

// TestInteg_DaemonNotDumpable: an s3mount process of an ordinary user is not dumpable from its
// start: its /proc/PID files belong to root, and another process of the same user cannot read its
// environment or memory (nor ptrace it). FUSE mounts by users other than root are not possible in
// the test's sandbox (fusermount3 cannot open /dev/fuse), so the process is held before mounting,
// holding the instance profile's credentials and waiting for an STS that never answers.
func TestInteg_DaemonNotDumpable(t *testing.T) {
	name := fmt.Sprintf("s3ms%d", time.Now().UnixNano()%1e6)
	if out, err := exec.Command("useradd", "-m", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", "-r", name).Run() })
	uid, gid, home := lookupUser(t, name)
	top, err := os.MkdirTemp("", "s3ms-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o755)
	bin := filepath.Join(top, "s3mount")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(top, "mnt")
	os.Mkdir(dir, 0o755)
	os.Chown(dir, uid, gid)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	asUser := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(world.CleanEnv(), "HOME="+home)
		cmd.Dir = home
		return cmd
	}
	cmd := asUser(exec.Command(bin, "--imds-endpoint", w.Emu.IMDSEndpoint(), "--sts-endpoint", "http://"+ln.Addr().String(),
		"--role-arn", world.AccessRole, "-f", "s3://"+world.Bucket+"/x", dir))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	var st syscall.Stat_t
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/environ", pid), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid == 0 || time.Now().After(deadline) {
			break
		}
	}
	if st.Uid != 0 {
		t.Errorf("/proc/%d/environ belongs to uid %d after 10s: the process is dumpable", pid, st.Uid)
	}
	alive := func() {
		t.Helper()
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if !strings.Contains(string(status), "\nState:\tS") && !strings.Contains(string(status), "\nState:\tR") {
			t.Fatalf("s3mount is no longer running, the test proves nothing: %s", status)
		}
	}
	alive()
	for _, f := range []string{"environ", "mem"} {
		out, err := asUser(exec.Command("dd", "if="+fmt.Sprintf("/proc/%d/%s", pid, f), "of=/dev/null", "bs=1", "count=1")).CombinedOutput()
		if err == nil {
			t.Errorf("another process of the same user read /proc/%d/%s: %s", pid, f, out)
		}
	}
	alive()
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t", uid)) {
		t.Errorf("the process does not run as %s (uid %d): %s", name, uid, status)
	}
}

// lookupUser returns a local user's uid, gid and home directory.
func lookupUser(t *testing.T, name string) (uid, gid int, home string) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, u.HomeDir
}
