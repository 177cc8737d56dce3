package fs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/s3mount/s3mount/fs/backend"
	"github.com/s3mount/s3mount/fs/backend/memback"
)

// putMode stores key with data and a stored st_mode, as another S3 client (or s3fs) would.
func putMode(t *testing.T, b *memback.Backend, key string, data []byte, mode uint32) {
	t.Helper()
	opts := backend.PutOptions{Meta: map[string]string{"mode": strconv.FormatUint(uint64(mode), 10), "uid": "0", "gid": "0"}}
	if _, err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		t.Fatal(err)
	}
}

// TestSetuidAndDevicesFromMetadata: setuid and setgid bits stored on objects show only with
// Options.Suid, and a stored device, FIFO or socket type shows as a regular file.
func TestSetuidAndDevicesFromMetadata(t *testing.T) {
	b := memback.New()
	putMode(t, b, "suid", []byte("x"), syscall.S_IFREG|syscall.S_ISUID|0o755)
	putMode(t, b, "sgid", []byte("x"), syscall.S_IFREG|syscall.S_ISGID|0o755)
	putMode(t, b, "sgiddir/", nil, syscall.S_IFDIR|syscall.S_ISGID|0o755)
	putMode(t, b, "chr", nil, syscall.S_IFCHR|0o666)
	putMode(t, b, "blk", nil, syscall.S_IFBLK|0o666)
	putMode(t, b, "fifo", nil, syscall.S_IFIFO|0o666)
	putMode(t, b, "sock", nil, syscall.S_IFSOCK|0o666)
	for _, suid := range []bool{false, true} {
		o := noCacheOptions()
		o.Suid = suid
		mnt := testMount(t, b, o)
		for name, bit := range map[string]os.FileMode{"suid": os.ModeSetuid, "sgid": os.ModeSetgid, "sgiddir": os.ModeSetgid} {
			st, err := os.Stat(filepath.Join(mnt, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode()&bit != 0; got != suid {
				t.Errorf("Suid=%v: %s has mode %v", suid, name, st.Mode())
			}
			if st.Mode().Perm() != 0o755 {
				t.Errorf("Suid=%v: %s has mode %v, want the permission bits kept", suid, name, st.Mode())
			}
		}
		// chmod stores the bits whether or not they show (a backup keeps them).
		b.PutBytes("tool", []byte("x"))
		if err := os.Chmod(filepath.Join(mnt, "tool"), os.ModeSetuid|0o755); err != nil {
			t.Fatal(err)
		}
		if info, err := b.Head(context.Background(), "tool"); err != nil || info.Meta["mode"] != strconv.Itoa(syscall.S_IFREG|syscall.S_ISUID|0o755) {
			t.Errorf("Suid=%v: stored mode after chmod 4755: %q (%v)", suid, info.Meta["mode"], err)
		}
		for _, name := range []string{"chr", "blk", "fifo", "sock"} {
			st, err := os.Lstat(filepath.Join(mnt, name))
			if err != nil || !st.Mode().IsRegular() {
				t.Errorf("%s: mode %v (%v), want a regular file", name, st.Mode(), err)
			}
		}
	}
}

// TestReadlinkOfHugeObjectIsNotRead: an object that claims to be a symbolic link but is longer
// than any link's target fails readlink with ENAMETOOLONG without being downloaded.
func TestReadlinkOfHugeObjectIsNotRead(t *testing.T) {
	b := memback.New()
	putMode(t, b, "ok", []byte("target"), syscall.S_IFLNK|0o777)
	putMode(t, b, "huge", make([]byte, 8<<20), syscall.S_IFLNK|0o777)
	putMode(t, b, "max", bytes.Repeat([]byte("a"), maxLinkTarget), syscall.S_IFLNK|0o777)
	o := noCacheOptions()
	o.LookupHead = true // lookups send no GET: every byte asked for is readlink's
	mnt := testMount(t, b, o)
	for _, name := range []string{"ok", "huge", "max"} {
		if _, err := os.Lstat(filepath.Join(mnt, name)); err != nil {
			t.Fatal(err)
		}
	}
	b.ResetCalls()
	if _, err := os.Readlink(filepath.Join(mnt, "huge")); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("readlink of an 8 MiB link: %v, want ENAMETOOLONG", err)
	}
	if n := b.BytesRequested(); n != 0 {
		t.Errorf("readlink of an 8 MiB link asked for %d bytes, want none", n)
	}
	if got, err := os.Readlink(filepath.Join(mnt, "ok")); err != nil || got != "target" {
		t.Errorf("readlink = %q, %v", got, err)
	}
	if got, err := os.Readlink(filepath.Join(mnt, "max")); err != nil || len(got) != maxLinkTarget {
		t.Errorf("readlink of a link of %d bytes: %d bytes, %v", maxLinkTarget, len(got), err)
	}
}
