//go:build integration

package integration

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"

	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_ModelAgainstLocalDisk runs random sequences of operations on the mount and on a local
// directory side by side: after every step the outcome (success or the errno) must agree, and
// every few steps the whole trees (names, types, sizes, contents). Seeds are fixed; set
// S3MOUNT_MODEL_SEEDS=N for more.
func TestInteg_ModelAgainstLocalDisk(t *testing.T) {
	seeds := ciSeeds
	if n, err := strconv.Atoi(os.Getenv("S3MOUNT_MODEL_SEEDS")); err == nil && n > 0 {
		seeds = n
	}
	// Without caches every step reaches S3; with the default ones, lookups are answered from the
	// listings the mount keeps up to date with its own changes (the only changes here).
	for _, caches := range []struct {
		name string
		args []string
	}{{"no caches", []string{"--metadata-ttl", "0", "--negative-ttl", "0"}}, {"default caches", nil}} {
		for seed := int64(1); seed <= int64(seeds); seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", caches.name, seed), func(t *testing.T) {
				prefix := testPrefix(t)
				m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), caches.args...)...)
				local := t.TempDir()
				runModel(t, seed, 150, m.dir, local)
			})
		}
	}
}

// ciSeeds is how many seeds run by default. Their sequences must do enough (see runModel); a seed
// beyond them that happens to do too little is only reported.
const ciSeeds = 3

// the namespace the operations pick from: a few names in the root and in two directories.
var modelDirs = []string{"", "d0", "d1", "d0/e"}
var modelNames = []string{"a", "b", "c", "a", "b", "c", "d0", "e"}

func pick(r *rand.Rand) string {
	dir := modelDirs[r.Intn(len(modelDirs))]
	return filepath.Join(dir, modelNames[r.Intn(len(modelNames))])
}

// outcome reduces an error to what must agree: nil or its errno.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return "error"
}

func runModel(t *testing.T, seed int64, steps int, mnt, local string) {
	for _, root := range []string{mnt, local} {
		for _, d := range []string{"d0", "d1", "d0/e"} {
			if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := rand.New(rand.NewSource(seed))
	outcomes := map[string]int{}
	defer func() {
		t.Logf("seed %d: outcomes %v", seed, outcomes)
		if outcomes["ok"] < steps/4 {
			report := t.Errorf
			if seed > ciSeeds {
				report = t.Logf
			}
			report("only %d of %d operations succeeded: the sequence tests too little", outcomes["ok"], steps)
		}
	}()
	for step := 0; step < steps; step++ {
		// Weighted: creations and writes most often, so that the tree fills up.
		op := []int{0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8, 8}[r.Intn(15)]
		a, b := pick(r), pick(r)
		data := randomBytes(r.Int63(), r.Intn(3)*(1<<20)+r.Intn(5000))
		off := int64(r.Intn(2 << 20))
		size := int64(r.Intn(3 << 20))
		var desc string
		apply := func(root string) error {
			p, q := filepath.Join(root, a), filepath.Join(root, b)
			switch op {
			case 0:
				desc = "create+write " + a
				return os.WriteFile(p, data, 0o644)
			case 1:
				desc = fmt.Sprintf("write %d bytes at %d into %s", len(data), off, a)
				f, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					return err
				}
				_, werr := f.WriteAt(data, off)
				return errors.Join(werr, f.Close())
			case 2:
				desc = fmt.Sprintf("truncate %s to %d", a, size)
				return os.Truncate(p, size)
			case 3:
				desc = "rename " + a + " -> " + b
				return os.Rename(p, q)
			case 4:
				desc = "mkdir " + a
				return os.Mkdir(p, 0o755)
			case 5:
				desc = "rmdir " + a
				return syscall.Rmdir(p)
			case 6:
				desc = "unlink " + a
				return syscall.Unlink(p)
			case 7:
				desc = "append+fsync " + a
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					return err
				}
				_, werr := f.Write(data[:min(len(data), 4096)])
				return errors.Join(werr, f.Sync(), f.Close())
			default:
				desc = "read " + a
				_, err := os.ReadFile(p)
				return err
			}
		}
		got, want := outcome(apply(mnt)), outcome(apply(local))
		if os.Getenv("S3MOUNT_MODEL_TRACE") != "" {
			t.Logf("step %d: %s: %s", step, desc, got)
		}
		outcomes[want]++
		if got != want {
			t.Fatalf("step %d (%s): mount %s, local disk %s", step, desc, got, want)
		}
		if step%10 == 9 || step == steps-1 {
			if diff := compareTrees(mnt, local); diff != "" {
				t.Fatalf("after step %d (%s): %s", step, desc, diff)
			}
		}
	}
}

// compareTrees returns "" if both trees hold the same names, types, sizes and contents.
func compareTrees(a, b string) string {
	list := func(root string) (map[string]string, []string) {
		out := map[string]string{}
		var names []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
			if d.IsDir() {
				out[rel] = "dir"
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				out[rel] = "unreadable: " + err.Error()
				return nil
			}
			out[rel] = fmt.Sprintf("file %d %x", len(data), sha256.Sum256(data))
			return nil
		})
		sort.Strings(names)
		return out, names
	}
	ma, na := list(a)
	mb, nb := list(b)
	if fmt.Sprint(na) != fmt.Sprint(nb) {
		return fmt.Sprintf("names differ:\n mount %v\n local %v", na, nb)
	}
	for _, n := range na {
		if ma[n] != mb[n] {
			return fmt.Sprintf("%s: mount %s, local %s", n, ma[n], mb[n])
		}
	}
	return ""
}
