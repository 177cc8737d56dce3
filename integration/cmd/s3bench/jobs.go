package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/world"
)

type bench struct {
	w       *world.World
	sz      sizes
	tmp     string
	results *results
}

const mib = 1 << 20

// data keys, below benchRoot.
func dataKey(name string) string { return benchRoot + "/data/" + name }

// patternReader yields n bytes of a repeated random 1 MiB pattern (cheap to produce, not
// compressible within a MiB).
type patternReader struct {
	buf  []byte
	left int64
	off  int
}

func newPattern(seed int64, n int64) *patternReader {
	buf := make([]byte, mib)
	rand.New(rand.NewSource(seed)).Read(buf)
	return &patternReader{buf: buf, left: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(int64(len(b)), p.left)], p.buf[p.off:])
	p.off = (p.off + n) % len(p.buf)
	p.left -= int64(n)
	return n, nil
}

func (b *bench) uploader() *manager.Uploader {
	return manager.NewUploader(b.w.Admin, func(u *manager.Uploader) { u.PartSize, u.Concurrency = 8*mib, 8 })
}

func (b *bench) seed(ctx context.Context) error {
	up := b.uploader()
	put := func(key string, size int64, seed int64) error {
		_, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(key), Body: newPattern(seed, size)})
		return err
	}
	if err := put(dataKey("seq"), b.sz.seqFile, 1); err != nil {
		return err
	}
	for i := 0; i < 4; i++ {
		if err := put(dataKey(fmt.Sprintf("par%d", i)), b.sz.parFile, int64(10+i)); err != nil {
			return err
		}
	}
	// The directory for ls -l: small objects, written in parallel.
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	keys := make(chan int)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				_, err := b.w.Admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket),
					Key: aws.String(fmt.Sprintf("%s/list/obj-%06d", benchRoot, i)), Body: bytes.NewReader([]byte("x"))})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := 0; i < b.sz.listObjects; i++ {
		keys <- i
	}
	close(keys)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return nil
}

// discardAt is an io.WriterAt that keeps nothing.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

// ceiling measures what a program linking the SDK gets.
func (b *bench) ceiling(ctx context.Context) {
	const col = "ceiling"
	dl := manager.NewDownloader(b.w.Admin, func(d *manager.Downloader) { d.PartSize, d.Concurrency = 8*mib, 8 })
	download := func(key string) error {
		_, err := dl.Download(ctx, discardAt{}, &s3.GetObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(key)})
		return err
	}
	_ = download(dataKey("seq")) // warm MinIO's page cache for everyone
	b.repeat(jobSeqRead, col, func() (float64, error) {
		start := time.Now()
		err := download(dataKey("seq"))
		return mibPerSec(b.sz.seqFile, start), err
	})
	b.repeat(jobParRead, col, func() (float64, error) {
		start := time.Now()
		var wg sync.WaitGroup
		var firstErr error
		var mu sync.Mutex
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if err := download(dataKey(fmt.Sprintf("par%d", i))); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}(i)
		}
		wg.Wait()
		return mibPerSec(4*b.sz.parFile, start), firstErr
	})
	b.repeat(jobSeqWrite, col, func() (float64, error) {
		start := time.Now()
		_, err := b.uploader().Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(benchRoot + "/w-ceiling/seqwrite"), Body: newPattern(5, b.sz.seqFile)})
		return mibPerSec(b.sz.seqFile, start), err
	})
	b.repeat(jobSmallCreate, col, func() (float64, error) {
		body := make([]byte, b.sz.smallSize)
		start := time.Now()
		for i := 0; i < b.sz.smallFiles; i++ {
			if _, err := b.w.Admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket),
				Key: aws.String(fmt.Sprintf("%s/w-ceiling/small/%05d", benchRoot, i)), Body: bytes.NewReader(body)}); err != nil {
				return 0, err
			}
		}
		return float64(b.sz.smallFiles) / time.Since(start).Seconds(), nil
	})
	b.repeat(jobList, col, func() (float64, error) {
		start := time.Now()
		p := s3.NewListObjectsV2Paginator(b.w.Admin, &s3.ListObjectsV2Input{Bucket: aws.String(world.Bucket), Prefix: aws.String(benchRoot + "/list/"), Delimiter: aws.String("/")})
		for p.HasMorePages() {
			if _, err := p.NextPage(ctx); err != nil {
				return 0, err
			}
		}
		return time.Since(start).Seconds(), nil
	})
	var samples []float64
	for i := 0; i < 10; i++ {
		start := time.Now()
		out, err := b.w.Admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(dataKey("seq")), Range: aws.String("bytes=0-0")})
		if err != nil {
			b.results.fail(jobTTFB, col, err)
			return
		}
		io.Copy(io.Discard, out.Body)
		out.Body.Close()
		samples = append(samples, float64(time.Since(start).Microseconds())/1000)
	}
	b.results.set(jobTTFB, col, samples)
}

func mibPerSec(n int64, start time.Time) float64 {
	return float64(n) / mib / time.Since(start).Seconds()
}

// repeat runs a measurement sz.repeats times and records the samples (or the failure).
func (b *bench) repeat(job, col string, f func() (float64, error)) {
	var samples []float64
	for i := 0; i < b.sz.repeats; i++ {
		v, err := f()
		if err != nil {
			b.results.fail(job, col, err)
			log.Printf("  %s / %s: FAIL %v", job, col, err)
			return
		}
		samples = append(samples, v)
	}
	b.results.set(job, col, samples)
	log.Printf("  %s / %s: %.1f", job, col, median(samples))
}

// withMount runs f on a fresh mount of fs and records the peak RSS of its process.
func (b *bench) withMount(f filesystem, job string, fn func(dir string) (float64, error)) (float64, error) {
	dir, err := os.MkdirTemp(b.tmp, "mnt-")
	if err != nil {
		return 0, err
	}
	pid, err := f.mount(dir)
	if err != nil {
		return 0, fmt.Errorf("mount: %w", err)
	}
	defer unmount(dir, pid)
	v, err := fn(dir)
	if job == jobSeqRead || job == jobParRead || job == jobRandRead || job == jobSeqWrite {
		b.results.peak(f.name, peakRSS(pid))
	}
	return v, err
}

// fio runs fio and returns the bandwidth in MiB/s summed over its jobs.
func fio(args ...string) (float64, error) {
	out, err := os.CreateTemp("", "fio-*.json")
	if err != nil {
		return 0, err
	}
	out.Close()
	defer os.Remove(out.Name())
	cmd := exec.Command("fio", append(args, "--output-format=json", "--output="+out.Name(), "--ioengine=sync", "--bs=256k", "--group_reporting")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("fio: %v: %s", err, lastLine(stderr.String()))
	}
	data, err := os.ReadFile(out.Name())
	if err != nil {
		return 0, err
	}
	var res struct {
		Jobs []struct {
			Read, Write struct {
				BW int64 `json:"bw_bytes"`
			}
		}
	}
	if i := bytes.IndexByte(data, '{'); i > 0 {
		data = data[i:] // fio may print notes before the JSON
	}
	if err := json.Unmarshal(data, &res); err != nil || len(res.Jobs) == 0 {
		return 0, fmt.Errorf("fio output: %v", err)
	}
	return float64(res.Jobs[0].Read.BW+res.Jobs[0].Write.BW) / mib, nil
}

func (b *bench) runJobs(ctx context.Context, f filesystem) {
	size := strconv.FormatInt(b.sz.seqFile, 10)
	b.repeat(jobSeqRead, f.name, func() (float64, error) {
		return b.withMount(f, jobSeqRead, func(dir string) (float64, error) {
			return fio("--name=seqread", "--rw=read", "--readonly", "--filename="+filepath.Join(dir, "data/seq"), "--size="+size)
		})
	})
	b.repeat(jobParRead, f.name, func() (float64, error) {
		return b.withMount(f, jobParRead, func(dir string) (float64, error) {
			args := []string{"--rw=read", "--readonly", "--size=" + strconv.FormatInt(b.sz.parFile, 10)}
			for i := 0; i < 4; i++ {
				args = append(args, fmt.Sprintf("--name=par%d", i), "--filename="+filepath.Join(dir, fmt.Sprintf("data/par%d", i)))
			}
			return fio(args...)
		})
	})
	b.repeat(jobRandRead, f.name, func() (float64, error) {
		return b.withMount(f, jobRandRead, func(dir string) (float64, error) {
			return fio("--name=randread", "--rw=randread", "--readonly", "--filename="+filepath.Join(dir, "data/seq"),
				"--size="+size, "--time_based", fmt.Sprintf("--runtime=%d", b.sz.randSeconds), "--randrepeat=0")
		})
	})
	b.repeat(jobSeqWrite, f.name, func() (float64, error) {
		return b.withMount(f, jobSeqWrite, func(dir string) (float64, error) {
			os.MkdirAll(filepath.Join(dir, f.prefix), 0o755)
			name := f.prefix + "seqwrite-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			start := time.Now()
			if _, err := fio("--name=seqwrite", "--rw=write", "--filename="+filepath.Join(dir, name), "--size="+size, "--fsync_on_close=1"); err != nil {
				return 0, err
			}
			returned := mibPerSec(b.sz.seqFile, start)
			if err := b.waitInS3(ctx, []string{benchRoot + "/" + name}, b.sz.seqFile); err != nil {
				return 0, err
			}
			b.results.note(jobSeqWrite, f.name, fmt.Sprintf("%.0f MiB/s until the writer returned", returned))
			return mibPerSec(b.sz.seqFile, start), nil
		})
	})
	b.repeat(jobSmallCreate, f.name, func() (float64, error) {
		return b.withMount(f, jobSmallCreate, func(dir string) (float64, error) {
			sub := f.prefix + "small-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				return 0, err
			}
			body := make([]byte, b.sz.smallSize)
			var keys []string
			start := time.Now()
			for i := 0; i < b.sz.smallFiles; i++ {
				name := fmt.Sprintf("%s/%05d", sub, i)
				if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
					return 0, err
				}
				keys = append(keys, benchRoot+"/"+name)
			}
			if err := b.waitInS3(ctx, keys, int64(b.sz.smallSize)); err != nil {
				return 0, err
			}
			rate := float64(b.sz.smallFiles) / time.Since(start).Seconds()
			// Read them back on a fresh mount.
			rstart := time.Now()
			read, err := b.withMount(f, jobSmallRead, func(dir2 string) (float64, error) {
				for i := 0; i < b.sz.smallFiles; i++ {
					if _, err := os.ReadFile(filepath.Join(dir2, fmt.Sprintf("%s/%05d", sub, i))); err != nil {
						return 0, err
					}
				}
				return float64(b.sz.smallFiles) / time.Since(rstart).Seconds(), nil
			})
			if err != nil {
				b.results.fail(jobSmallRead, f.name, err)
			} else {
				b.results.add(jobSmallRead, f.name, read)
			}
			return rate, nil
		})
	})
	b.repeat(jobList, f.name, func() (float64, error) {
		return b.withMount(f, jobList, func(dir string) (float64, error) {
			start := time.Now()
			entries, err := os.ReadDir(filepath.Join(dir, "list"))
			if err != nil {
				return 0, err
			}
			for _, e := range entries {
				if _, err := os.Lstat(filepath.Join(dir, "list", e.Name())); err != nil {
					return 0, err
				}
			}
			if len(entries) != b.sz.listObjects {
				return 0, fmt.Errorf("listed %d of %d entries", len(entries), b.sz.listObjects)
			}
			return time.Since(start).Seconds(), nil
		})
	})
	var ttfb []float64
	for i := 0; i < b.sz.ttfbRuns; i++ {
		v, err := b.withMount(f, jobTTFB, func(dir string) (float64, error) {
			start := time.Now()
			fh, err := os.Open(filepath.Join(dir, "data/seq"))
			if err != nil {
				return 0, err
			}
			defer fh.Close()
			if _, err := fh.Read(make([]byte, 1)); err != nil {
				return 0, err
			}
			return float64(time.Since(start).Microseconds()) / 1000, nil
		})
		if err != nil {
			b.results.fail(jobTTFB, f.name, err)
			return
		}
		ttfb = append(ttfb, v)
	}
	b.results.set(jobTTFB, f.name, ttfb)
}

// waitInS3 waits until every key exists in S3 with the given size (a filesystem that
// acknowledges before uploading is timed until the upload is done).
func (b *bench) waitInS3(ctx context.Context, keys []string, size int64) error {
	deadline := time.Now().Add(10 * time.Minute)
	for _, k := range keys {
		for {
			out, err := b.w.Admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(k)})
			if err == nil && aws.ToInt64(out.ContentLength) == size {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not in S3 after 10 minutes", k)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
