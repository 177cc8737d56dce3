//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/world"
)

// localUser is a second, unprivileged local user, created for one test.
type localUser struct {
	name     string
	uid, gid uint32
}

var userSeq atomic.Int32

// newLocalUser creates a local user with useradd and removes it (userdel -r) when the test ends.
func newLocalUser(t *testing.T) localUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating a second local user needs root")
	}
	name := fmt.Sprintf("s3mu%d-%d", os.Getpid()%100000, userSeq.Add(1))
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", "-r", name).CombinedOutput(); err != nil {
			t.Logf("userdel -r %s: %v: %s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return localUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

// run runs a command as the user (no supplementary groups) and returns its combined output.
func (u localUser) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// reachable lets other users walk to dir: t.TempDir()'s directories are private to root.
func reachable(t *testing.T, dir string) {
	t.Helper()
	for d := filepath.Dir(dir); d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInteg_OtherUserUnderAllowOther: without allow_other a second local user cannot reach the
// mount at all. Under allow_other it reaches the mount
// only as the modes and owners shown allow: it cannot read, overwrite, delete or chown root's
// 0600 file, nor give its own file to root, and it can read a 0644 one. With
// no_default_permissions nothing checks it (the documented opt-out): all of that succeeds.
func TestInteg_OtherUserUnderAllowOther(t *testing.T) {
	other := newLocalUser(t)
	prefix := testPrefix(t)
	target := "s3://" + world.Bucket + "/" + strings.TrimSuffix(prefix, "/")
	m := mount(t, target, append(accessChain(), "-o", "allow_other", "--metadata-ttl", "0")...)
	reachable(t, m.dir)
	if err := os.WriteFile(m.path("secret"), []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.path("public"), []byte("for all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.path("drop"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m.path("drop"), 0o777); err != nil {
		t.Fatal(err)
	}
	uid := strconv.Itoa(int(other.uid))
	attempts := []struct {
		what string
		cmd  []string
	}{
		{"read root's 0600 file", []string{"cat", m.path("secret")}},
		{"overwrite root's 0600 file", []string{"sh", "-c", "echo pwned > " + m.path("secret")}},
		{"delete root's 0600 file", []string{"rm", "-f", m.path("secret")}},
		{"chown root's file to itself", []string{"chown", uid, m.path("secret")}},
		{"chmod root's file", []string{"chmod", "0666", m.path("secret")}},
	}
	for _, a := range attempts {
		if out, err := other.run(a.cmd[0], a.cmd[1:]...); err == nil {
			t.Errorf("allow_other: another user could %s: %s", a.what, out)
		}
	}
	if out, err := other.run("cat", m.path("public")); err != nil || out != "for all" {
		t.Errorf("allow_other: another user cannot read a 0644 file: %q %v", out, err)
	}
	mine := filepath.Join(m.path("drop"), "mine")
	if out, err := other.run("touch", mine); err != nil {
		t.Fatalf("another user cannot create a file in a 0777 directory: %v %s", err, out)
	}
	if out, err := other.run("chown", "0:0", mine); err == nil {
		t.Errorf("allow_other: another user gave its file to root: %s", out)
	}
	if data, err := os.ReadFile(m.path("secret")); err != nil || string(data) != "root only" {
		t.Errorf("root's file after the attempts: %q %v", data, err)
	}
	if st, err := os.Stat(m.path("secret")); err != nil || st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("root's file after the attempts: %v %v", st.Mode(), err)
	}
	record(t, "security", "allow_other: another user reads, overwrites, deletes, chowns root's 0600 file", "each refused (EACCES/EPERM); a 0644 file is readable")

	t.Run("without allow_other", func(t *testing.T) {
		private := mount(t, target, accessChain()...)
		reachable(t, private.dir)
		if out, err := other.run("cat", private.path("public")); err == nil {
			t.Errorf("without allow_other another user read a file: %q", out)
		}
		if out, err := other.run("stat", private.dir); err == nil {
			t.Errorf("without allow_other another user could stat the mount: %s", out)
		}
	})

	t.Run("allow_root by root", func(t *testing.T) {
		rootOnly := mount(t, target, append(accessChain(), "-o", "allow_root")...)
		reachable(t, rootOnly.dir)
		if out, err := other.run("cat", rootOnly.path("public")); err == nil {
			t.Errorf("allow_root let another user read a file: %q", out)
		}
		if data, err := os.ReadFile(rootOnly.path("public")); err != nil || string(data) != "for all" {
			t.Errorf("allow_root: root reads %q, %v", data, err)
		}
	})

	t.Run("no_default_permissions", func(t *testing.T) {
		open := mount(t, target, append(accessChain(), "-o", "allow_other,no_default_permissions", "--metadata-ttl", "0")...)
		reachable(t, open.dir)
		if out, err := other.run("cat", open.path("secret")); err != nil || out != "root only" {
			t.Errorf("no_default_permissions: another user could not read the 0600 file: %q %v", out, err)
		}
		if out, err := other.run("chown", "0:0", filepath.Join(open.path("drop"), "mine")); err != nil {
			t.Errorf("no_default_permissions: chown refused: %v %s", err, out)
		}
		if out, err := other.run("rm", "-f", open.path("secret")); err != nil {
			t.Errorf("no_default_permissions: delete refused: %v %s", err, out)
		}
		if _, err := os.Stat(open.path("secret")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("no_default_permissions: the file is still there: %v", err)
		}
	})
}

// mountFlags returns the mount options /proc/self/mountinfo shows for dir.
func mountFlags(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 5 && fields[4] == dir {
			return fields[5]
		}
	}
	t.Fatalf("%s is not in mountinfo", dir)
	return ""
}

// TestInteg_SetuidBitsFromTheBucket: setuid and setgid bits that a writer of the bucket stored
// on objects do not appear (so root's cp -a out of the mount makes no setuid file) and the mount
// is nosuid,nodev, unless suid is given; a stored device type shows as a regular file.
func TestInteg_SetuidBitsFromTheBucket(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	objects := map[string]uint32{
		"suid-root": syscall.S_IFREG | syscall.S_ISUID | 0o755,
		"sgid-root": syscall.S_IFREG | syscall.S_ISGID | 0o755,
		"device":    syscall.S_IFCHR | 0o666,
	}
	for k, mode := range objects {
		if _, err := w.Admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + k),
			Body: bytes.NewReader([]byte("#!/bin/sh\nid\n")), Metadata: map[string]string{"mode": strconv.Itoa(int(mode)), "uid": "0", "gid": "0"}}); err != nil {
			t.Fatal(err)
		}
	}
	target := "s3://" + world.Bucket + "/" + strings.TrimSuffix(prefix, "/")
	m := mount(t, target, accessChain()...)
	for _, k := range []string{"suid-root", "sgid-root"} {
		st, err := os.Stat(m.path(k))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || st.Mode().Perm() != 0o755 {
			t.Errorf("%s shows mode %v, want -rwxr-xr-x", k, st.Mode())
		}
	}
	if st, err := os.Lstat(m.path("device")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("a stored character device shows as %v (%v), want a regular file", st.Mode(), err)
	}
	local := t.TempDir()
	if out, err := exec.Command("cp", "-a", m.path("suid-root"), local).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	if st, err := os.Stat(filepath.Join(local, "suid-root")); err != nil || st.Mode()&os.ModeSetuid != 0 {
		t.Errorf("cp -a out of the mount made %v (%v), want no setuid bit", st.Mode(), err)
	}
	if flags := mountFlags(t, m.dir); !strings.Contains(flags, "nosuid") || !strings.Contains(flags, "nodev") {
		t.Errorf("mount options %q, want nosuid and nodev", flags)
	}
	record(t, "security", "setuid-root object, root's cp -a out of the mount", "setuid bit hidden, copy not setuid; mount nosuid,nodev; a stored device shows as a regular file")

	t.Run("suid", func(t *testing.T) {
		m := mount(t, target, append(accessChain(), "-o", "suid")...)
		st, err := os.Stat(m.path("suid-root"))
		if err != nil || st.Mode()&os.ModeSetuid == 0 {
			t.Errorf("with suid: mode %v (%v), want the setuid bit", st.Mode(), err)
		}
		if flags := mountFlags(t, m.dir); strings.Contains(flags, "nosuid") {
			t.Errorf("with suid: mount options %q, want no nosuid", flags)
		}
	})
}

// peakRSS returns a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestInteg_ReadlinkOfHugeObject: a 200 MiB object that claims to be a symbolic link is never
// downloaded by ls -l or readlink, which fails with ENAMETOOLONG; the daemon stays small.
func TestInteg_ReadlinkOfHugeObject(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	const size = 200 << 20
	if _, err := w.Admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + "link"),
		Body: bytes.NewReader(make([]byte, size)), Metadata: map[string]string{"mode": strconv.Itoa(syscall.S_IFLNK | 0o777)}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Admin.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(prefix + "link")})
	})
	m := mount(t, "s3://"+world.Bucket+"/"+strings.TrimSuffix(prefix, "/"), accessChain()...)
	out, _ := exec.Command("ls", "-l", m.dir).CombinedOutput()
	if _, err := os.Readlink(m.path("link")); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("readlink of a 200 MiB link: %v, want ENAMETOOLONG (ls -l said %s)", err, out)
	}
	if peak := peakRSS(t, m.cmd.Process.Pid); peak > 100<<20 {
		t.Errorf("the daemon's peak RSS is %d MiB after readlink of a 200 MiB link, want under 100 MiB", peak>>20)
	}
	if !strings.Contains(m.stderr.String(), "too large for a symbolic link") {
		t.Errorf("the refusal is not logged:\n%s", m.stderr)
	}
	record(t, "security", "200 MiB object claimed as a symlink, ls -l and readlink", "ENAMETOOLONG, logged; not downloaded, daemon stays under 100 MiB")
}

// TestInteg_BadInputUnsafePaths: a cache, staging or log path that another local user could
// redirect (a link it planted, a directory it can write or owns) is refused before anything is
// mounted, with exit 15 and a message naming the path and the fix; nothing is written where the
// planted link points.
func TestInteg_BadInputUnsafePaths(t *testing.T) {
	other := newLocalUser(t)
	base := t.TempDir()
	reachable(t, filepath.Join(base, "x"))
	victim := filepath.Join(base, "root-only")
	os.Mkdir(victim, 0o700)
	shared := filepath.Join(base, "tmp") // like /tmp: sticky, anyone may create in it
	os.Mkdir(shared, 0o700)
	syscall.Chmod(shared, 0o1777)
	open := filepath.Join(base, "open") // writable by anyone, not sticky
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	theirs := filepath.Join(base, "theirs")
	os.Mkdir(theirs, 0o755)
	os.Chown(theirs, int(other.uid), int(other.gid))
	for _, c := range [][]string{
		{"ln", "-s", victim, filepath.Join(shared, "cache")},
		{"ln", "-s", filepath.Join(victim, "s3mount.log"), filepath.Join(shared, "s3mount.log")},
		{"touch", filepath.Join(shared, "their.log")},
	} {
		if out, err := other.run(c[0], c[1:]...); err != nil {
			t.Fatalf("%v as the other user: %v %s", c, err, out)
		}
	}
	target := "s3://" + world.Bucket + "/team-a"
	cases := []struct {
		name     string
		args     []string
		contains string
	}{
		{"cache_dir a link another user planted", []string{"-f", "--cache-dir", filepath.Join(shared, "cache")}, "is a symbolic link"},
		{"staging_dir a link another user planted", []string{"-f", "--staging-dir", filepath.Join(shared, "cache")}, "is a symbolic link"},
		{"log_file a link another user planted", []string{"-f", "--log-file", filepath.Join(shared, "s3mount.log")}, "is a symbolic link"},
		{"log_file a link another user planted, in the background", []string{"--log-file", filepath.Join(shared, "s3mount.log")}, "is a symbolic link"},
		{"log_file another user's file", []string{"-f", "--log-file", filepath.Join(shared, "their.log")}, "is owned by uid " + strconv.Itoa(int(other.uid))},
		{"cache_dir in a directory anyone can write", []string{"-f", "--cache-dir", filepath.Join(open, "cache")}, "is writable by group or others (mode 0777)"},
		{"staging_dir in a directory another user owns", []string{"-f", "--staging-dir", filepath.Join(theirs, "staging")}, "is owned by uid " + strconv.Itoa(int(other.uid))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append(append([]string{}, w.MountArgs()...), accessChain()...), c.args...)
			code, stderr := runFailing(t, append(args, target)...)
			if code != 15 || !strings.Contains(stderr, c.contains) || !strings.Contains(stderr, "refusing the") {
				t.Errorf("exit %d, want 15 with %q; stderr:\n%s", code, c.contains, stderr)
			}
			if entries, _ := os.ReadDir(victim); len(entries) != 0 {
				t.Errorf("s3mount wrote where the planted link points: %v", entries)
			}
			record(t, "bad-input", c.name, fmt.Sprintf("exit %d: %s", code, firstLine(stderr)))
		})
	}
}
