// Command s3bench measures s3mount side by side with the direct-SDK ceiling and with s3fs and
// rclone mount, in one run, on one local MinIO, under each network profile asked for (-profile:
// loopback as it is, s3like through integration/shaper), and writes a markdown table, JSON and
// PNG charts per profile.
// `make bench` runs it in full (docs/PERFORMANCE.md), `make bench-smoke` with tiny sizes (part of
// `make test`, so that the suite cannot rot).
//
// Every filesystem gets its own prefix and a fresh mount per job, so that no job reads a warm
// cache by accident. Write jobs are timed until the data is listed in S3 with its full size, as
// well as until the writer returns. A job or peer that fails shows FAIL with the reason and the run
// goes on; whatever happens, s3bench unmounts what it mounted and stops what it started.
//
// Files: main.go (flags, the run, its budget), seed.go (data through the S3 API), ceiling.go (the
// SDK), fsys.go (mounting the filesystems), jobs.go, fio.go and userjobs.go (the jobs),
// results.go, report.go and charts.go (the output).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/shaper"
	"github.com/s3mount/s3mount/integration/world"
)

// sizes of one run.
type sizes struct {
	SeqFile     int64 `json:"seq_file_bytes"`     // jobs 1, 3 and 7: one object
	ParFile     int64 `json:"par_file_bytes"`     // job 2: four objects
	RandSeconds int   `json:"rand_read_seconds"`  // job 3
	WriteFile   int64 `json:"write_file_bytes"`   // job 4
	Writers     int   `json:"writers"`            // job 9: files written at once
	WritersFile int64 `json:"writers_file_bytes"` // job 9: each
	SmallFiles  int   `json:"small_files"`        // job 5
	SmallSize   int   `json:"small_file_bytes"`   // job 5
	ListObjects int   `json:"ls_objects"`         // job 6, every filesystem
	ListScale   []int `json:"ls_scale_s3mount"`   // job 6 for s3mount only; the largest if time allows
	TTFBRuns    int   `json:"ttfb_runs"`          // job 7: fresh mounts
	Repeats     int   `json:"repeats"`            // of every job that is cheap enough
	// Jobs 10–12, what users run (once each: their trees are large):
	ResticBig       int   `json:"restic_big_files"`      // job 10: files of ResticBigSize
	ResticBigSize   int64 `json:"restic_big_file_bytes"` //
	ResticSmall     int   `json:"restic_small_files"`    // job 10: files of ResticSmallSize
	ResticSmallSize int   `json:"restic_small_file_bytes"`
	TarFiles        int   `json:"tar_files"`      // job 11: files of 1–24 KiB in the tarball
	RsyncFiles      int   `json:"rsync_files"`    // job 12: files of 4 KiB
	Budget          int   `json:"budget_seconds"` // no job starts after this
}

// full is make bench: mountpoint-s3's published job shapes, sized for a 2-core machine running
// MinIO, the filesystem and fio at once, in some 35 minutes a profile.
var full = sizes{SeqFile: 1 << 30, ParFile: 512 << 20, RandSeconds: 10, WriteFile: 1 << 30, Writers: 16, WritersFile: 64 << 20,
	SmallFiles: 1000, SmallSize: 64 << 10, ListObjects: 10000, ListScale: []int{1000, 100000},
	TTFBRuns: 10, Repeats: 3, Budget: 35 * 60,
	ResticBig: 150, ResticBigSize: 2 << 20, ResticSmall: 2000, ResticSmallSize: 16 << 10, TarFiles: 3000, RsyncFiles: 10000}

// smoke is make bench-smoke: the same code with tiny sizes, in under 2 minutes.
var smoke = sizes{SeqFile: 16 << 20, ParFile: 8 << 20, RandSeconds: 2, WriteFile: 16 << 20, Writers: 4, WritersFile: 2 << 20,
	SmallFiles: 20, SmallSize: 64 << 10, ListObjects: 200, ListScale: []int{50, 1000},
	TTFBRuns: 3, Repeats: 2, Budget: 120,
	ResticBig: 3, ResticBigSize: 1 << 20, ResticSmall: 20, ResticSmallSize: 16 << 10, TarFiles: 30, RsyncFiles: 30}

// sizesFor are the sizes of one profile's pass. Under s3like the seeded data (the read objects, the
// listings) is the same as under loopback; only what the jobs create and how often they repeat
// change, since every request there costs some 20 ms: fewer small files, two repetitions.
func sizesFor(profile string, isSmoke bool, scale float64) sizes {
	sz := full
	if isSmoke {
		sz = smoke
	}
	if scale > 0 {
		sz = sz.scaled(scale)
	}
	if profile != "s3like" {
		return sz
	}
	if isSmoke {
		sz.Repeats, sz.TTFBRuns, sz.SmallFiles, sz.RandSeconds, sz.Budget = 1, 2, 10, 1, 60
		sz.TarFiles, sz.RsyncFiles = 10, 10
		return sz
	}
	sz.SmallFiles, sz.RsyncFiles, sz.TarFiles = min(sz.SmallFiles, 200), min(sz.RsyncFiles, 1000), min(sz.TarFiles, 1000)
	sz.Repeats, sz.Budget = 2, 35*60
	return sz
}

// scaled multiplies the amounts of data and files by f (-scale, for quick runs of a subset).
func (sz sizes) scaled(f float64) sizes {
	mul := func(n int64) int64 { return max(mib, int64(float64(n)*f)/mib*mib) }
	cnt := func(n int) int { return max(1, int(float64(n)*f)) }
	sz.SeqFile, sz.ParFile, sz.WriteFile, sz.WritersFile = mul(sz.SeqFile), mul(sz.ParFile), mul(sz.WriteFile), mul(sz.WritersFile)
	sz.SmallFiles, sz.ListObjects = cnt(sz.SmallFiles), cnt(sz.ListObjects)
	sz.ResticBig, sz.ResticSmall, sz.TarFiles, sz.RsyncFiles = cnt(sz.ResticBig), cnt(sz.ResticSmall), cnt(sz.TarFiles), cnt(sz.RsyncFiles)
	var ls []int
	for _, n := range sz.ListScale {
		ls = append(ls, cnt(n))
	}
	sz.ListScale = ls
	return sz
}

// bench is one run.
type bench struct {
	w  *world.World
	s3 *s3.Client // MinIO root keys, directly: seeding and checking only
	// ep are the endpoints of the profile being measured (shaped or not); every measured column
	// uses them, and so does the role's session below.
	ep *world.Endpoints
	// The role's session credentials (instance profile, then AssumeRole with the External ID), which
	// every measured column uses: s3mount through its own chain, the ceiling (role, with the
	// session cached) and the peers (a fresh session from roleCreds for each mount) from here.
	roleCreds    aws.CredentialsProvider
	role         *s3.Client
	sz           sizes
	tmp          string
	res          *results
	start        time.Time
	deadline     time.Time
	s3mountBin   string
	nullfsBin    string          // the FUSE floor (integration/cmd/nullfs)
	fioStart     map[int]fioCost // fio's own CPU, by number of jobs (calibrateFio)
	s3mountExtra string
	s3mountLA    *filesystem     // s3mount with -o listing_attrs, for the ls -l rows
	jobs         map[string]bool // -jobs: only these (all when empty)
	putRate      float64         // small PUTs per second while seeding
	logw         io.Writer
	budget       time.Duration // -budget: overrides each profile's
	scale        float64       // -scale
	userTrees    *userTrees    // the local inputs of jobs 10–12, made on first use
	scaleSeeded  bool          // the largest lsscale directory exists

	mu       sync.Mutex
	mounts   map[*mount]bool
	mountSeq int
}

func main() {
	smokeRun := flag.Bool("smoke", false, "tiny sizes, for make test (under 2 minutes)")
	out := flag.String("out", "bench-results", "directory for results.md, results.json, the charts and logs")
	s3mountBin := flag.String("s3mount", "bin/s3mount", "the s3mount binary")
	s3mountExtra := flag.String("s3mount-args", "", "more s3mount options, space-separated (for experiments)")
	nullfsBin := flag.String("nullfs", "bin/nullfs", "the FUSE floor's binary (integration/cmd/nullfs)")
	only := flag.String("only", "", "measure only these filesystems, comma-separated (s3mount,s3fs,rclone-off,rclone-writes,floor)")
	jobs := flag.String("jobs", "", "run only these jobs, comma-separated ("+strings.Join(jobNames(), ",")+")")
	budget := flag.Duration("budget", 0, "override each profile's time budget")
	profiles := flag.String("profile", "loopback,s3like", "network profiles to measure under, in order (loopback, s3like)")
	scale := flag.Float64("scale", 0, "multiply the data sizes and file counts by this (e.g. 0.25 for a quick run)")
	connMiB := flag.Float64("s3like-conn-mibps", shaper.DefaultConnMiBSec, "s3like: MiB/s per connection (the request rates scale with it)")
	flag.Parse()
	var nets []shaper.Network
	for _, name := range strings.Split(*profiles, ",") {
		n, ok := shaper.ByName(strings.TrimSpace(name), *connMiB)
		if !ok {
			log.Fatalf("-profile: unknown profile %q (want loopback, s3like)", name)
		}
		nets = append(nets, n)
	}
	if len(nets) == 0 {
		log.Fatal("-profile: name at least one profile (loopback, s3like)")
	}
	sz := sizesFor(nets[0].Name, *smokeRun, *scale)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	bin, err := filepath.Abs(*s3mountBin)
	if err != nil {
		log.Fatal(err)
	}
	floorBin, err := filepath.Abs(*nullfsBin)
	if err != nil {
		log.Fatal(err)
	}
	b := &bench{sz: sz, scale: *scale, budget: *budget, s3mountBin: bin, nullfsBin: floorBin, s3mountExtra: *s3mountExtra, jobs: set(*jobs), mounts: map[*mount]bool{}}
	logf, err := os.Create(filepath.Join(*out, "run.log"))
	if err != nil {
		log.Fatal(err)
	}
	defer logf.Close()
	b.logw = io.MultiWriter(os.Stderr, logf)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	code := b.run(ctx, *out, set(*only), *smokeRun, nets)
	stop()
	os.Exit(code)
}

func set(list string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.logw, "%s s3bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run does the whole run and returns the exit code: 0 when the reports were written (in a smoke
// run, also only if s3mount and the ceiling passed every job under every profile), 1 otherwise,
// 130 when interrupted. The data is seeded once, directly; then each profile is one pass of every
// job, with its own results under out/PROFILE and all of them in out/results.md.
func (b *bench) run(ctx context.Context, out string, only map[string]bool, isSmoke bool, nets []shaper.Network) int {
	b.start = time.Now()
	b.deadline = b.start.Add(b.budgetOf(b.sz))
	tmp, err := os.MkdirTemp("", "s3bench-")
	if err != nil {
		b.logf("%v", err)
		return 1
	}
	b.tmp = tmp
	worldLog, err := os.Create(filepath.Join(out, "world.log"))
	if err != nil {
		b.logf("%v", err)
		return 1
	}
	defer worldLog.Close()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	w, err := world.Start(startCtx, world.Options{Dir: tmp, Log: worldLog})
	cancel()
	defer b.cleanup()
	if err != nil {
		b.logf("starting MinIO and the AWS emulator (run scripts/install-deps.sh first): %v", err)
		return 1
	}
	b.w = w
	b.s3 = newS3Client(w.MinIO.Endpoint, w, nil)

	if b.ep, err = w.Endpoints(shaper.Loopback()); err != nil {
		b.logf("%v", err)
		return 1
	}
	b.logf("seeding data through the S3 API")
	var roots []string
	for _, f := range b.measured(only) {
		if !f.floor {
			roots = append(roots, f.root())
		}
	}
	if err := b.seed(ctx, roots); err != nil {
		b.logf("seeding: %v", err)
		return 1
	}
	if err := b.seedScale(ctx, false); err != nil {
		b.logf("seeding: %v", err)
		return 1
	}
	if err := b.calibrateFio(ctx); err != nil {
		b.logf("%v", err)
		return 1
	}
	b.logf("fio's own CPU: %.2f s of the machine's with one job, %.2f s with four, %.2f s with %d",
		b.fioStart[1].machine, b.fioStart[4].machine, b.fioStart[b.sz.Writers].machine, b.sz.Writers)

	code := 0
	var all []*results
	for _, n := range nets {
		if ctx.Err() != nil {
			break
		}
		res, err := b.runProfile(ctx, n, only, isSmoke)
		if err != nil {
			b.logf("%s: %v", n.Name, err)
			code = 1
			continue
		}
		all = append(all, res)
		dir := filepath.Join(out, n.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.logf("%v", err)
			return 1
		}
		if err := res.write(dir); err != nil {
			b.logf("writing the results: %v", err)
			code = 1
		}
		res.mu.Lock()
		fmt.Printf("\n## %s\n\n%s%s", n.Name, res.table(), res.failures())
		res.mu.Unlock()
		if isSmoke {
			if bad := res.ownFailures(); len(bad) > 0 {
				b.logf("smoke run, %s: s3mount or the ceiling did not complete every job:\n  %s", n.Name, strings.Join(bad, "\n  "))
				code = 1
			}
		}
	}
	if err := writeCombined(filepath.Join(out, "results.md"), all); err != nil {
		b.logf("writing the results: %v", err)
		code = 1
	}
	b.logf("results in %s (results.md; per profile: results.md, results.json, throughput.png, latency.png); took %s",
		out, time.Since(b.start).Round(time.Second))
	if ctx.Err() != nil {
		b.logf("interrupted")
		return 130
	}
	return code
}

func (b *bench) budgetOf(sz sizes) time.Duration {
	if b.budget > 0 {
		return b.budget
	}
	return time.Duration(sz.Budget) * time.Second
}

// measured are the filesystems -only selects, mounted through the current endpoints.
func (b *bench) measured(only map[string]bool) []*filesystem {
	var measured []*filesystem
	for _, f := range b.filesystems() {
		if len(only) > 0 && !only[f.slug] && !only[f.name] {
			continue
		}
		measured = append(measured, f)
	}
	return measured
}

// runProfile is one pass of every job under network n, with its sizes and budget.
func (b *bench) runProfile(ctx context.Context, n shaper.Network, only map[string]bool, isSmoke bool) (*results, error) {
	b.sz = sizesFor(n.Name, isSmoke, b.scale)
	start := time.Now()
	b.deadline = start.Add(b.budgetOf(b.sz))
	ep, err := b.w.Endpoints(n)
	if err != nil {
		return nil, err
	}
	b.ep = ep
	b.roleCreds = b.roleCredentials()
	b.role = newS3Client(ep.S3, b.w, aws.NewCredentialsCache(b.roleCreds))
	b.logf("profile %s", n.Summary())

	if isSmoke && n.Shaped() && len(only) == 0 && len(b.jobs) == 0 {
		// The peers' code is the same under every profile (only their endpoint differs), and the
		// smoke run checks s3mount and the ceiling: the shaped pass measures those alone, and
		// leaves out restic, whose repository alone (256 directories) takes half a minute there.
		only = map[string]bool{"s3mount": true}
		b.jobs = set(strings.Join(jobNames(), ","))
		delete(b.jobs, "restic")
		defer func() { b.jobs = map[string]bool{} }()
	}
	measured := b.measured(only)
	columns := []string{}
	for _, f := range measured {
		columns = append(columns, f.name)
	}
	columns = append(columns, colCeiling)
	b.res = newResults(b.rows(), columns)
	b.res.Profile, b.res.Network = n.Name, n.Summary()
	b.res.Smoke, b.res.Sizes = isSmoke, b.sz
	b.res.CPUUnits, b.res.Cores = b.cpuRows(), runtime.NumCPU()
	for _, f := range measured {
		b.res.Options[f.name] = f.options
	}
	b.res.Options[colCeiling] = fmt.Sprintf("aws-sdk-go-v2 feature/s3/manager Downloader/Uploader, 8 MiB parts, "+
		"the best of concurrency %s (notes say which won); single requests otherwise; the role's session credentials (keyless chain), like every column",
		joinInts(sweepConcurrency))
	if b.want("ceiling") {
		b.logf("ceiling: aws-sdk-go-v2 diagnostics")
		b.diagnostics(ctx)
	}
	b.runJobs(ctx, measured)
	b.res.sweepNotes()
	if ep.S3Proxy != nil {
		req, slow := ep.S3Proxy.Stats()
		b.res.note(fmt.Sprintf("The shaper in front of MinIO saw %d requests in this pass and answered %d of them 503 SlowDown.", req, slow))
	}
	b.res.Date = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	b.res.Took = time.Since(start).Round(time.Second).String()
	b.res.Machine = machine()
	b.res.Versions = versions(b.s3mountBin)
	return b.res, nil
}

// cleanup unmounts what is still mounted, stops MinIO and the emulator, and removes the temporary
// directory, unless something is still mounted below it (removing files through a live mount
// would delete objects).
func (b *bench) cleanup() {
	b.unmountAll()
	if b.w != nil {
		b.w.Close()
	}
	if b.tmp == "" {
		return
	}
	if left := mountsUnder(b.tmp, false); len(left) > 0 {
		for _, dir := range left {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		if left = mountsUnder(b.tmp, false); len(left) > 0 {
			b.logf("still mounted, leaving %s in place: %s", b.tmp, strings.Join(left, " "))
			return
		}
	}
	os.RemoveAll(b.tmp)
}

// ownFailures lists the cells of s3mount and the ceiling that failed or have no measurement
// (cells skipped on purpose, such as a size that did not fit the time left, are not failures).
func (r *results) ownFailures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for _, rw := range r.Rows {
		for _, col := range []string{colS3mount, colCeiling} {
			c := r.Cells[rw.ID][col]
			switch {
			case c == nil:
			case c.Fail != "":
				bad = append(bad, fmt.Sprintf("%s / %s: FAIL %s", rw.Label, col, c.Fail))
			case len(c.Samples) == 0 && c.Skip == "":
				bad = append(bad, fmt.Sprintf("%s / %s: no measurement", rw.Label, col))
			}
		}
	}
	return bad
}

// attempt runs one measurement of a cell with a timeout inside the run's budget, and records its
// sample or why there is none. It reports whether it produced a sample.
func (b *bench) attempt(ctx context.Context, rowID, col string, timeout time.Duration, fn func(ctx context.Context) (float64, error)) bool {
	v, cpu, err, ran := b.measure(ctx, rowID, col, timeout, fn)
	return ran && b.record(rowID, col, v, cpu, err)
}

// measure runs one measurement of a cell, without recording it: its value, the machine's CPU
// meanwhile (on the rows that report it) and its error. ran is false when it did not run (the
// cell has failed before, or no time is left: recorded as the cell's skip).
func (b *bench) measure(ctx context.Context, rowID, col string, timeout time.Duration, fn func(ctx context.Context) (float64, error)) (v float64, cpu *cpuSample, err error, ran bool) {
	if b.res.failed(rowID, col) {
		return 0, nil, nil, false // one failure is the cell's answer; do not spend time on more runs
	}
	left := time.Until(b.deadline)
	if ctx.Err() != nil {
		b.res.skip(rowID, col, "interrupted")
		return 0, nil, nil, false
	}
	if left < 5*time.Second {
		b.res.skip(rowID, col, "time budget used up")
		return 0, nil, nil, false
	}
	// Each measurement starts with the disk's write-back done: MinIO's requests (its fsyncs, its
	// O_DIRECT reads of large objects) wait behind write-back, which would charge one column for
	// what the seeding or an earlier column wrote.
	syscall.Sync()
	jctx, cancel := context.WithTimeoutCause(ctx, min(timeout, left), errJobTimeout(min(timeout, left)))
	defer cancel()
	var m *meter
	if _, ok := b.res.CPUUnits[rowID]; ok {
		m = &meter{minioPid: b.w.MinIO.Pid()}
		jctx = withMeter(jctx, m)
		m.begin() // a mount measures again, around the work on it (onMount)
	}
	v, err = b.guard(jctx, fn)
	if m != nil && m.sample == nil {
		m.end()
	}
	if m != nil {
		cpu = m.sample
	}
	return v, cpu, err, true
}

// record adds a measurement to its cell (or the cell's failure) and logs it; it reports whether
// there was a sample.
func (b *bench) record(rowID, col string, v float64, s *cpuSample, err error) bool {
	if err != nil {
		b.res.fail(rowID, col, err.Error())
		b.logf("  %s / %s: FAIL %v", rowID, col, err)
		return false
	}
	b.res.add(rowID, col, v)
	if s != nil {
		b.res.addCPU(rowID, col, *s)
		b.logf("  %s / %s: %s (CPU over %.2f s: machine %.2f s (stolen by the host %.2f), filesystem %.2f (in the kernel %.2f), MinIO %.2f, fio %.2f; filesystem page faults %.0f; reclaimed %.0f MiB directly, %.0f by kswapd; migrated %.0f MiB, %.0f compaction stalls; returned %.0f MiB to the host)",
			rowID, col, num(v), s.Wall, s.Busy, s.Steal, s.FS, s.FSSys, s.MinIO, s.Program, s.FSFaults, s.DirectMiB, s.KswapdMiB, s.MigratedMiB, s.CompactStalls, s.ReturnedMiB)
		return true
	}
	b.logf("  %s / %s: %s", rowID, col, num(v))
	return true
}

func errJobTimeout(d time.Duration) error {
	return fmt.Errorf("timed out after %s", d.Round(time.Second))
}

// guard runs fn, turning a panic into an error.
func (b *bench) guard(ctx context.Context, fn func(ctx context.Context) (float64, error)) (v float64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	v, err = fn(ctx)
	if err != nil && ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
		err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
	}
	return v, err
}

// Timeouts of one attempt: generous (10 MiB/s), so that only a stuck filesystem hits them.
func (b *bench) timeout(bytes int64) time.Duration {
	return time.Minute + time.Duration(bytes/(10*mib))*time.Second
}
func (b *bench) randTimeout() time.Duration {
	return time.Minute + time.Duration(b.sz.RandSeconds)*time.Second
}
func (b *bench) smallTimeout() time.Duration {
	return time.Minute + time.Duration(b.sz.SmallFiles)*100*time.Millisecond
}
func (b *bench) listTimeout(n int) time.Duration {
	return 30*time.Second + time.Duration(n)*20*time.Millisecond
}

// machine describes the host.
func machine() map[string]string {
	m := map[string]string{"cores": fmt.Sprintf("%d cores", runtime.NumCPU())}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(data), "\n", 2)[0], "MemTotal: %d kB", &kb)
		m["memory"] = fmt.Sprintf("%.0f GiB memory", float64(kb)/(1<<20))
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = "Linux " + strings.TrimSpace(string(data))
	}
	return m
}

// versions reports the version of everything measured or used.
func versions(s3mountBin string) map[string]string {
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "not installed"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	v := map[string]string{
		"s3mount": first(s3mountBin, "version"),
		"s3fs":    first("s3fs", "--version"),
		"rclone":  first("rclone", "version"),
		"fio":     first("fio", "--version"),
		"fuse3":   first("fusermount3", "-V"),
		"go":      runtime.Version(),
	}
	if bin, err := exec.LookPath("minio"); err == nil {
		pinned := bin
		if r, err := filepath.EvalSymlinks(bin); err == nil {
			pinned = filepath.Base(filepath.Dir(r)) // minio@<module version>, from install-deps.sh
		}
		v["minio"] = pinned + " (" + first("minio", "--version") + ")"
	}
	return v
}
