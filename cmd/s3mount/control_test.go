package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlDirIsOursAlone: the directory of the control sockets is refused when it is a
// symlink or someone else's, and tightened to 0700 when it is ours but open.
func TestControlDirIsOursAlone(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := ensureControlDir(link); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("a symlinked control directory: %v, want refused", err)
	}
	if err := ensureControlDir(real); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(real); st.Mode().Perm() != 0o700 {
		t.Errorf("our control directory left at %v, want 0700", st.Mode().Perm())
	}
	fresh := filepath.Join(base, "fresh")
	if err := ensureControlDir(fresh); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o700 {
		t.Errorf("new control directory made %v, want 0700", st.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		os.Mkdir(theirs, 0o700)
		os.Chown(theirs, 4242, 4242)
		if err := ensureControlDir(theirs); err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") {
			t.Errorf("someone else's control directory: %v, want refused", err)
		}
	}
}

// TestControlSocketReplacesWhatIsThere: a symlink (or stale socket) at the socket's path is
// replaced by a socket of mode 0600, removed again when closed.
func TestControlSocketReplacesWhatIsThere(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s3mount")
	t.Setenv("XDG_RUNTIME_DIR", filepath.Dir(dir))
	if os.Geteuid() == 0 {
		defer func(d string) { rootControlDir = d }(rootControlDir)
		rootControlDir = dir
	}
	mp := t.TempDir()
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, socketName(resolveMountpoint(mp)))
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("keep"), 0o600)
	os.Symlink(target, path)
	s := &mountStatus{c: &config{mountpoint: mp}}
	stop, err := s.listen(mp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("control socket: %v %v, want a socket of mode 0600", st.Mode(), err)
	}
	if data, _ := os.ReadFile(target); string(data) != "keep" {
		t.Errorf("the symlink's target was changed")
	}
	stop()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("control socket left behind after close: %v", err)
	}
}
