package safepath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// refused asserts that err is a refusal mentioning want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want a refusal saying %q", err, want)
	}
}

func TestMkdirAllCreatesPrivateDirectories(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "c")
	d, err := MkdirAll(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, q := range []string{p, filepath.Dir(p)} {
		st, err := os.Lstat(q)
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want a directory of mode 0700", q, st.Mode(), err)
		}
	}
	if d.Path() != p {
		t.Errorf("Path %q, want %q", d.Path(), p)
	}
}

func TestRefusesSymlinkAsTheDirectory(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	os.Mkdir(victim, 0o700)
	link := filepath.Join(base, "cache")
	os.Symlink(victim, link)
	_, err := MkdirAll(link)
	refused(t, err, "is a symbolic link")
	_, err = OpenDir(link)
	refused(t, err, "is a symbolic link")
}

func TestRefusesDirectoryWritableByOthers(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	_, err := MkdirAll(filepath.Join(open, "cache"))
	refused(t, err, "writable by group or others (mode 0777)")
	_, err = OpenDir(open)
	refused(t, err, "chmod go-w")
	syscall.Chmod(open, 0o1777) // sticky: fine on the way, never as the directory itself
	_, err = OpenDir(open)
	refused(t, err, "writable by group or others")
	d, err := MkdirAll(filepath.Join(open, "cache"))
	if err != nil {
		t.Fatalf("a private directory inside a sticky one: %v", err)
	}
	d.Close()
}

func TestRefusesDirectoryOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	base := t.TempDir()
	theirs := filepath.Join(base, "theirs")
	os.Mkdir(theirs, 0o755)
	os.Chown(theirs, 54321, 54321)
	_, err := MkdirAll(filepath.Join(theirs, "cache"))
	refused(t, err, "owned by uid 54321")
	// In a sticky directory another user can create the name first.
	tmp := filepath.Join(base, "tmp")
	os.Mkdir(tmp, 0o700)
	syscall.Chmod(tmp, 0o1777)
	os.Mkdir(filepath.Join(tmp, "s3cache"), 0o700)
	os.Chown(filepath.Join(tmp, "s3cache"), 54321, 54321)
	_, err = MkdirAll(filepath.Join(tmp, "s3cache"))
	refused(t, err, "owned by uid 54321")
	// ... or plant a link on the way.
	os.Symlink(base, filepath.Join(tmp, "via"))
	os.Lchown(filepath.Join(tmp, "via"), 54321, 54321)
	_, err = MkdirAll(filepath.Join(tmp, "via", "cache"))
	refused(t, err, "symbolic link owned by uid 54321")
}

func TestFollowsTrustedLinksOnTheWay(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o755)
	os.Symlink("real", filepath.Join(base, "alias"))
	d, err := MkdirAll(filepath.Join(base, "alias", "cache"))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Stat(filepath.Join(real, "cache")); err != nil {
		t.Errorf("the directory was not made through the link: %v", err)
	}
}

// TestHandleIsNotRedirected: after the check, the directory is swapped for a symbolic link to
// another directory; everything made through the handle still lands in the checked directory,
// and nothing is made through a link planted inside it.
func TestHandleIsNotRedirected(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "cache")
	victim := filepath.Join(base, "victim")
	os.Mkdir(victim, 0o700)
	d, err := MkdirAll(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, dir); err != nil {
		t.Fatal(err)
	}
	f, err := d.Create("object", os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, name, err := d.CreateTemp("tmp-"); err != nil || name == "" {
		t.Fatal(err)
	}
	if sub, err := d.Mkdir("sub"); err != nil {
		t.Fatal(err)
	} else {
		sub.Close()
	}
	if _, err := os.Stat(filepath.Join(dir+".old", "object")); err != nil {
		t.Errorf("the file is not in the checked directory: %v", err)
	}
	// A link planted inside: neither created through (O_EXCL) nor opened through (O_NOFOLLOW).
	os.Symlink(filepath.Join(victim, "planted"), filepath.Join(dir+".old", "planted"))
	if f, err := d.Create("planted", os.O_RDWR, 0o600); err == nil {
		f.Close()
		t.Error("Create went through a planted link")
	}
	if f, err := d.OpenFile("planted", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600); err == nil {
		f.Close()
		t.Error("OpenFile followed a planted link")
	}
	os.Symlink(victim, filepath.Join(dir+".old", "plantdir"))
	if _, err := d.Mkdir("plantdir"); err == nil {
		t.Error("Mkdir followed a planted link")
	}
	if err := d.RemoveAll("plantdir"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 0 {
		t.Errorf("the victim directory got %v", entries)
	}
	if f, err := d.TempFile(); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
}

func TestCheckFile(t *testing.T) {
	base := t.TempDir()
	log := filepath.Join(base, "s3mount.log")
	if err := CheckFile(log); err != nil {
		t.Fatalf("a missing file in a private directory: %v", err)
	}
	f, err := OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := CheckFile(log); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(base, "target")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(base, "link.log")
	os.Symlink(target, link)
	refused(t, CheckFile(link), "is a symbolic link")
	_, err = OpenFile(link, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	refused(t, err, "is a symbolic link")
	if os.Geteuid() == 0 {
		os.Chown(target, 54321, 54321)
		refused(t, CheckFile(target), "owned by uid 54321")
		_, err = OpenFile(target, os.O_WRONLY|os.O_APPEND, 0)
		refused(t, err, "owned by uid 54321")
	}
	// A sticky directory is fine for a file (the file itself is checked).
	tmp := filepath.Join(base, "tmp")
	os.Mkdir(tmp, 0o700)
	syscall.Chmod(tmp, 0o1777)
	if err := CheckFile(filepath.Join(tmp, "x.log")); err != nil {
		t.Error(err)
	}
}
