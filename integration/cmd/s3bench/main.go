// Command s3bench measures s3mount side by side with the direct-SDK ceiling and with s3fs and
// rclone mount, in one run, on one local MinIO, and writes a markdown table, JSON and PNG charts.
// See docs/PERFORMANCE.md; `make bench` runs it in full, `make bench-smoke` with tiny sizes.
//
// Every filesystem gets its own prefix and a fresh mount per job, so that no job reads a warm
// cache by accident. Write jobs are timed until the data is in S3 (checked with the SDK), as well
// as until the writer returns. A job or peer that fails shows FAIL with the reason; the run goes on.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// onlyNames, when not empty, limits the filesystems measured (-only).
var onlyNames map[string]bool

// sizes of one run.
type sizes struct {
	seqFile, parFile, randFile int64
	randSeconds                int
	smallFiles, smallSize      int
	listObjects                int
	ttfbRuns, repeats          int
}

var full = sizes{seqFile: 1 << 30, parFile: 512 << 20, randFile: 1 << 30, randSeconds: 20, smallFiles: 1000, smallSize: 64 << 10, listObjects: 10000, ttfbRuns: 10, repeats: 3}
var smoke = sizes{seqFile: 16 << 20, parFile: 8 << 20, randFile: 16 << 20, randSeconds: 2, smallFiles: 20, smallSize: 64 << 10, listObjects: 200, ttfbRuns: 2, repeats: 1}

func main() {
	smokeRun := flag.Bool("smoke", false, "tiny sizes, for CI (under 2 minutes)")
	out := flag.String("out", "bench-results", "directory for results.json, results.md and the charts")
	s3mountBin := flag.String("s3mount", "bin/s3mount", "the s3mount binary")
	only := flag.String("only", "", "measure only these filesystems (comma-separated names), besides the ceiling")
	flag.Parse()
	onlyNames = map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			onlyNames[n] = true
		}
	}
	sz := full
	if *smokeRun {
		sz = smoke
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	abs, err := filepath.Abs(*s3mountBin)
	if err != nil {
		log.Fatal(err)
	}
	if err := run(sz, *out, abs, *smokeRun); err != nil {
		log.Fatal(err)
	}
}

func run(sz sizes, out, s3mountBin string, isSmoke bool) error {
	start := time.Now()
	tmp, err := os.MkdirTemp("", "s3bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx := context.Background()
	w, err := world.Start(ctx, world.Options{Dir: tmp, Log: io.Discard})
	if err != nil {
		return fmt.Errorf("starting MinIO and the AWS emulator: %w", err)
	}
	defer w.Close()
	b := &bench{w: w, sz: sz, tmp: tmp, results: newResults()}
	log.Printf("seeding data")
	if err := b.seed(ctx); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	log.Printf("ceiling (aws-sdk-go-v2 feature/s3/manager)")
	b.ceiling(ctx)
	for _, f := range b.filesystems(s3mountBin, tmp) {
		if len(onlyNames) > 0 && !onlyNames[f.name] {
			continue
		}
		if reason := f.available(); reason != "" {
			b.results.skip(f.name, reason)
			log.Printf("%s: not measured: %s", f.name, reason)
			continue
		}
		log.Printf("%s", f.name)
		b.runJobs(ctx, f)
	}
	b.results.Date = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	b.results.Machine = machine()
	b.results.Versions = versions(s3mountBin)
	b.results.Smoke = isSmoke
	b.results.Took = time.Since(start).Round(time.Second).String()
	if err := b.results.write(out); err != nil {
		return err
	}
	fmt.Print(b.results.markdown())
	return nil
}

// versions reports the versions of everything measured.
func versions(s3mountBin string) map[string]string {
	v := map[string]string{}
	cmdOut := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "not installed"
		}
		line := string(out)
		if i := indexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		return line
	}
	v["s3mount"] = cmdOut(s3mountBin, "version")
	v["s3fs"] = cmdOut("s3fs", "--version")
	v["rclone"] = cmdOut("rclone", "version")
	v["fio"] = cmdOut("fio", "--version")
	if bin, err := exec.LookPath("minio"); err == nil {
		v["minio"] = filepath.Base(filepath.Dir(mustEval(bin)))
	}
	return v
}

func mustEval(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// machine describes the host.
func machine() string {
	cores := 0
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range splitLines(string(data)) {
			if len(line) > 9 && line[:9] == "processor" {
				cores++
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(splitLines(string(data))[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d cores, %s memory", cores, mem)
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := indexByte(s, '\n')
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return out
}
