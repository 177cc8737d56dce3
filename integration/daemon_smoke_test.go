//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// s3mountPIDs returns the pids of running s3mount processes whose command line mentions dir.
func s3mountPIDs(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasSuffix(exe, "s3mount") && bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// assertNoSecretInProc checks that no s3mount process serving dir shows the External ID in its
// command line or environment (what ps and /proc show to other users).
func assertNoSecretInProc(t *testing.T, dir string) {
	t.Helper()
	pids := s3mountPIDs(dir)
	if len(pids) == 0 {
		t.Fatalf("no s3mount process found for %s", dir)
	}
	for _, pid := range pids {
		for _, f := range []string{"cmdline", "environ"} {
			data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
			if bytes.Contains(data, []byte(world.AccessExtID)) {
				t.Errorf("/proc/%d/%s shows the External ID: %q", pid, f, bytes.ReplaceAll(data, []byte{0}, []byte{' '}))
			}
		}
	}
}

func TestInteg_DaemonBackgroundReturnsOnceMounted(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("bg")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := append(append(w.MountArgs(), accessChain()...), "s3://"+world.Bucket+"/"+prefix, dir)
	code, out := runCommand(t, args...)
	if code != 0 {
		t.Fatalf("background mount exited %d: %s", code, out)
	}
	t.Cleanup(func() {
		exec.Command("fusermount3", "-u", dir).Run()
		deadline := time.Now().Add(10 * time.Second)
		for len(s3mountPIDs(dir)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	if !isMounted(dir) {
		t.Fatal("the command returned 0 before the mount was live")
	}
	if data, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(data) != "bg" {
		t.Errorf("read from the background mount: %q, %v", data, err)
	}
	assertNoSecretInProc(t, dir)
	record(t, "daemon", "background mount", "the command returns 0 only once the mount is live; no External ID in /proc/PID/cmdline or environ")

	// A background mount that cannot work returns the child's message and code.
	bad := t.TempDir()
	code, out = runCommand(t, append(w.MountArgs(), "--role-arn", world.AccessRole, "--external-id", "wrong-id-7", "s3://"+world.Bucket+"/"+prefix, bad)...)
	if code != 11 || !strings.Contains(out, "External ID") || isMounted(bad) {
		t.Errorf("failing background mount: exit %d, mounted=%v, output %s", code, isMounted(bad), out)
	}
}

func TestInteg_DaemonForegroundHidesSecrets(t *testing.T) {
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, "-o", "role_arn="+world.AccessRole+",external_id="+world.AccessExtID)
	assertNoSecretInProc(t, m.dir)
}

// TestInteg_DaemonSIGTERMDuringLargeWrite: the writer is still writing when SIGTERM arrives; the
// daemon waits for it (shutdown timeout) and either the file is committed complete, or s3mount
// exits 14 naming it. Never a partial object.
func TestInteg_DaemonSIGTERMDuringLargeWrite(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	for _, c := range []struct {
		name     string
		grace    string
		finishes bool // the writer finishes within the grace period
	}{{"writer finishes", "20s", true}, {"writer outlasts the grace period", "2s", false}} {
		t.Run(c.name, func(t *testing.T) {
			m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--shutdown-timeout", c.grace)...)
			name := "big-" + strconv.FormatBool(c.finishes)
			data := randomBytes(31, 40<<20)
			f, err := os.Create(m.path(name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(data[:8<<20]); err != nil {
				t.Fatal(err)
			}
			m.cmd.Process.Signal(syscall.SIGTERM)
			writeErr := make(chan error, 1)
			go func() {
				pause := 50 * time.Millisecond
				if !c.finishes {
					pause = 400 * time.Millisecond
				}
				for off := 8 << 20; off < len(data); off += 4 << 20 {
					time.Sleep(pause)
					if _, err := f.Write(data[off : off+4<<20]); err != nil {
						f.Close()
						writeErr <- err
						return
					}
				}
				writeErr <- f.Close()
			}()
			werr := <-writeErr
			exit := <-m.done
			m.done <- exit
			code := 0
			if ee, ok := exit.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			got, gerr := w.Get(ctx, prefix+name)
			complete := gerr == nil && bytes.Equal(got, data)
			switch {
			case c.finishes && (werr != nil || code != 0 || !complete):
				t.Errorf("writer finished in time: close=%v exit=%d complete=%v", werr, code, complete)
			case !c.finishes && (code != 14 || !strings.Contains(m.stderr.String(), name)):
				t.Errorf("writer outlasted the grace: exit %d (want 14 naming the file); stderr:\n%s", code, m.stderr)
			case gerr == nil && !complete:
				t.Errorf("a partial object is visible (%d bytes)", len(got))
			}
			record(t, "daemon", "SIGTERM during a 40 MiB write ("+c.name+")", fmt.Sprintf("exit %d; writer saw %s; S3 holds the complete file: %v (never a partial one)", code, errno(werr), complete))
		})
	}
}

// TestInteg_FstabMount: a fuse.s3mount line in an fstab, mounted with mount(8) (through
// mount.fuse3, which runs s3mount from PATH) and with the mount.fuse.s3mount helper link.
func TestInteg_FstabMount(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("fstab")); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "s3mount")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(bin, "mount.fuse.s3mount")); err != nil {
		t.Fatal(err)
	}
	opts := strings.Join([]string{"_netdev", "nofail", "noauto", "x-systemd.automount", "nosuid", "nodev",
		"endpoint=" + w.MinIO.Endpoint, "path_style", "region=us-east-1", "imds_endpoint=" + w.Emu.IMDSEndpoint(),
		"sts_endpoint=" + w.Emu.STSEndpoint(), "role_arn=" + world.AccessRole, "external_id=" + world.AccessExtID}, ",")
	env := append(world.CleanEnv(), "PATH="+bin+":"+os.Getenv("PATH"))
	// mount(8) runs helpers with a fixed PATH, so it finds s3mount through /sbin/mount.fuse.s3mount
	// (what make install puts there). Put ours there for the test, and restore what was there.
	const helper = "/sbin/mount.fuse.s3mount"
	if _, err := os.Lstat(helper); err == nil {
		if err := os.Rename(helper, helper+".saved-by-test"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Rename(helper+".saved-by-test", helper) })
	}
	if err := os.Symlink(binary, helper); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(helper) })
	for _, how := range []string{"mount -T", "mount.fuse.s3mount"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			fstab := filepath.Join(t.TempDir(), "fstab")
			line := fmt.Sprintf("s3://%s/%s %s fuse.s3mount %s 0 0\n", world.Bucket, prefix, dir, opts)
			os.WriteFile(fstab, []byte(line), 0o644)
			var cmd *exec.Cmd
			if how == "mount -T" {
				cmd = exec.Command("mount", "-T", fstab, dir)
			} else {
				cmd = exec.Command(filepath.Join(bin, "mount.fuse.s3mount"), "s3://"+world.Bucket+"/"+prefix, dir, "-o", opts)
			}
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", how, err, out)
			}
			t.Cleanup(func() { exec.Command("umount", dir).Run() })
			if data, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(data) != "fstab" {
				t.Errorf("read through the fstab mount: %q, %v", data, err)
			}
			assertNoSecretInProc(t, dir)
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount: %v %s", err, out)
			}
			record(t, "daemon", "fstab line mounted with "+how, "mounted with fstab-only options ignored; umount works")
		})
	}
}
