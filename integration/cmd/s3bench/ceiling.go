package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/s3mount/s3mount/integration/world"
)

// ceilingRoot is where the ceiling reads (the source of every copy) and writes.
const ceilingRoot = "team-a/bench-ceiling"

// discardAt is an io.WriterAt that keeps nothing.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

// sweepConcurrency are the parts in flight the ceiling's bulk jobs try, each repetition: the
// cell is the best of them, so that it is the best the SDK can do, not its default.
var sweepConcurrency = []int{8, 16, 32, 64}

// ceilingJobs measure what a program linking aws-sdk-go-v2 gets from the same MinIO: the
// feature/s3/manager Downloader and Uploader (8 MiB parts, the best of sweepConcurrency) for the
// bulk jobs, and plain single requests for the rest, one at a time like the single-threaded jobs.
// Each is one repetition of the filesystems' job of the same name, and runs in turn with them
// (see runJobs), so that the ratios to the ceiling compare measurements taken side by side.
func (b *bench) ceilingJobs() map[string]func(ctx context.Context, rep int) {
	col := colCeiling
	download := func(ctx context.Context, key string, conc int) error {
		dl := manager.NewDownloader(b.role, func(d *manager.Downloader) { d.PartSize, d.Concurrency = partSize, conc })
		_, err := dl.Download(ctx, discardAt{}, &s3.GetObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(key)})
		return err
	}
	return map[string]func(ctx context.Context, rep int){
		"seqread": func(ctx context.Context, _ int) {
			b.sweep(ctx, rowSeqRead, b.timeout(b.sz.SeqFile), func(ctx context.Context, conc int) (float64, error) {
				start := time.Now()
				err := download(ctx, seqKey(ceilingRoot), conc)
				return mibPerSec(b.sz.SeqFile, start), err
			})
		},
		"seqread4": func(ctx context.Context, _ int) {
			b.sweep(ctx, rowParRead, b.timeout(4*b.sz.ParFile), func(ctx context.Context, conc int) (float64, error) {
				start := time.Now()
				var fns []func() error
				for i := 0; i < 4; i++ {
					fns = append(fns, func() error { return download(ctx, parKey(ceilingRoot, i), conc) })
				}
				err := parallel(4, fns)
				return mibPerSec(4*b.sz.ParFile, start), err
			})
		},
		"randread": func(ctx context.Context, _ int) {
			b.attempt(ctx, rowRandRead, col, b.randTimeout(), func(ctx context.Context) (float64, error) {
				return b.sdkRandomRead(ctx, b.role, seqKey(ceilingRoot))
			})
		},
		"seqwrite": func(ctx context.Context, rep int) {
			key := fmt.Sprintf("%s/w/seqwrite-%d", ceilingRoot, rep)
			b.sweep(ctx, rowWriteS3, b.timeout(b.sz.WriteFile), func(ctx context.Context, conc int) (float64, error) {
				start := time.Now()
				err := putConc(ctx, b.role, key, newPattern(5, b.sz.WriteFile), conc)
				return mibPerSec(b.sz.WriteFile, start), err
			})
			b.deletePrefix(ctx, key)
		},
		"smallfiles": func(ctx context.Context, rep int) {
			prefix := fmt.Sprintf("%s/w/small-%d/", ceilingRoot, rep)
			body := make([]byte, b.sz.SmallSize)
			ok := b.attempt(ctx, rowCreateS3, col, b.smallTimeout(), func(ctx context.Context) (float64, error) {
				start := time.Now()
				for i := 0; i < b.sz.SmallFiles; i++ {
					if _, err := b.role.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket),
						Key: aws.String(fmt.Sprintf("%s%05d", prefix, i)), Body: bytes.NewReader(body)}); err != nil {
						return 0, err
					}
				}
				return float64(b.sz.SmallFiles) / time.Since(start).Seconds(), nil
			})
			if ok {
				b.attempt(ctx, rowSmallRead, col, b.smallTimeout(), func(ctx context.Context) (float64, error) {
					start := time.Now()
					for i := 0; i < b.sz.SmallFiles; i++ {
						if _, err := b.getAll(ctx, b.role, fmt.Sprintf("%s%05d", prefix, i), ""); err != nil {
							return 0, err
						}
					}
					return float64(b.sz.SmallFiles) / time.Since(start).Seconds(), nil
				})
			}
			b.deletePrefix(ctx, prefix)
		},
		"ls": func(ctx context.Context, _ int) {
			b.attempt(ctx, rowList, col, 2*time.Minute, func(ctx context.Context) (float64, error) {
				return b.sdkList(ctx, b.role, listPrefix(ceilingRoot, b.sz.ListObjects), b.sz.ListObjects)
			})
		},
		"restic": b.ceilingRestic,
		// The latency of a single 1-byte GET, as many times as the filesystems open a fresh mount.
		"ttfb": func(ctx context.Context, _ int) {
			for i := 0; i < b.sz.TTFBRuns; i++ {
				b.attempt(ctx, rowTTFB, col, time.Minute, func(ctx context.Context) (float64, error) {
					start := time.Now()
					_, err := b.getAll(ctx, b.role, seqKey(ceilingRoot), "bytes=0-0")
					return ms(start), err
				})
			}
		},
	}
}

// sweep measures a ceiling cell at every concurrency of sweepConcurrency and records the best,
// with its CPU; the cell fails only if every concurrency failed.
func (b *bench) sweep(ctx context.Context, rowID string, timeout time.Duration, fn func(ctx context.Context, conc int) (float64, error)) {
	best, bestConc := 0.0, 0
	var bestCPU *cpuSample
	var lastErr error
	for _, conc := range sweepConcurrency {
		v, cpu, err, ran := b.measure(ctx, rowID, colCeiling, timeout, func(ctx context.Context) (float64, error) { return fn(ctx, conc) })
		if !ran {
			break
		}
		if err != nil {
			lastErr = err
			b.logf("  %s / %s at concurrency %d: FAIL %v", rowID, colCeiling, conc, err)
			continue
		}
		b.logf("  %s / %s at concurrency %d: %s", rowID, colCeiling, conc, num(v))
		if bestConc == 0 || v > best {
			best, bestConc, bestCPU = v, conc, cpu
		}
	}
	switch {
	case bestConc > 0:
		b.record(rowID, colCeiling, best, bestCPU, nil)
		b.res.sweepWon(rowID, bestConc)
	case lastErr != nil:
		b.record(rowID, colCeiling, 0, nil, lastErr)
	}
}

func ms(start time.Time) float64 { return float64(time.Since(start).Microseconds()) / 1000 }

func mibPerSec(n int64, start time.Time) float64 {
	return float64(n) / mib / time.Since(start).Seconds()
}

// getAll GETs an object (or a range of it) and reads the body to the end.
func (b *bench) getAll(ctx context.Context, c *s3.Client, key, rng string) (int64, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := c.GetObject(ctx, in)
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	return io.Copy(io.Discard, out.Body)
}

// sdkRandomRead is job 3 done with ranged GETs: one at a time, 256 KiB at random aligned offsets
// of the 1 GiB object, for the job's duration.
func (b *bench) sdkRandomRead(ctx context.Context, c *s3.Client, key string) (float64, error) {
	const block = 256 << 10
	rnd := rand.New(rand.NewSource(7))
	blocks := b.sz.SeqFile / block
	start := time.Now()
	end := start.Add(time.Duration(b.sz.RandSeconds) * time.Second)
	var total int64
	for time.Now().Before(end) {
		off := rnd.Int63n(blocks) * block
		n, err := b.getAll(ctx, c, key, fmt.Sprintf("bytes=%d-%d", off, off+block-1))
		if err != nil {
			return 0, err
		}
		total += n
	}
	return mibPerSec(total, start), nil
}

// sdkList is the bare LIST calls of ls: ListObjectsV2 with a delimiter, page after page. It returns
// seconds.
func (b *bench) sdkList(ctx context.Context, c *s3.Client, prefix string, want int) (float64, error) {
	start := time.Now()
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(world.Bucket),
		Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		n += len(page.Contents)
	}
	if n != want {
		return 0, fmt.Errorf("listed %d of %d objects", n, want)
	}
	return time.Since(start).Seconds(), nil
}

// roleCredentials makes the credentials s3mount uses: the emulated instance profile, then
// AssumeRole into the access role with its External ID (MinIO checks an STS session token and a
// session policy on every request made with them). Each Retrieve assumes the role anew (a fresh
// session for each peer's mount); wrap it in a cache for a client.
func (b *bench) roleCredentials() aws.CredentialsProvider {
	imdsClient := imds.New(imds.Options{Endpoint: b.ep.IMDS})
	instance := aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = imdsClient }))
	stsClient := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(b.ep.STS), Credentials: instance})
	role := stscreds.NewAssumeRoleProvider(stsClient, world.AccessRole, func(o *stscreds.AssumeRoleOptions) {
		o.ExternalID = aws.String(world.AccessExtID)
	})
	return role
}

// diagnostics measures request costs that explain the request-bound rows: HEAD throughput (64 in
// parallel, as s3mount's listing runs them), 1-byte GET and 64 KiB PUT latency, with the role's
// session credentials (what every column uses) and, to show what MinIO's session checks cost, with
// its root keys.
func (b *bench) diagnostics(ctx context.Context) {
	syscall.Sync() // as before every measurement (see attempt)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n := min(b.sz.ListObjects, 3000)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sobj-%06d", listPrefix(ceilingRoot, b.sz.ListObjects), i)
	}
	clients := []struct {
		name   string
		client *s3.Client
	}{{"role session (keyless chain)", b.role}, {"MinIO root keys", b.s3}}
	shaped := b.ep.Network.Shaped()
	if shaped {
		clients = clients[:1] // the root keys' client talks to MinIO directly, unshaped
	}
	for _, c := range clients {
		// One request first: the session credentials are fetched outside the timing.
		if _, err := c.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(keys[0])}); err != nil {
			b.res.diag(fmt.Sprintf("HEAD with %s: FAIL %v", c.name, err))
			continue
		}
		var fails atomic.Int64
		var fns []func() error
		for _, k := range keys {
			fns = append(fns, func() error {
				if _, err := c.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(k)}); err != nil {
					fails.Add(1)
				}
				return nil
			})
		}
		start := time.Now()
		_ = parallel(64, fns)
		headRate := float64(n) / time.Since(start).Seconds()
		var lat []float64
		var mu sync.Mutex
		for i := 0; i < 20; i++ {
			start := time.Now()
			if _, err := b.getAll(ctx, c.client, seqKey(ceilingRoot), "bytes=0-0"); err == nil {
				mu.Lock()
				lat = append(lat, ms(start))
				mu.Unlock()
			}
		}
		sort.Float64s(lat)
		// One after another, as job 5 creates its files.
		var puts []float64
		body := make([]byte, b.sz.SmallSize)
		for i := 0; i < 100; i++ {
			start := time.Now()
			key := fmt.Sprintf("%s/diag-put/%d", ceilingRoot, i)
			if _, err := c.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err == nil {
				puts = append(puts, ms(start))
			}
		}
		sort.Float64s(puts)
		listS, err := b.sdkList(ctx, c.client, listPrefix(ceilingRoot, b.sz.ListObjects), b.sz.ListObjects)
		listStr := fmt.Sprintf("%.2f s", listS)
		if err != nil {
			listStr = "FAIL " + err.Error()
		}
		b.res.diag(fmt.Sprintf("SDK with %s: %.0f HEAD/s (%d HEADs, 64 in parallel, %d failed); 1-byte GET median %.2f ms; "+
			"%s PUT median %.2f ms (one at a time); LIST of %d objects %s", c.name, headRate, n, fails.Load(), median(lat),
			bytesStr(int64(b.sz.SmallSize)), median(puts), b.sz.ListObjects, listStr))
	}
	if !shaped { // what pauses cost on this machine's cores: beside 20 ms requests, nothing
		b.pacedPuts(ctx)
	}
	b.deletePrefix(context.WithoutCancel(ctx), ceilingRoot+"/diag-put/")
}

// pacedPuts measures what a pause between small PUTs costs here. A mount cannot send its PUTs
// back to back: between two files the program and the kernel exchange FUSE requests with it (the
// floor takes some 0.3 ms a file for them), and meanwhile the client and MinIO wait. The same
// PUTs with a 0.3 ms sleep before each, and with a 0.3 ms busy wait, taking turns with PUTs back
// to back, show how much of job 5's gap to the ceiling is the machine waking its cores up.
func (b *bench) pacedPuts(ctx context.Context) {
	const pause = 300 * time.Microsecond
	modes := []string{"back to back", "sleep", "busy wait"}
	n := map[string]int{}
	took := map[string]time.Duration{}
	body := make([]byte, b.sz.SmallSize)
	for round := 0; round < 4; round++ {
		for _, m := range modes {
			start := time.Now()
			for i := 0; i < 50; i++ {
				switch m {
				case "sleep":
					time.Sleep(pause)
				case "busy wait":
					for t := time.Now(); time.Since(t) < pause; {
					}
				}
				key := fmt.Sprintf("%s/diag-put/paced-%d", ceilingRoot, i)
				if _, err := b.role.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(world.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
					b.res.diag(fmt.Sprintf("paced PUTs: FAIL %v", err))
					return
				}
				n[m]++
			}
			took[m] += time.Since(start)
		}
	}
	rate := func(m string) float64 { return float64(n[m]) / took[m].Seconds() }
	b.res.diag(fmt.Sprintf("%s PUTs one at a time with the role session, taking turns: back to back %.0f files/s; "+
		"with a %v sleep before each (what a mount's FUSE round trips between files take) %.0f files/s (%s), "+
		"with a %v busy wait instead %.0f files/s (%s)", bytesStr(int64(b.sz.SmallSize)), rate("back to back"),
		pause, rate("sleep"), ratio(rate("sleep")/rate("back to back")), pause, rate("busy wait"),
		ratio(rate("busy wait")/rate("back to back"))))
}
