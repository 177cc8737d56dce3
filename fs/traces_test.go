package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/s3mount/s3mount/fs/backend/memback"
)

// deepDir makes directories under dir until a name of at most room bytes in the deepest one
// reaches S3's limit; it returns the deepest directory and its key's length.
func deepDir(t *testing.T, dir, prefix string, room int) (string, int) {
	t.Helper()
	keyLen := len(prefix)
	for i := 0; maxKeyLen-keyLen > room; i++ {
		dir = filepath.Join(dir, strings.Repeat(string(rune('a'+i)), 200))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		keyLen += 201
	}
	return dir, keyLen
}

// Keys S3 refuses (over 1,024 bytes, prefix included) fail at create, mkdir, symlink and rename
// with ENAMETOOLONG, before anything is written; names that fit exactly still work.
func TestKeysS3RefusesFailEarly(t *testing.T) {
	b := memback.New()
	opts := DefaultOptions()
	opts.Prefix = "p/"
	mnt := testMount(t, b, opts)
	dir, keyLen := deepDir(t, mnt, opts.Prefix, 250)
	fits := strings.Repeat("f", maxKeyLen-keyLen) // the directory's key (ending in "/") and the name: 1,024 bytes
	long := fits + "x"
	if len(long) > maxNameLen {
		t.Fatalf("test setup: name of %d bytes", len(long))
	}
	before := len(b.Keys())
	isTooLong := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("%s: %v, want ENAMETOOLONG", what, err)
		}
	}
	f, err := os.Create(filepath.Join(dir, long))
	if err == nil {
		f.Close() // a file left open would hang the test's exit on its own mount
	}
	isTooLong("create", err)
	isTooLong("mkdir", os.Mkdir(filepath.Join(dir, fits), 0o755)) // its marker "fits/" is 1,025 bytes
	isTooLong("symlink", os.Symlink("target", filepath.Join(dir, long)))
	if err := os.WriteFile(filepath.Join(mnt, "short"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	isTooLong("rename", os.Rename(filepath.Join(mnt, "short"), filepath.Join(dir, long)))
	// A directory whose objects would get keys too long at the new name is not moved at all.
	if err := os.MkdirAll(filepath.Join(mnt, "s", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "s", "sub", "deeper"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	isTooLong("rename of a directory", os.Rename(filepath.Join(mnt, "s"), filepath.Join(dir, fits[:len(fits)-8])))
	if got := len(b.Keys()); got != before+4 {
		t.Errorf("%d keys written, want only the 4 of short, s/, s/sub/ and s/sub/deeper: %q", got-before, b.Keys())
	}
	// At the limit, every operation works.
	if err := os.WriteFile(filepath.Join(dir, fits), []byte("at the limit"), 0o644); err != nil {
		t.Fatalf("a file whose key is 1,024 bytes: %v", err)
	}
	if _, ok := b.Bytes(opts.Prefix + strings.TrimPrefix(filepath.Join(dir, fits), mnt+"/")); !ok {
		t.Errorf("the file at the limit is not in S3")
	}
}
