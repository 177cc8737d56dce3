//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func fileSHA(t *testing.T, path string) ([32]byte, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n
}

// walk returns every path below root, directories with a trailing slash.
func walk(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestInteg_ListsAndReadsExactly(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	files := map[string][]byte{
		"empty":              {},
		"one":                {'x'},
		"five-mib.bin":       randomBytes(1, 5<<20),
		"big/hundred.bin":    randomBytes(2, 100<<20),
		"a/b/c/deep.txt":     []byte("deep"),
		"a/sibling.txt":      []byte("sib"),
		"marked/":            nil, // a directory marker
		"marked/inside.txt":  []byte("in"),
		"spaces in name.txt": []byte("sp"),
	}
	for k, v := range files {
		if err := w.Put(ctx, prefix+k, bytes.NewReader(v)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	m := mount(t, "s3://"+world.Bucket+"/"+strings.TrimSuffix(prefix, "/"), accessChain()...)

	want := []string{"a/", "a/b/", "a/b/c/", "a/b/c/deep.txt", "a/sibling.txt", "big/", "big/hundred.bin",
		"empty", "five-mib.bin", "marked/", "marked/inside.txt", "one", "spaces in name.txt"}
	if got := walk(t, m.dir); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree through the mount:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for k, v := range files {
		if strings.HasSuffix(k, "/") {
			continue
		}
		sum, n := fileSHA(t, m.path(k))
		if n != int64(len(v)) || sum != sha(v) {
			t.Errorf("%s: read %d bytes with a different checksum, want %d identical bytes", k, n, len(v))
		}
		st, err := os.Stat(m.path(k))
		if err != nil || st.Size() != int64(len(v)) {
			t.Errorf("%s: stat size %d (%v), want %d", k, st.Size(), err, len(v))
		}
	}
}

func TestInteg_ReadOutsideRolePrefixIsDenied(t *testing.T) {
	ctx := context.Background()
	if err := w.Put(ctx, "team-b/secret.txt", strings.NewReader("not yours")); err != nil {
		t.Fatal(err)
	}
	m := mount(t, "s3://"+world.Bucket, accessChain()...)
	if _, err := os.Stat(m.path("team-b")); err != nil {
		t.Fatalf("team-b should be listed (the role may list the bucket): %v", err)
	}
	_, err := os.ReadFile(m.path("team-b", "secret.txt"))
	if !os.IsPermission(err) {
		t.Errorf("reading outside the role's prefix: %v, want permission denied", err)
	}
}

func TestInteg_TwoHopChainReads(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	if err := w.Put(ctx, prefix+"hello.txt", strings.NewReader("hello from hop 2")); err != nil {
		t.Fatal(err)
	}
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--role-arn", world.ReaderRole, "--external-id", world.ReaderExtID, "--ro")...)
	got, err := os.ReadFile(m.path("hello.txt"))
	if err != nil || string(got) != "hello from hop 2" {
		t.Errorf("read through a two-hop chain: %q, %v", got, err)
	}
}

// TestInteg_DiskCacheRemovedAtUnmount: the mount's disk cache lives in its own subdirectory of
// cache_dir, holds the whole copy of a file read at random, and is removed when the filesystem is
// unmounted (the daemon releases it after committing what is left).
func TestInteg_DiskCacheRemovedAtUnmount(t *testing.T) {
	prefix := testPrefix(t)
	data := randomBytes(7, 24<<20)
	if err := w.Put(context.Background(), prefix+"r.bin", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "-o", "cache_dir="+cacheDir)...)
	f, err := os.Open(m.path("r.bin"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for _, off := range []int64{20 << 20, 3 << 20, 11 << 20, 17 << 20} { // seeks: the handle reads at random
		if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
			t.Fatalf("read at %d: %v, or bytes that differ", off, err)
		}
	}
	var copied bool
	for deadline := time.Now().Add(20 * time.Second); !copied && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_ = filepath.WalkDir(cacheDir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && d.Name() != "lock" {
				if info, err := d.Info(); err == nil && info.Size() == int64(len(data)) {
					copied = true
				}
			}
			return nil
		})
	}
	f.Close()
	if !copied {
		t.Fatalf("no whole copy of the file appeared under %s", cacheDir)
	}
	m.unmount(t)
	if left, _ := os.ReadDir(cacheDir); len(left) != 0 {
		t.Errorf("after unmounting, %s still holds %d entries (%s)", cacheDir, len(left), left[0].Name())
	}
}

// TestInteg_OldAndNewHandlesKeepTheirVersions: another client replaces an object while a handle
// has it open; a handle opened after that reads the new version, the first one keeps reading
// the old one from memory, and neither sees the other's bytes through the kernel's page cache,
// which the two share (SEMANTICS.md, reading).
func TestInteg_OldAndNewHandlesKeepTheirVersions(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	va, vb := randomBytes(31, 2<<20), randomBytes(32, 2<<20)
	if err := w.Put(ctx, prefix+"f", bytes.NewReader(va)); err != nil {
		t.Fatal(err)
	}
	m := mount(t, "s3://"+world.Bucket+"/"+strings.TrimSuffix(prefix, "/"), append(accessChain(), "-o", "metadata_ttl=0")...)
	old, err := os.Open(m.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	readAll := func(f *os.File, want []byte, what string) {
		t.Helper()
		got := make([]byte, len(want))
		if n, err := f.ReadAt(got, 0); n != len(want) || (err != nil && err != io.EOF) {
			t.Fatalf("%s: read %d bytes: %v", what, n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: bytes of another version", what)
		}
	}
	readAll(old, va, "old handle") // the whole version is now in the mount's memory
	if err := w.Put(ctx, prefix+"f", bytes.NewReader(vb)); err != nil {
		t.Fatal(err)
	}
	cur, err := os.Open(m.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	for i := 0; i < 2; i++ {
		readAll(old, va, "old handle after the replacement")
		readAll(cur, vb, "new handle")
	}
}
