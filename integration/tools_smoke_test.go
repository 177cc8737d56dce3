//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// makeTree writes a tree of files of various sizes (some several MiB), with nested directories,
// modes and a symlink, and returns its root.
func makeTree(t *testing.T, seed int64) string {
	t.Helper()
	root := t.TempDir()
	for i := 0; i < 120; i++ {
		dir := filepath.Join(root, fmt.Sprintf("d%d", i%7), fmt.Sprintf("e%d", i%3))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		size := 100 + (i*7919)%20000
		if i%40 == 0 {
			size = 9<<20 + i // a few larger files, more than one part
		}
		p := filepath.Join(dir, fmt.Sprintf("f%03d.bin", i))
		if err := os.WriteFile(p, randomBytes(seed+int64(i), size), 0o644); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			os.Chmod(p, 0o600)
		}
		mt := time.Date(2024, 1, 1+i%28, 12, 0, i%60, 0, time.UTC)
		os.Chtimes(p, mt, mt)
	}
	if err := os.Symlink("d0/e0/f000.bin", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	// Directories with modes of their own (tools set them after filling the directory).
	os.Chmod(filepath.Join(root, "d1"), 0o750)
	os.Chmod(filepath.Join(root, "d2", "e1"), 0o700)
	return root
}

// run runs a command and fails the test with its output if it fails.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(world.CleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// needTool fails the test if name, which scripts/install-deps.sh installs, is missing.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is required (scripts/install-deps.sh)", name)
	}
}

// sameTree compares two trees with diff -r and the modes of regular files and directories.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	if out, err := exec.Command("diff", "-r", "--no-dereference", a, b).CombinedOutput(); err != nil {
		t.Errorf("trees differ: %v\n%s", err, out)
	}
	eachCounterpart(a, b, true, func(rel string, info, other os.FileInfo, err error) {
		if err == nil && other.Mode().Perm() != info.Mode().Perm() {
			t.Errorf("%s: mode %v, want %v", rel, other.Mode().Perm(), info.Mode().Perm())
		}
	})
}

// eachCounterpart calls fn for every regular file under a (and every directory below it, with
// dirs) with its counterpart in b, or the error of finding that.
func eachCounterpart(a, b string, dirs bool, fn func(rel string, info, other os.FileInfo, err error)) {
	filepath.Walk(a, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() && !(dirs && info.IsDir() && p != a) {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		other, err := os.Stat(filepath.Join(b, rel))
		fn(rel, info, other, err)
		return nil
	})
}

func TestInteg_ResticRoundTrip(t *testing.T) {
	needTool(t, "restic")
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	env := []string{"RESTIC_REPOSITORY=" + m.path("repo"), "RESTIC_PASSWORD=s3mount-test", "RESTIC_CACHE_DIR=" + t.TempDir()}
	src := makeTree(t, 1)
	run(t, env, "restic", "init")
	run(t, env, "restic", "backup", "--quiet", src)
	os.WriteFile(filepath.Join(src, "d1", "added.txt"), []byte("second backup"), 0o644)
	run(t, env, "restic", "backup", "--quiet", src)
	run(t, env, "restic", "check", "--read-data")
	dst := t.TempDir()
	run(t, env, "restic", "restore", "latest", "--target", dst)
	sameTree(t, src, filepath.Join(dst, src))
	run(t, env, "restic", "forget", "--keep-last", "1", "--prune")
	run(t, env, "restic", "check", "--read-data")
	record(t, "tool", "restic init, 2 backups, check --read-data, restore, forget --prune, check", "restored tree identical (contents and modes)")
}

// TestInteg_BorgRoundTrip: an encrypted borg repository on the mount: init, two archives, check
// --verify-data, extract, prune and compact. borg's lock is an exclusive mkdir: while one borg
// holds it, another borg is refused, through the same mount and through a second mount (another
// host), and gets the repository once the lock is released.
func TestInteg_BorgRoundTrip(t *testing.T) {
	needTool(t, "borg")
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	// The second mount shows the same repository at another path: borg asks before using a
	// repository that moved, unless told that it is fine.
	env := []string{"BORG_PASSPHRASE=s3mount-test", "BORG_BASE_DIR=" + t.TempDir(), "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes"}
	repo := m.path("repo")
	src := makeTree(t, 4)
	run(t, env, "borg", "init", "--encryption=repokey-blake2", repo)
	run(t, env, "borg", "create", repo+"::one", src)
	os.WriteFile(filepath.Join(src, "d1", "added.txt"), []byte("second archive"), 0o644)
	run(t, env, "borg", "create", repo+"::two", src)
	run(t, env, "borg", "check", "--verify-data", repo)
	dst := t.TempDir()
	cmd := exec.Command("borg", "extract", repo+"::two")
	cmd.Dir, cmd.Env = dst, append(world.CleanEnv(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("borg extract: %v\n%s", err, out)
	}
	sameTree(t, src, filepath.Join(dst, src))

	// The lock: one borg holds it until release exists. The second mount (another host) comes up
	// now: one mounted before the repository existed may still trust its first listing of the
	// root for the listing TTL (5 s, SEMANTICS.md), and on a fast run everything above takes less.
	other := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	repo2 := other.path("repo")
	release := filepath.Join(t.TempDir(), "release")
	holder := exec.Command("borg", "with-lock", repo, "sh", "-c", "while [ ! -e "+release+" ]; do sleep 0.1; done")
	holder.Env = append(world.CleanEnv(), env...)
	var holderOut bytes.Buffer
	holder.Stdout, holder.Stderr = &holderOut, &holderOut
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() { held <- holder.Wait() }()
	var once sync.Once
	var holderErr error
	unlock := func() error {
		once.Do(func() {
			os.WriteFile(release, nil, 0o644)
			holderErr = <-held
		})
		return holderErr
	}
	t.Cleanup(func() { unlock() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(repo, "lock.exclusive")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("borg with-lock did not take the lock in 30 s:\n%s", holderOut.String())
		}
	}
	for _, r := range []string{repo, repo2} {
		cmd := exec.Command("borg", "--lock-wait", "0", "list", r)
		cmd.Env = append(world.CleanEnv(), env...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Failed to create/acquire the lock") {
			t.Errorf("borg list of %s while another borg holds the lock: %v\n%s", r, err, out)
		}
	}
	if err := unlock(); err != nil {
		t.Fatalf("borg with-lock: %v\n%s", err, holderOut.String())
	}
	if out := run(t, env, "borg", "--lock-wait", "30", "list", repo2); !strings.Contains(out, "two") {
		t.Errorf("borg list through the second mount after the lock was released:\n%s", out)
	}

	run(t, env, "borg", "prune", "--keep-last", "1", repo)
	run(t, env, "borg", "compact", repo)
	if out := run(t, env, "borg", "list", repo); strings.Contains(out, "one") || !strings.Contains(out, "two") {
		t.Errorf("archives after prune --keep-last 1:\n%s", out)
	}
	run(t, env, "borg", "check", "--verify-data", repo)
	record(t, "tool", "borg init (repokey), 2 archives, check --verify-data, extract, lock held against a second borg on this and another mount, prune, compact, check", "extracted tree identical (contents and modes); the second borg refused while the lock is held")
}

// TestInteg_GitThroughMount: a git repository on the mount (lock files created exclusively,
// renamed over, fsynced; packs read through mmap): two commits, gc, fsck --full, a clone out of
// the mount and a clone into it, with the trees identical.
func TestInteg_GitThroughMount(t *testing.T) {
	needTool(t, "git")
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	env := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + t.TempDir()}
	src := makeTree(t, 5)
	repo := m.path("repo")
	run(t, env, "git", "init", "-q", repo)
	run(t, env, "cp", "-a", src+"/.", repo)
	run(t, env, "git", "-C", repo, "add", "-A")
	run(t, env, "git", "-C", repo, "commit", "-q", "-m", "one")
	os.WriteFile(filepath.Join(repo, "d1", "added.txt"), []byte("second commit"), 0o644)
	os.Remove(filepath.Join(repo, "d3", "e0", "f003.bin"))
	run(t, env, "git", "-C", repo, "add", "-A")
	run(t, env, "git", "-C", repo, "commit", "-q", "-m", "two")
	run(t, env, "git", "-C", repo, "gc", "-q")
	run(t, env, "git", "-C", repo, "fsck", "--full", "--strict")
	out := t.TempDir()
	run(t, env, "git", "clone", "-q", repo, filepath.Join(out, "c"))
	if d, err := exec.Command("diff", "-r", "--exclude=.git", repo, filepath.Join(out, "c")).CombinedOutput(); err != nil {
		t.Errorf("clone out of the mount differs from the work tree: %v\n%s", err, d)
	}
	run(t, env, "git", "clone", "-q", filepath.Join(out, "c"), m.path("back"))
	run(t, env, "git", "-C", m.path("back"), "fsck", "--full")
	if d, err := exec.Command("diff", "-r", "--exclude=.git", filepath.Join(out, "c"), m.path("back")).CombinedOutput(); err != nil {
		t.Errorf("clone into the mount differs: %v\n%s", err, d)
	}
	if log := run(t, env, "git", "-C", m.path("back"), "log", "--format=%s"); log != "two\none\n" {
		t.Errorf("history of the clone in the mount: %q", log)
	}
	record(t, "tool", "git init, 2 commits, gc, fsck --full on the mount; clone out of it and into it", "work trees identical; history intact")
}

func TestInteg_RsyncRoundTrip(t *testing.T) {
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	src := makeTree(t, 2)
	run(t, nil, "rsync", "-a", "--delete", src+"/", m.path("copy")+"/")
	sameTree(t, src, m.path("copy"))
	// mtimes survive the trip (rsync's quick check depends on them).
	st, _ := os.Stat(filepath.Join(src, "d0", "e0", "f000.bin"))
	st2, err := os.Stat(m.path("copy", "d0", "e0", "f000.bin"))
	if err != nil || !st2.ModTime().Equal(st.ModTime()) {
		t.Errorf("mtime through the mount: %v (%v), want %v", st2.ModTime(), err, st.ModTime())
	}
	// A second run transfers nothing; a deletion propagates.
	os.Remove(filepath.Join(src, "d3", "e0", "f003.bin"))
	differ := mtimesDiffer(src, m.path("copy"))
	out := run(t, nil, "rsync", "-a", "--delete", "--stats", "-i", src+"/", m.path("copy")+"/")
	if !strings.Contains(out, "Number of regular files transferred: 0") {
		t.Errorf("second rsync transferred files:\n%s\nmtimes that differed before it: %s", out, differ)
	}
	back := t.TempDir()
	run(t, nil, "rsync", "-a", m.path("copy")+"/", back+"/")
	sameTree(t, src, back)
	record(t, "tool", "rsync -a --delete to the mount and back, twice", "trees identical; mtimes kept; second run transfers nothing")
}

// mtimesDiffer lists the regular files of a whose mtime differs in b, with both times.
func mtimesDiffer(a, b string) []string {
	var out []string
	eachCounterpart(a, b, false, func(rel string, info, other os.FileInfo, err error) {
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s (%v)", rel, err))
		case !other.ModTime().Equal(info.ModTime()):
			out = append(out, fmt.Sprintf("%s (%s against %s)", rel, info.ModTime().Format(time.RFC3339Nano), other.ModTime().Format(time.RFC3339Nano)))
		}
	})
	return out
}

func TestInteg_TarExtractIntoMount(t *testing.T) {
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	src := makeTree(t, 3)
	archive := filepath.Join(t.TempDir(), "tree.tar")
	run(t, nil, "tar", "-C", src, "-cf", archive, ".")
	os.Mkdir(m.path("x"), 0o755)
	run(t, nil, "tar", "-C", m.path("x"), "-xf", archive)
	sameTree(t, src, m.path("x"))
	record(t, "tool", "tar x of a 120-file tree into the mount", "diff -r identical")
}

// TestInteg_PartRenameFlow: a database-backup style writer (name.part, write, fsync, rename) while
// a reader on a second mount (and through the S3 API) polls the final name: it is never seen
// partial.
func TestInteg_PartRenameFlow(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	writer := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	reader := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--ro", "--metadata-ttl", "0", "--negative-ttl", "0")...)
	body := randomBytes(21, 30<<20)
	want := sha256.Sum256(body)
	var seen, absent atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := os.ReadFile(reader.path("backup.db"))
			if err == nil {
				if sha256.Sum256(data) != want {
					t.Errorf("the reader saw a partial or different file (%d bytes)", len(data))
					return
				}
				seen.Add(1)
			} else {
				absent.Add(1)
			}
			if got, err := w.Get(ctx, prefix+"backup.db"); err == nil && !bytes.Equal(got, body) {
				t.Errorf("S3 held a partial object (%d bytes)", len(got))
				return
			}
		}
	}()
	f, err := os.Create(writer.path("backup.db.part"))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(body); off += 1 << 20 {
		if _, err := f.Write(body[off : off+1<<20]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(writer.path("backup.db.part"), writer.path("backup.db")); err != nil {
		t.Fatal(err)
	}
	d, _ := os.Open(writer.dir)
	d.Sync()
	d.Close()
	deadline := time.Now().Add(10 * time.Second)
	for seen.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	<-done
	if seen.Load() == 0 {
		t.Error("the reader never saw the final file")
	}
	if ok, _ := w.Exists(ctx, prefix+"backup.db.part"); ok {
		t.Error("the .part object is still there after the rename")
	}
	record(t, "tool", "name.part → write → fsync → rename → fsync(dir), read by a second mount", fmt.Sprintf("reader saw it absent %d times and complete %d times; never partial", absent.Load(), seen.Load()))
}
