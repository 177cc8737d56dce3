//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_DebianPackage: `make deb` builds a package that installs with dpkg -i (Depends:
// fuse3), mounts through an fstab line whose options are only config=, and through the ExecStart
// line of the s3mount@.service template unit with Type=notify; dpkg -r keeps the edited config,
// dpkg -P leaves nothing behind.
//
// systemd is not init in this sandbox, so the unit is not started by systemctl: the test runs its
// ExecStart line itself (with %i filled in) and NOTIFY_SOCKET pointing at a socket it reads, which
// is what systemd would do for Type=notify.
func TestInteg_DebianPackage(t *testing.T) {
	if out, err := exec.Command("dpkg", "-s", "s3mount").CombinedOutput(); err == nil {
		t.Fatalf("an s3mount package is already installed; this test installs and purges its own:\n%s", out)
	}
	root := world.RepoRoot()
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	mk := exec.CommandContext(ctx, "make", "deb")
	mk.Dir = root
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(root, "build", "s3mount_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v, want one build/s3mount_*.deb", debs)
	}
	fields, err := exec.Command("dpkg-deb", "-f", debs[0], "Version", "Depends").Output()
	if err != nil || !strings.Contains(string(fields), "Depends: fuse3") || !regexp.MustCompile(`(?m)^Version: [0-9][0-9A-Za-z.+~]*-1$`).Match(fields) {
		t.Errorf("package fields: %v\n%s\nwant Depends: fuse3 and a Debian version from git", err, fields)
	}
	paths := packagePaths(t, debs[0])
	existedBefore := map[string]bool{}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			existedBefore[p] = true
		}
	}

	if out, err := exec.Command("dpkg", "-i", debs[0]).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("dpkg", "-P", "s3mount").Run() }) // also when the test fails
	for path, want := range map[string]os.FileMode{"/usr/bin/s3mount": 0o755, "/etc/s3mount/example.conf": 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, want mode %v", path, err, want)
		}
	}
	if dest, err := os.Readlink("/sbin/mount.fuse.s3mount"); err != nil || dest != "/usr/bin/s3mount" {
		t.Errorf("/sbin/mount.fuse.s3mount -> %q (%v), want /usr/bin/s3mount", dest, err)
	}
	for _, p := range []string{"/usr/share/man/man8/s3mount.8.gz", "/usr/share/bash-completion/completions/s3mount", "/usr/lib/systemd/system/s3mount@.service"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Conffiles}", "s3mount").Output(); err != nil || !strings.Contains(string(out), "/etc/s3mount/example.conf") {
		t.Errorf("example.conf is not a conffile: %v %s", err, out)
	}

	// One config file is one mount: source, mountpoint and options, with the External ID.
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("packaged")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name := fmt.Sprintf("s3mo-test-%d", time.Now().UnixNano()%1e6)
	conf := "/etc/s3mount/" + name + ".conf"
	var lines []string
	args := w.MountArgs()
	for i := 0; i < len(args); i++ {
		opt := strings.ReplaceAll(strings.TrimPrefix(args[i], "--"), "-", "_")
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			lines = append(lines, opt+"="+args[i+1])
			i++
		} else {
			lines = append(lines, opt)
		}
	}
	lines = append(lines, "source=s3://"+world.Bucket+"/"+prefix, "mountpoint="+dir, "role_arn="+world.AccessRole, "external_id="+world.AccessExtID)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(conf) })

	t.Run("fstab", func(t *testing.T) {
		fstab := filepath.Join(t.TempDir(), "fstab")
		line := fmt.Sprintf("s3://%s/%s %s fuse.s3mount _netdev,nofail,config=%s 0 0\n", world.Bucket, prefix, dir, conf)
		if err := os.WriteFile(fstab, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("mount", "-T", fstab, dir)
		cmd.Env = world.CleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mount -T fstab: %v\n%s", err, out)
		}
		t.Cleanup(func() {
			if isMounted(dir) {
				_ = exec.Command("umount", "-l", dir).Run()
			}
		})
		pids := s3mountPIDs(dir)
		if data, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(data) != "packaged" {
			t.Errorf("read through the fstab mount: %q, %v", data, err)
		}
		assertNoSecretInProc(t, dir)
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
		waitGone(t, pids)
	})

	t.Run("systemd unit ExecStart", func(t *testing.T) {
		execStart := unitExecStart(t, "/usr/lib/systemd/system/s3mount@.service", name)
		sockDir := t.TempDir()
		notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(sockDir, "notify"), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer notify.Close()
		cmd := exec.Command(execStart[0], execStart[1:]...)
		cmd.Env = append(world.CleanEnv(), "NOTIFY_SOCKET="+filepath.Join(sockDir, "notify"))
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			if isMounted(dir) {
				_ = exec.Command("umount", "-l", dir).Run()
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		})
		_ = notify.SetReadDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 256)
		n, err := notify.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
			t.Fatalf("no READY=1 from %v (%v, %q):\n%s", execStart, err, buf[:n], stderr)
		}
		if !isMounted(dir) {
			t.Fatalf("READY=1 but %s is not mounted", dir)
		}
		if data, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(data) != "packaged" {
			t.Errorf("read through the unit's mount: %q, %v", data, err)
		}
		if data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)); strings.Contains(string(data), world.AccessExtID) {
			t.Errorf("the unit's command line shows the External ID")
		}
		_ = cmd.Process.Signal(syscall.SIGTERM) // what systemctl stop sends (KillSignal)
		select {
		case err := <-done:
			done <- err
			if err != nil {
				t.Errorf("s3mount after SIGTERM: %v\n%s", err, stderr)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("s3mount did not stop within 60s of SIGTERM:\n%s", stderr)
		}
		if isMounted(dir) {
			t.Errorf("still mounted after the unit's process stopped")
		}
	})

	// dpkg -r keeps the configuration (an edited conffile), dpkg -P removes it; then nothing of
	// the package is left.
	os.Remove(conf)
	if err := os.WriteFile("/etc/s3mount/example.conf", []byte("# edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dpkg", "-r", "s3mount").CombinedOutput(); err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, out)
	}
	if _, err := os.Stat("/usr/bin/s3mount"); err == nil {
		t.Errorf("dpkg -r left /usr/bin/s3mount")
	}
	if _, err := os.Stat("/etc/s3mount/example.conf"); err != nil {
		t.Errorf("dpkg -r removed the edited conffile: %v", err)
	}
	if out, err := exec.Command("dpkg", "-P", "s3mount").CombinedOutput(); err != nil {
		t.Fatalf("dpkg -P: %v\n%s", err, out)
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil && !existedBefore[p] {
			t.Errorf("left behind after dpkg -P: %s", p)
		}
	}
	if out, err := exec.Command("dpkg", "-s", "s3mount").CombinedOutput(); err == nil {
		t.Errorf("dpkg still knows s3mount after dpkg -P:\n%s", out)
	}
}

// packagePaths lists the absolute paths a .deb holds (files, links and directories).
func packagePaths(t *testing.T, deb string) []string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		p := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		if p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}

// unitExecStart returns the ExecStart command of a template unit for instance, %i filled in.
func unitExecStart(t *testing.T, unit, instance string) []string {
	t.Helper()
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	var typ string
	var argv []string
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if v, ok := strings.CutPrefix(line, "Type="); ok {
			typ = v
		}
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			argv = strings.Fields(strings.ReplaceAll(v, "%i", instance))
		}
	}
	if typ != "notify" || len(argv) == 0 {
		t.Fatalf("%s: Type=%q, ExecStart=%q; want Type=notify and an ExecStart", unit, typ, argv)
	}
	return argv
}

// waitGone waits (bounded) for processes to exit.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Errorf("s3mount (pid %d) still running 30s after umount", pid)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
