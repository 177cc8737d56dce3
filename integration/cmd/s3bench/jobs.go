package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// fsJob is one job of the suite, run on every filesystem.
type fsJob struct {
	name string
	// reps is how many times (fresh mounts); the ceiling and the filesystems take turns within
	// each repetition.
	reps int
	run  func(ctx context.Context, f *filesystem, rep int)
}

func (b *bench) fsJobs() []fsJob {
	r := b.sz.Repeats
	return []fsJob{
		{"seqread", r, b.jobSeqRead},
		{"seqread4", r, b.jobParRead},
		{"randread", r, b.jobRandRead},
		{"seqwrite", r, b.jobSeqWrite},
		{"writers", r, b.jobWriters},
		{"smallfiles", r, b.jobSmallFiles},
		{"ls", r, b.jobList},
		{"ttfb", 1, b.jobTTFB},
		{"tar", 1, b.jobTar},
		{"rsync", 1, b.jobRsync},
		{"restic", 1, b.jobRestic},
	}
}

// jobNames are the names -jobs accepts.
func jobNames() []string {
	return []string{"ceiling", "seqread", "seqread4", "randread", "seqwrite", "writers", "smallfiles", "ls", "ttfb", "tar", "rsync", "restic", "lsscale"}
}

func (b *bench) want(job string) bool { return len(b.jobs) == 0 || b.jobs[job] }

// rows are the table's rows, labelled with this run's sizes.
func (b *bench) rows() []row {
	sz := b.sz
	rows := []row{
		{rowSeqRead, fmt.Sprintf("1. sequential read, 1 thread, %s, cold", bytesStr(sz.SeqFile)), "MiB/s", true, "throughput", "MiB/s"},
		{rowParRead, fmt.Sprintf("2. sequential read, 4 threads × %s", bytesStr(sz.ParFile)), "MiB/s", true, "throughput", "MiB/s"},
		{rowRandRead, fmt.Sprintf("3. random read, 256 KiB blocks over %s, %d s", bytesStr(sz.SeqFile), sz.RandSeconds), "MiB/s", true, "throughput", "MiB/s"},
		{rowWriteS3, fmt.Sprintf("4a. sequential write, %s, fsync on close: until in S3", bytesStr(sz.WriteFile)), "MiB/s", true, "throughput", "MiB/s"},
		{rowWriteRet, "4b. sequential write: until the writer returned", "MiB/s", true, "throughput", "MiB/s"},
		{rowCreateS3, fmt.Sprintf("5a. create %s files of %s: until in S3", countStr(sz.SmallFiles), bytesStr(int64(sz.SmallSize))), "files/s", true, "throughput", "files/s"},
		{rowCreateRet, "5b. create small files: until the writer returned", "files/s", true, "throughput", "files/s"},
		{rowSmallRead, "5c. read the small files back, fresh mount", "files/s", true, "throughput", "files/s"},
		{rowList, fmt.Sprintf("6. ls -l, %s objects, fresh mount", countStr(sz.ListObjects)), "s", false, "latency", "ls -l (s)"},
		{rowListLA, fmt.Sprintf("6a. ls -l, %s objects, fresh mount, s3mount -o listing_attrs", countStr(sz.ListObjects)), "s", false, "latency", "ls -l (s)"},
	}
	for i, n := range sz.ListScale {
		label := fmt.Sprintf("6%c. ls -l, %s objects, fresh mount, s3mount -o listing_attrs", 'b'+i, countStr(n))
		if i == len(sz.ListScale)-1 {
			label += " (if time allows)"
		}
		rows = append(rows, row{fmt.Sprintf(rowListScaleID, n), label, "s", false, "latency", "ls -l scaling (s)"})
	}
	return append(rows,
		row{rowTTFB, fmt.Sprintf("7. time to first byte of a %s object, fresh mount", bytesStr(sz.SeqFile)), "ms", false, "latency", "first byte (ms)"},
		row{rowRSS, "8. peak RSS of the filesystem process, jobs 1–4", "MiB", false, "latency", "peak RSS (MiB)"},
		row{rowWritersS3, fmt.Sprintf("9a. %d writers × %s at once, fsync on close: until in S3", sz.Writers, bytesStr(sz.WritersFile)), "MiB/s", true, "throughput", "MiB/s"},
		row{rowWritersRSS, fmt.Sprintf("9b. peak RSS of the filesystem process, %d writers at once", sz.Writers), "MiB", false, "latency", "peak RSS (MiB)"},
		row{rowResticBackup, fmt.Sprintf("10a. restic backup (no cache) of %d × %s + %s × %s: until in S3 (ceiling: restic's S3 backend)",
			sz.ResticBig, bytesStr(sz.ResticBigSize), countStr(sz.ResticSmall), bytesStr(int64(sz.ResticSmallSize))), "s", false, "latency", "programs users run (s)"},
		row{rowResticRestore, "10b. restic restore of it to local disk, fresh mount", "s", false, "latency", "programs users run (s)"},
		row{rowTarX, fmt.Sprintf("11. tar x of a source tree, %s files of 1–24 KiB: until in S3", countStr(sz.TarFiles)), "s", false, "latency", "programs users run (s)"},
		row{rowRsync, fmt.Sprintf("12. rsync -a of %s files of 4 KiB: until in S3", countStr(sz.RsyncFiles)), "s", false, "latency", "programs users run (s)"},
	)
}

// runJobs runs every job on every filesystem and the ceiling: job by job, and within a job
// repetition by repetition, the ceiling and the filesystems taking turns (so that a drift of the
// machine spreads over all, and each ratio compares measurements taken side by side).
func (b *bench) runJobs(ctx context.Context, fss []*filesystem) {
	for _, f := range fss {
		if f.missing != "" {
			b.logf("%s: not measured: %s", f.name, f.missing)
			for _, rw := range b.res.Rows {
				b.res.skip(rw.ID, f.name, f.missing)
			}
		}
	}
	runs := func(f *filesystem, job string) bool { return f.missing == "" && (!f.floor || floorJobs[job]) }
	for _, f := range fss {
		if f.floor {
			for _, id := range []string{rowRandRead, rowSmallRead, rowList, rowWritersS3, rowWritersRSS, rowResticBackup, rowResticRestore, rowTarX, rowRsync} {
				b.res.skip(id, f.name, "stores nothing")
			}
		}
	}
	// The ceiling takes its turn first in each repetition, unless -jobs leaves it out; -jobs ceiling
	// alone measures only the ceiling, on every job.
	var ceiling map[string]func(context.Context, int)
	if b.want("ceiling") {
		ceiling = b.ceilingJobs()
	}
	ceilingOnly := len(b.jobs) == 1 && b.jobs["ceiling"]
	for _, job := range b.fsJobs() {
		if !b.want(job.name) && !ceilingOnly {
			continue
		}
		b.logf("job %s", job.name)
		for rep := 0; rep < job.reps; rep++ {
			if run := ceiling[job.name]; run != nil {
				run(ctx, rep)
			}
			for _, f := range fss {
				if runs(f, job.name) && !ceilingOnly {
					job.run(ctx, f, rep)
				}
			}
		}
	}
	if b.want("lsscale") {
		for _, f := range fss {
			if f.name == colS3mount {
				b.listScale(ctx, f)
			}
		}
	}
}

// onMount mounts f afresh, runs fn on the mount directory and unmounts. With rssRow, the peak RSS
// of the filesystem process is recorded in that row (8 or 9b). A filesystem that failed to mount
// three times in a row is not mounted again: its later cells fail with the same reason.
func (b *bench) onMount(ctx context.Context, f *filesystem, rssRow string, fn func(dir string) error) error {
	if f.mountFailures >= 3 {
		return fmt.Errorf("mount failed 3 times, last: %s", f.lastMountErr)
	}
	m, err := b.mountFresh(ctx, f)
	if err != nil {
		f.mountFailures++
		f.lastMountErr = err.Error()
		return fmt.Errorf("mount: %w", err)
	}
	f.mountFailures = 0
	defer b.unmount(m)
	mt := meterFrom(ctx)
	if mt != nil {
		mt.fsPid = m.cmd.Process.Pid
	}
	mt.begin()
	err = fn(m.dir)
	mt.end()
	if rssRow != "" {
		if v, ok := peakRSS(m.cmd.Process.Pid); ok {
			b.res.maxSample(rssRow, f.name, v)
		}
	}
	select {
	case <-m.exited:
		if err == nil {
			err = fmt.Errorf("the filesystem process exited during the job (%v): %s", m.err, lastLine(m.stderr.String()))
		}
	default:
	}
	return err
}

// 1. Sequential read of one object, one thread.
func (b *bench) jobSeqRead(ctx context.Context, f *filesystem, rep int) {
	b.attempt(ctx, rowSeqRead, f.name, b.timeout(b.sz.SeqFile), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, rowRSS, func(dir string) error {
			v, err = b.fio(ctx, dir, []string{"rw=read", "readonly"},
				fioJob{"seqread", []string{"filename=" + filepath.Join(dir, "data/seq"), "size=" + i64(b.sz.SeqFile)}})
			return err
		})
		return v, err
	})
}

// 2. Sequential read, four threads, each its own object.
func (b *bench) jobParRead(ctx context.Context, f *filesystem, rep int) {
	b.attempt(ctx, rowParRead, f.name, b.timeout(4*b.sz.ParFile), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, rowRSS, func(dir string) error {
			var jobs []fioJob
			for i := 0; i < 4; i++ {
				jobs = append(jobs, fioJob{fmt.Sprintf("seqread%d", i), []string{"filename=" + filepath.Join(dir, fmt.Sprintf("data/par%d", i))}})
			}
			v, err = b.fio(ctx, dir, []string{"rw=read", "readonly", "size=" + i64(b.sz.ParFile)}, jobs...)
			return err
		})
		return v, err
	})
}

// 3. Random 256 KiB reads over the 1 GiB object, time-based (the same offsets for everyone).
func (b *bench) jobRandRead(ctx context.Context, f *filesystem, rep int) {
	b.attempt(ctx, rowRandRead, f.name, b.randTimeout(), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, rowRSS, func(dir string) error {
			v, err = b.fio(ctx, dir, []string{"rw=randread", "readonly", "time_based=1",
				fmt.Sprintf("runtime=%ds", b.sz.RandSeconds), "randrepeat=1"},
				fioJob{"randread", []string{"filename=" + filepath.Join(dir, "data/seq"), "size=" + i64(b.sz.SeqFile)}})
			return err
		})
		return v, err
	})
}

// 4. Sequential write of a new file with fsync on close (mountpoint-s3's seq_write: create on
// open, no fallocate), timed until fio returns and until the object is listed in S3 in full.
func (b *bench) jobSeqWrite(ctx context.Context, f *filesystem, rep int) {
	rel := fmt.Sprintf("w/seqwrite-%d", rep)
	key := f.root() + "/" + rel
	var returned float64
	ok := b.attempt(ctx, rowWriteS3, f.name, b.timeout(b.sz.WriteFile), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, rowRSS, func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "w"), 0o755); err != nil {
				return err
			}
			start := time.Now()
			if _, err := b.fio(ctx, dir, []string{"rw=write", "create_on_open=1", "fsync_on_close=1"},
				fioJob{"seqwrite", []string{"filename=" + filepath.Join(dir, rel), "size=" + i64(b.sz.WriteFile)}}); err != nil {
				return err
			}
			returned = mibPerSec(b.sz.WriteFile, start)
			if f.floor {
				v = returned
				return nil
			}
			if err := b.waitListed(ctx, key, map[string]int64{key: b.sz.WriteFile}); err != nil {
				return fmt.Errorf("writer returned, then: %w", err)
			}
			v = mibPerSec(b.sz.WriteFile, start)
			return nil
		})
		return v, err
	})
	if ok {
		b.res.add(rowWriteRet, f.name, returned)
	} else if reason := b.res.failReason(rowWriteS3, f.name); reason != "" {
		b.res.fail(rowWriteRet, f.name, reason)
	}
	if !f.floor {
		b.deletePrefix(context.WithoutCancel(ctx), f.root()+"/w/")
	}
}

// 9. Many writers at once: Writers new files of WritersFile each, written sequentially side by
// side with fsync on close, timed until all are listed in S3 in full; and the filesystem's peak
// RSS meanwhile (issue 6: memory stays bounded however many write).
func (b *bench) jobWriters(ctx context.Context, f *filesystem, rep int) {
	total := int64(b.sz.Writers) * b.sz.WritersFile
	b.attempt(ctx, rowWritersS3, f.name, b.timeout(total), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, rowWritersRSS, func(dir string) error {
			rel := fmt.Sprintf("w/writers-%d", rep)
			if err := os.MkdirAll(filepath.Join(dir, rel), 0o755); err != nil {
				return err
			}
			var jobs []fioJob
			want := map[string]int64{}
			for i := range b.sz.Writers {
				name := fmt.Sprintf("%s/w%02d", rel, i)
				jobs = append(jobs, fioJob{fmt.Sprintf("writer%d", i), []string{"filename=" + filepath.Join(dir, name)}})
				want[f.root()+"/"+name] = b.sz.WritersFile
			}
			start := time.Now()
			if _, err := b.fio(ctx, dir, []string{"rw=write", "create_on_open=1", "fsync_on_close=1", "size=" + i64(b.sz.WritersFile)}, jobs...); err != nil {
				return err
			}
			if err := b.waitListed(ctx, f.root()+"/"+rel+"/", want); err != nil {
				return fmt.Errorf("writers returned, then: %w", err)
			}
			v = mibPerSec(total, start)
			return nil
		})
		return v, err
	})
	b.deletePrefix(context.WithoutCancel(ctx), f.root()+"/w/")
}

// 5. Small files: create them one after another (open, write, close), timed until the writer
// returned and until all are listed in S3; then read them back on a fresh mount.
func (b *bench) jobSmallFiles(ctx context.Context, f *filesystem, rep int) {
	rel := fmt.Sprintf("w/small-%d", rep)
	prefix := f.root() + "/" + rel + "/"
	want := map[string]int64{}
	for i := 0; i < b.sz.SmallFiles; i++ {
		want[fmt.Sprintf("%s%05d", prefix, i)] = int64(b.sz.SmallSize)
	}
	var returned float64
	created := b.attempt(ctx, rowCreateS3, f.name, b.smallTimeout(), func(ctx context.Context) (v float64, err error) {
		err = b.onMount(ctx, f, "", func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, rel), 0o755); err != nil {
				return err
			}
			body := bytes.Repeat([]byte{'s'}, b.sz.SmallSize)
			start := time.Now()
			for i := 0; i < b.sz.SmallFiles; i++ {
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				if err := os.WriteFile(filepath.Join(dir, rel, fmt.Sprintf("%05d", i)), body, 0o644); err != nil {
					return err
				}
			}
			returned = float64(b.sz.SmallFiles) / time.Since(start).Seconds()
			if f.floor {
				v = returned
				return nil
			}
			if err := b.waitListed(ctx, prefix, want); err != nil {
				return fmt.Errorf("writer returned, then: %w", err)
			}
			v = float64(b.sz.SmallFiles) / time.Since(start).Seconds()
			return nil
		})
		return v, err
	})
	if created {
		b.res.add(rowCreateRet, f.name, returned)
	}
	if created && !f.floor {
		b.attempt(ctx, rowSmallRead, f.name, b.smallTimeout(), func(ctx context.Context) (v float64, err error) {
			err = b.onMount(ctx, f, "", func(dir string) error {
				start := time.Now()
				for i := 0; i < b.sz.SmallFiles; i++ {
					if ctx.Err() != nil {
						return context.Cause(ctx)
					}
					data, err := os.ReadFile(filepath.Join(dir, rel, fmt.Sprintf("%05d", i)))
					if err != nil {
						return err
					}
					if len(data) != b.sz.SmallSize {
						return fmt.Errorf("read %d bytes of a %d-byte file", len(data), b.sz.SmallSize)
					}
				}
				v = float64(b.sz.SmallFiles) / time.Since(start).Seconds()
				return nil
			})
			return v, err
		})
	} else if reason := b.res.failReason(rowCreateS3, f.name); reason != "" {
		b.res.fail(rowCreateRet, f.name, reason)
		b.res.fail(rowSmallRead, f.name, "not run: creating the files failed")
	}
	if !f.floor {
		b.deletePrefix(context.WithoutCancel(ctx), f.root()+"/w/")
	}
}

// 6. ls -l of a directory of objects on a fresh mount (the real ls: getdents, then a stat and the
// xattr queries of -l for each entry).
func (b *bench) jobList(ctx context.Context, f *filesystem, rep int) {
	b.attempt(ctx, rowList, f.name, b.listTimeout(b.sz.ListObjects), func(ctx context.Context) (float64, error) {
		return b.lsOnce(ctx, f, b.sz.ListObjects)
	})
	if f.name == colS3mount {
		b.attempt(ctx, rowListLA, f.name, b.listTimeout(b.sz.ListObjects), func(ctx context.Context) (float64, error) {
			return b.lsOnce(ctx, b.s3mountLA, b.sz.ListObjects)
		})
		// The bare LIST beside it, for the ratio.
		b.attempt(ctx, rowListLA, colCeiling, time.Minute, func(ctx context.Context) (float64, error) {
			return b.sdkList(ctx, b.role, listPrefix(f.root(), b.sz.ListObjects), b.sz.ListObjects)
		})
	}
}

func (b *bench) lsOnce(ctx context.Context, f *filesystem, n int) (v float64, err error) {
	err = b.onMount(ctx, f, "", func(dir string) error {
		cmd := exec.CommandContext(ctx, "ls", "-l", "--color=never", filepath.Join(dir, listDir(n)))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("ls -l: %v: %s", err, lastLine(strings.ReplaceAll(stderr.String(), dir, "<mnt>")))
		}
		v = time.Since(start).Seconds()
		files := 0
		s := bufio.NewScanner(&stdout)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "-") {
				files++
			}
		}
		if files != n {
			return fmt.Errorf("ls -l showed %d of %d files", files, n)
		}
		return nil
	})
	return v, err
}

// 7. Time to first byte: open the 1 GiB object on a fresh mount and read one byte, on as many
// fresh mounts as TTFBRuns.
func (b *bench) jobTTFB(ctx context.Context, f *filesystem, _ int) {
	for i := 0; i < b.sz.TTFBRuns; i++ {
		ok := b.attempt(ctx, rowTTFB, f.name, time.Minute, func(ctx context.Context) (v float64, err error) {
			err = b.onMount(ctx, f, "", func(dir string) error {
				start := time.Now()
				fh, err := os.Open(filepath.Join(dir, "data/seq"))
				if err != nil {
					return err
				}
				defer fh.Close()
				var one [1]byte
				if _, err := fh.Read(one[:]); err != nil {
					return err
				}
				v = ms(start)
				return nil
			})
			return v, err
		})
		if !ok {
			return
		}
	}
}

// listScale is job 6 on s3mount -o listing_attrs only, at the other sizes, with the SDK's bare LIST beside it. The
// largest size (its objects are created only now) runs only if the estimate fits the time left.
func (b *bench) listScale(ctx context.Context, f *filesystem) {
	b.logf("job lsscale")
	for i, n := range b.sz.ListScale {
		rowID := fmt.Sprintf(rowListScaleID, n)
		reps := b.sz.Repeats
		if i == len(b.sz.ListScale)-1 {
			reps = 1
			if reason := b.scaleFits(n); reason != "" {
				b.logf("  %s: not run: %s", rowID, reason)
				b.res.skip(rowID, f.name, reason)
				b.res.skip(rowID, colCeiling, reason)
				continue
			}
			if !b.scaleSeeded {
				if err := b.seedScale(ctx, true); err != nil {
					b.res.fail(rowID, f.name, "seeding: "+err.Error())
					continue
				}
				b.scaleSeeded = true
			}
		}
		for rep := 0; rep < reps; rep++ {
			b.attempt(ctx, rowID, f.name, b.listTimeout(n), func(ctx context.Context) (float64, error) {
				return b.lsOnce(ctx, b.s3mountLA, n)
			})
			// The ceiling lists the same objects (s3mount's root), read-only.
			b.attempt(ctx, rowID, colCeiling, time.Minute, func(ctx context.Context) (float64, error) {
				return b.sdkList(ctx, b.role, listPrefix(f.root(), n), n)
			})
		}
	}
}

// scaleFits estimates the largest scaling row (seeding at the rate seen, then ls -l at s3mount's
// rate on job 6) and says why it does not fit the time left, or "".
func (b *bench) scaleFits(n int) string {
	ls, ok := b.res.value(rowListLA, colS3mount)
	if !ok {
		return "job 6 gave no s3mount time to estimate from"
	}
	if b.putRate <= 0 {
		return "no PUT rate to estimate from"
	}
	seed := time.Duration(float64(n) / b.putRate * float64(time.Second))
	if b.scaleSeeded {
		seed = 0
	}
	run := time.Duration(ls*1.5*float64(n)/float64(b.sz.ListObjects)*float64(time.Second)) + 30*time.Second
	left := time.Until(b.deadline)
	if seed+run > left {
		return fmt.Sprintf("needs about %s (%s seeding + %s), %s left in the budget",
			(seed + run).Round(time.Second), seed.Round(time.Second), run.Round(time.Second), left.Round(time.Second))
	}
	return ""
}

// seedScale creates the scaling directories in s3mount's root: the small ones (up front) or the
// largest (large, only when it runs).
func (b *bench) seedScale(ctx context.Context, large bool) error {
	if !b.want("lsscale") {
		return nil
	}
	root := "team-a/bench-s3mount"
	for i, n := range b.sz.ListScale {
		if (i == len(b.sz.ListScale)-1) != large || n == b.sz.ListObjects {
			continue
		}
		if err := b.seedLists(ctx, []string{listPrefix(root, n)}, n); err != nil {
			return err
		}
	}
	return nil
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

func bytesStr(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// countStr writes n with thousands separators.
func countStr(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
