package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/world"
)

// Programs users run on a mount, beside the peers, each timed until its data is in S3: restic
// backup of a mixed tree into a repository on the mount (beside restic's own S3 backend, in the
// ceiling column), restic restore from it, tar x of a source tree, and rsync -a of many small files.
// The trees are made once, on local disk, from a fixed seed.

const resticPassword = "s3bench" // the benchmark repositories' password: not a secret

// userTrees are the local inputs of the user jobs.
type userTrees struct {
	key        string // the sizes they were made for
	resticSrc  string // the tree restic backs up
	resticSize int64  // its bytes
	tarball    string
	tarWant    map[string]int64 // the tarball's files, by path, with their sizes
	rsyncSrc   string
	rsyncWant  map[string]int64
}

// trees makes the local inputs on first use.
func (b *bench) trees() (*userTrees, error) {
	key := fmt.Sprint(b.sz.ResticBig, b.sz.ResticBigSize, b.sz.ResticSmall, b.sz.ResticSmallSize, b.sz.TarFiles, b.sz.RsyncFiles)
	if b.userTrees != nil && b.userTrees.key == key {
		return b.userTrees, nil
	}
	b.userTrees = nil
	if err := os.RemoveAll(filepath.Join(b.tmp, "user")); err != nil {
		return nil, err
	}
	t := &userTrees{key: key, resticSrc: filepath.Join(b.tmp, "user", "restic-src"), tarball: filepath.Join(b.tmp, "user", "src.tar"),
		rsyncSrc: filepath.Join(b.tmp, "user", "rsync-src"), tarWant: map[string]int64{}, rsyncWant: map[string]int64{}}
	rnd := rand.New(rand.NewSource(42))
	write := func(path string, n int) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		buf := make([]byte, n)
		rnd.Read(buf)
		return os.WriteFile(path, buf, 0o644)
	}
	sz := b.sz
	for i := 0; i < sz.ResticBig; i++ {
		if err := write(filepath.Join(t.resticSrc, "big", fmt.Sprintf("%03d.bin", i)), int(sz.ResticBigSize)); err != nil {
			return nil, err
		}
		t.resticSize += sz.ResticBigSize
	}
	for i := 0; i < sz.ResticSmall; i++ {
		if err := write(filepath.Join(t.resticSrc, fmt.Sprintf("small/d%02d/%04d", i%20, i)), sz.ResticSmallSize); err != nil {
			return nil, err
		}
		t.resticSize += int64(sz.ResticSmallSize)
	}
	for i := 0; i < sz.RsyncFiles; i++ {
		rel := fmt.Sprintf("d%03d/f%05d", i%max(1, sz.RsyncFiles/100), i)
		if err := write(filepath.Join(t.rsyncSrc, rel), 4<<10); err != nil {
			return nil, err
		}
		t.rsyncWant[rel] = 4 << 10
	}
	if err := b.makeTarball(t, rnd); err != nil {
		return nil, err
	}
	b.userTrees = t
	return t, nil
}

// makeTarball writes a source tree's shape: TarFiles text files of 1–24 KiB in nested directories.
func (b *bench) makeTarball(t *userTrees, rnd *rand.Rand) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	words := []string{"func", "return", "if", "err", "nil", "for", "range", "struct", "type", "package", "import"}
	dirs := map[string]bool{}
	for i := 0; i < b.sz.TarFiles; i++ {
		dir := fmt.Sprintf("src/pkg%02d/sub%d", i%max(1, b.sz.TarFiles/75), i%3)
		if !dirs[dir] {
			dirs[dir] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: time.Unix(1.7e9, 0)}); err != nil {
				return err
			}
		}
		var body strings.Builder
		for n := 1<<10 + rnd.Intn(23<<10); body.Len() < n; {
			body.WriteString(words[rnd.Intn(len(words))] + " ")
		}
		name := fmt.Sprintf("%s/file%04d.go", dir, i)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(body.Len()), ModTime: time.Unix(1.7e9, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(body.String())); err != nil {
			return err
		}
		t.tarWant[name] = int64(body.Len())
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(t.tarball, buf.Bytes(), 0o644)
}

// run runs a program with the environment given (added to a clean one) and returns an error with
// the tail of its output if it fails.
func (b *bench) runProgram(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append(world.CleanEnv(), "LC_ALL=C"), env...)
	out := &tailBuffer{max: 2048}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, args[0], err, lastLine(out.String()))
	}
	return nil
}

// listedUnder is what a directory on the mount holds, as keys below root with their sizes.
func listedUnder(dir, root string) (map[string]int64, error) {
	want := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(dir), path)
		want[root+"/"+filepath.ToSlash(rel)] = info.Size()
		return nil
	})
	return want, err
}

func prefixed(root, sub string, m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		out[root+"/"+sub+"/"+k] = v
	}
	return out
}

func secs(start time.Time) float64 { return time.Since(start).Seconds() }

// 10. restic backup into a repository on the mount, timed until every file of the repository is in
// S3; then restic restore from it on a fresh mount, checked byte count by byte count.
func (b *bench) jobRestic(ctx context.Context, f *filesystem, rep int) {
	t, err := b.trees()
	if err != nil {
		b.res.fail(rowResticBackup, f.name, "making the tree: "+err.Error())
		return
	}
	rel := fmt.Sprintf("w/restic-%d", rep)
	env := []string{"RESTIC_PASSWORD=" + resticPassword}
	backedUp := b.attempt(ctx, rowResticBackup, f.name, b.userTimeout(t.resticSize), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, "", func(dir string) error {
			repo := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(repo), 0o755); err != nil {
				return err
			}
			if err := b.runProgram(ctx, env, "restic", "init", "--no-cache", "-r", repo); err != nil {
				return err
			}
			start := time.Now()
			if err := b.runProgram(ctx, env, "restic", "backup", "--no-cache", "-q", "-r", repo, t.resticSrc); err != nil {
				return err
			}
			b.logf("  %s / %s: restic returned after %.2f s", rowResticBackup, f.name, secs(start))
			// Walking the repository through the mount takes a listing per directory (restic
			// makes 256), so S3 is watched meanwhile: the time is when the last file got there.
			watch := b.watchListing(ctx, f.root()+"/"+rel+"/")
			want, err := listedUnder(repo, f.root()+"/w")
			if err != nil {
				watch.stop()
				return fmt.Errorf("restic returned, then walking the repository: %w", err)
			}
			last, ok := watch.stop().until(want)
			if !ok {
				if err := b.waitListed(ctx, f.root()+"/"+rel+"/", want); err != nil {
					return fmt.Errorf("restic returned, then: %w", err)
				}
				last = time.Now()
			}
			v = last.Sub(start).Seconds()
			return nil
		})
		return v, err
	})
	if backedUp {
		b.attempt(ctx, rowResticRestore, f.name, b.userTimeout(t.resticSize), func(ctx context.Context) (v float64, err error) {
			err = b.onMount(ctx, f, "", func(dir string) error {
				v, err = b.restore(ctx, filepath.Join(dir, rel), t)
				return err
			})
			return v, err
		})
	} else if reason := b.res.failReason(rowResticBackup, f.name); reason != "" {
		b.res.fail(rowResticRestore, f.name, "not run: the backup failed")
	}
	b.deletePrefix(context.WithoutCancel(ctx), f.root()+"/w/")
}

// restore restores the latest snapshot of repo to local disk and checks its size; it returns seconds.
func (b *bench) restore(ctx context.Context, repo string, t *userTrees) (float64, error) {
	target, err := os.MkdirTemp(b.tmp, "restore-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(target)
	start := time.Now()
	env := world.CleanEnv()
	env = append(env, "RESTIC_PASSWORD="+resticPassword)
	if strings.HasPrefix(repo, "s3:") {
		env = append(env, b.sessionEnv()...)
	}
	args := []string{"restore", "--no-cache", "-q", "-r", repo, "latest", "--target", target}
	if strings.HasPrefix(repo, "s3:") {
		args = append(args, "-o", "s3.region=us-east-1")
	}
	cmd := exec.CommandContext(ctx, "restic", args...)
	cmd.Env = env
	out := &tailBuffer{max: 2048}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("restic restore: %v: %s", err, lastLine(out.String()))
	}
	v := secs(start)
	var total int64
	filepath.WalkDir(target, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	if total != t.resticSize {
		return 0, fmt.Errorf("restored %d bytes of %d", total, t.resticSize)
	}
	return v, nil
}

// The ceiling of job 10: restic's own S3 backend on the same server, through the same network.
func (b *bench) ceilingRestic(ctx context.Context, rep int) {
	t, err := b.trees()
	if err != nil {
		b.res.fail(rowResticBackup, colCeiling, "making the tree: "+err.Error())
		return
	}
	prefix := fmt.Sprintf("%s/w/restic-%d", ceilingRoot, rep)
	repo := "s3:" + b.ep.S3 + "/" + world.Bucket + "/" + prefix
	ok := b.attempt(ctx, rowResticBackup, colCeiling, b.userTimeout(t.resticSize), func(ctx context.Context) (float64, error) {
		env := append([]string{"RESTIC_PASSWORD=" + resticPassword}, b.sessionEnv()...)
		if err := b.runProgram(ctx, env, "restic", "init", "--no-cache", "-o", "s3.region=us-east-1", "-r", repo); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := b.runProgram(ctx, env, "restic", "backup", "--no-cache", "-o", "s3.region=us-east-1", "-q", "-r", repo, t.resticSrc); err != nil {
			return 0, err
		}
		return secs(start), nil
	})
	if ok {
		b.attempt(ctx, rowResticRestore, colCeiling, b.userTimeout(t.resticSize), func(ctx context.Context) (float64, error) {
			return b.restore(ctx, repo, t)
		})
	}
	b.deletePrefix(context.WithoutCancel(ctx), prefix+"/")
}

// 11. tar x of a source tree onto the mount, timed until every file is in S3.
func (b *bench) jobTar(ctx context.Context, f *filesystem, rep int) {
	t, err := b.trees()
	if err != nil {
		b.res.fail(rowTarX, f.name, "making the tree: "+err.Error())
		return
	}
	rel := fmt.Sprintf("w/tar-%d", rep)
	b.attempt(ctx, rowTarX, f.name, b.userTimeout(int64(len(t.tarWant))*(32<<10)), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, "", func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, rel), 0o755); err != nil {
				return err
			}
			start := time.Now()
			if err := b.runProgram(ctx, nil, "tar", "-x", "-f", t.tarball, "-C", filepath.Join(dir, rel)); err != nil {
				return err
			}
			b.logf("  %s / %s: tar returned after %.2f s", rowTarX, f.name, secs(start))
			if err := b.waitListed(ctx, f.root()+"/"+rel+"/", prefixed(f.root(), rel, t.tarWant)); err != nil {
				return fmt.Errorf("tar returned, then: %w", err)
			}
			v = secs(start)
			return nil
		})
		return v, err
	})
	b.deletePrefix(context.WithoutCancel(ctx), f.root()+"/w/")
}

// 12. rsync -a of many small files onto the mount (rsync writes each to a temporary name and
// renames it), timed until every file is in S3.
func (b *bench) jobRsync(ctx context.Context, f *filesystem, rep int) {
	t, err := b.trees()
	if err != nil {
		b.res.fail(rowRsync, f.name, "making the tree: "+err.Error())
		return
	}
	rel := fmt.Sprintf("w/rsync-%d", rep)
	b.attempt(ctx, rowRsync, f.name, b.userTimeout(int64(len(t.rsyncWant))*(64<<10)), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, "", func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "w"), 0o755); err != nil {
				return err
			}
			start := time.Now()
			if err := b.runProgram(ctx, nil, "rsync", "-a", t.rsyncSrc+"/", filepath.Join(dir, rel)+"/"); err != nil {
				return err
			}
			b.logf("  %s / %s: rsync returned after %.2f s", rowRsync, f.name, secs(start))
			if err := b.waitListed(ctx, f.root()+"/"+rel+"/", prefixed(f.root(), rel, t.rsyncWant)); err != nil {
				return fmt.Errorf("rsync returned, then: %w", err)
			}
			v = secs(start)
			return nil
		})
		return v, err
	})
	b.deletePrefix(context.WithoutCancel(ctx), f.root()+"/w/")
}

// userTimeout is generous: 2 MiB/s, at least five minutes.
func (b *bench) userTimeout(bytes int64) time.Duration {
	return 5*time.Minute + time.Duration(bytes/(2*mib))*time.Second
}

// listWatch polls a prefix's listing in S3 and records when each key was first listed with each size.
type listWatch struct {
	seen map[string]map[int64]time.Time // key → size → first listed
	done chan struct{}
	quit chan struct{}
}

func (b *bench) watchListing(ctx context.Context, prefix string) *listWatch {
	lw := &listWatch{seen: map[string]map[int64]time.Time{}, done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(lw.done)
		for {
			p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: aws.String(world.Bucket), Prefix: aws.String(prefix)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					break
				}
				now := time.Now() // listed by now, at the latest
				for _, o := range page.Contents {
					k, size := aws.ToString(o.Key), aws.ToInt64(o.Size)
					if lw.seen[k] == nil {
						lw.seen[k] = map[int64]time.Time{}
					}
					if _, ok := lw.seen[k][size]; !ok {
						lw.seen[k][size] = now
					}
				}
			}
			select {
			case <-lw.quit:
				return
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return lw
}

// stop ends the polling (after one more listing under way) and returns the watch to read.
func (lw *listWatch) stop() *listWatch {
	close(lw.quit)
	<-lw.done
	return lw
}

// until is when the last key of want was first listed with its size, if every one was.
func (lw *listWatch) until(want map[string]int64) (time.Time, bool) {
	var last time.Time
	for k, size := range want {
		t, ok := lw.seen[k][size]
		if !ok {
			return time.Time{}, false
		}
		if t.After(last) {
			last = t
		}
	}
	return last, true
}
