//go:build integration

package integration

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
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
func TestInteg_ModelAgainstLocalDisk(t *testing.T) { runModels(t, 150, false) }

// TestInteg_ModelWithOpenHandles is the model test with files held open across steps: up to three
// handles at once, each open on both trees, written, read, truncated, synced and closed between the
// other operations, so that files are renamed, unlinked, rewritten by name and opened twice while
// a handle holds them.
func TestInteg_ModelWithOpenHandles(t *testing.T) { runModels(t, 200, true) }

// runModels runs the model (runModel) for each seed, with the caches off and with the default ones.
func runModels(t *testing.T, steps int, handles bool) {
	// Without caches every step reaches S3; with the default ones, lookups are answered from the
	// listings the mount keeps up to date with its own changes (the only changes here).
	for _, caches := range []struct {
		name string
		args []string
	}{{"no caches", []string{"--metadata-ttl", "0", "--negative-ttl", "0"}}, {"default caches", nil}} {
		for seed := int64(1); seed <= int64(modelSeeds()); seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", caches.name, seed), func(t *testing.T) {
				m := mount(t, "s3://"+world.Bucket+"/"+testPrefix(t), append(accessChain(), caches.args...)...)
				runModel(t, seed, steps, m.dir, t.TempDir(), handles)
			})
		}
	}
}

// modelSeeds is how many seeds the model tests run: ciSeeds, or S3MOUNT_MODEL_SEEDS.
func modelSeeds() int {
	if n, err := strconv.Atoi(os.Getenv("S3MOUNT_MODEL_SEEDS")); err == nil && n > 0 {
		return n
	}
	return ciSeeds
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

// openPair is a file open on both trees.
type openPair struct {
	name       string // when it was opened
	mnt, local *os.File
}

// runModel runs steps random operations on mnt and local; with handles, files are also held open
// across steps (see TestInteg_ModelWithOpenHandles).
func runModel(t *testing.T, seed int64, steps int, mnt, local string, handles bool) {
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
	var open []openPair
	defer func() {
		for _, h := range open {
			h.mnt.Close()
			h.local.Close()
		}
	}()
	for step := 0; step < steps; step++ {
		// Weighted: creations and writes most often, so that the tree fills up.
		op := []int{0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8, 8}[r.Intn(15)]
		if handles && r.Intn(2) == 0 {
			op = 9 + r.Intn(6)
		}
		a, b := pick(r), pick(r)
		data := randomBytes(r.Int63(), r.Intn(3)*(1<<20)+r.Intn(5000))
		off := int64(r.Intn(2 << 20))
		size := int64(r.Intn(3 << 20))
		var desc, got, want string
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
		if op >= 9 {
			desc, got, want = handleOp(&open, op, r.Intn(3), mnt, local, a, data, off, size)
		} else {
			got, want = outcome(apply(mnt)), outcome(apply(local))
		}
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

// handleOp applies a handle operation (op 9 to 14) to handle h of open (an open when there is none
// such) on both trees, and returns what it did and the outcome on each.
func handleOp(open *[]openPair, op, h int, mnt, local, name string, data []byte, off, size int64) (desc, got, want string) {
	if h >= len(*open) {
		op = 9
	}
	if op == 9 && len(*open) == 3 {
		op = 14 // three are open: close one instead
	}
	if op == 9 {
		flags := os.O_RDWR
		if len(data)%2 == 0 {
			flags |= os.O_CREATE
		}
		fm, errm := os.OpenFile(filepath.Join(mnt, name), flags, 0o644)
		fl, errl := os.OpenFile(filepath.Join(local, name), flags, 0o644)
		if errm == nil && errl == nil {
			*open = append(*open, openPair{name, fm, fl})
		} else {
			closeFile(fm)
			closeFile(fl)
		}
		return fmt.Sprintf("open %s (create %v) as handle %d", name, flags&os.O_CREATE != 0, len(*open)-1), outcome(errm), outcome(errl)
	}
	p := (*open)[h]
	var errm, errl error
	switch op {
	case 10:
		desc = fmt.Sprintf("write %d bytes at %d through handle %d (%s)", len(data), off, h, p.name)
		_, errm = p.mnt.WriteAt(data, off)
		_, errl = p.local.WriteAt(data, off)
	case 11:
		desc = fmt.Sprintf("read %d bytes at %d through handle %d (%s)", len(data), off, h, p.name)
		bm, bl := make([]byte, len(data)), make([]byte, len(data))
		nm, em := p.mnt.ReadAt(bm, off)
		nl, el := p.local.ReadAt(bl, off)
		errm, errl = em, el
		if em == nil || em == io.EOF {
			if nm != nl || !bytes.Equal(bm[:nm], bl[:nl]) {
				return desc, fmt.Sprintf("%d bytes (%x)", nm, sha256.Sum256(bm[:nm])), fmt.Sprintf("%d bytes (%x)", nl, sha256.Sum256(bl[:nl]))
			}
		}
	case 12:
		desc = fmt.Sprintf("truncate handle %d (%s) to %d", h, p.name, size)
		errm, errl = p.mnt.Truncate(size), p.local.Truncate(size)
	case 13:
		desc = fmt.Sprintf("fsync handle %d (%s)", h, p.name)
		errm, errl = p.mnt.Sync(), p.local.Sync()
	default:
		desc = fmt.Sprintf("close handle %d (%s)", h, p.name)
		errm, errl = p.mnt.Close(), p.local.Close()
		*open = append((*open)[:h], (*open)[h+1:]...)
	}
	return desc, outcome(errm), outcome(errl)
}

// closeFile closes f if it is open.
func closeFile(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
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
