package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// TestDirectoryAttributesArePersisted: chmod and utimes of a directory (by path and through an
// open handle, as rsync -a does after filling it) show at once, and on a fresh mount; each change
// keeps the one before (a lookup answered from the listing cache used to bring back the
// attributes of mkdir, and the next change stored them).
func TestDirectoryAttributesArePersisted(t *testing.T) {
	b := memback.New()
	// Kernel entries expire before the listing cache does (5 × EntryTTL), so the lookups after a
	// change are answered from the listing cache.
	o := DefaultOptions()
	o.PartSize = backend.MinPartSize
	o.EntryTTL, o.AttrTTL = 100*time.Millisecond, 100*time.Millisecond
	mnt := testMount(t, b, o)
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, name := range []string{"bypath", "byhandle"} {
		p := filepath.Join(mnt, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if name == "bypath" {
			if err := os.Chmod(p, 0o750); err != nil {
				t.Fatal(err)
			}
		} else {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Chmod(0o750); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		time.Sleep(150 * time.Millisecond)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o750 || !st.ModTime().Equal(mtime) {
			t.Errorf("%s: stat after chmod and utimes: %v %v, %v", name, st.Mode(), st.ModTime(), err)
		}
		if info, err := b.Head(context.Background(), name+"/"); err != nil || info.Meta["mode"] != "16872" {
			t.Errorf("%s: marker metadata %v, %v", name, info.Meta, err)
		}
	}
	// A link's times and then its owner: the second change keeps the first.
	link := filepath.Join(mnt, "link")
	if err := os.Symlink("bypath", link); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, link, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := os.Lstat(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if info, err := b.Head(context.Background(), "link"); err != nil || info.Meta["uid"] != "1234" || info.Meta["mtime"] != "1614834367" {
		t.Errorf("link's metadata after lutimes and lchown: %v, %v", info.Meta, err)
	}
	mnt2 := testMount(t, b, writeOptions())
	for _, name := range []string{"bypath", "byhandle"} {
		if st, err := os.Stat(filepath.Join(mnt2, name)); err != nil || st.Mode().Perm() != 0o750 || !st.ModTime().Equal(mtime) {
			t.Errorf("%s on a fresh mount: %v %v, %v", name, st.Mode(), st.ModTime(), err)
		}
	}
}
