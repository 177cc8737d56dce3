//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// procStatus reads a field (in kB, or a count) from /proc/PID/status.
func procStatus(pid int, field string) int64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// openStagingFiles counts the staging files a process holds open (anonymous files named stage-*;
// the other descriptors are go-fuse's splice pipes, the runtime's and the connection pool).
func openStagingFiles(pid int) (n int, sockets int) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		target, _ := os.Readlink(dir + "/" + e.Name())
		switch {
		case strings.Contains(target, "/stage-"):
			n++
		case strings.HasPrefix(target, "socket:"):
			sockets++
		}
	}
	return n, sockets
}

// TestInteg_LoadWritersAndReaders: 16 writers × 200 files while 8 readers read. All data is
// correct in S3, memory stays within the configured bounds, and no descriptor or thread leaks.
func TestInteg_LoadWritersAndReaders(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	ctx := context.Background()
	prefix := testPrefix(t)
	sources := make([][]byte, 8)
	for i := range sources {
		sources[i] = randomBytes(int64(100+i), 16<<20)
		if err := w.Put(ctx, fmt.Sprintf("%sread/%d", prefix, i), bytes.NewReader(sources[i])); err != nil {
			t.Fatal(err)
		}
	}
	const cache = 64 << 20
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--cache-size", "64M")...)
	pid := m.cmd.Process.Pid
	if err := os.Mkdir(m.path("out"), 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	threadsBefore := procStatus(pid, "Threads")

	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 64)
	reads := make([]int, 8)
	for r := 0; r < 8; r++ {
		readers.Add(1)
		go func(r int) {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				data, err := os.ReadFile(m.path("read", strconv.Itoa(r)))
				if err != nil || !bytes.Equal(data, sources[r]) {
					errs <- fmt.Errorf("reader %d: %d bytes, %v", r, len(data), err)
					return
				}
				reads[r]++
				time.Sleep(100 * time.Millisecond)
			}
		}(r)
	}
	start := time.Now()
	for wr := 0; wr < 16; wr++ {
		writers.Add(1)
		go func(wr int) {
			defer writers.Done()
			for i := 0; i < 200; i++ {
				body := randomBytes(int64(wr*1000+i), 16<<10+(i%8)*8<<10)
				if err := os.WriteFile(m.path("out", fmt.Sprintf("w%02d-%03d", wr, i)), body, 0o644); err != nil {
					errs <- fmt.Errorf("writer %d file %d: %v", wr, i, err)
					return
				}
			}
		}(wr)
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	took := time.Since(start)
	// Every file is in S3 with the right bytes.
	bad := 0
	for wr := 0; wr < 16; wr++ {
		for i := 0; i < 200; i += 7 {
			want := randomBytes(int64(wr*1000+i), 16<<10+(i%8)*8<<10)
			got, err := w.Get(ctx, fmt.Sprintf("%sout/w%02d-%03d", prefix, wr, i))
			if err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d sampled files differ in S3", bad)
	}
	entries, err := os.ReadDir(m.path("out"))
	if err != nil || len(entries) != 3200 {
		t.Errorf("listing shows %d files (%v), want 3200", len(entries), err)
	}
	time.Sleep(time.Second)
	peakMiB := procStatus(pid, "VmHWM") / 1024
	staged, sockets := openStagingFiles(pid)
	threadsAfter := procStatus(pid, "Threads")
	// The bound: cache + read-ahead budget (96 MiB) + upload buffers (8 × 8 MiB) + 128 MiB.
	limitMiB := int64(cache>>20) + 96 + 64 + 128
	if peakMiB > limitMiB {
		t.Errorf("peak RSS %d MiB, want at most %d MiB", peakMiB, limitMiB)
	}
	if staged != 0 {
		t.Errorf("%d staging files still open after every file was closed", staged)
	}
	if sockets > 2*16+8 {
		t.Errorf("%d sockets open after the load, more than the connection pool holds", sockets)
	}
	if threadsAfter > threadsBefore+16 {
		t.Errorf("threads: %d before, %d after the load", threadsBefore, threadsAfter)
	}
	total := 0
	for _, n := range reads {
		total += n
	}
	record(t, "load", "16 writers × 200 files while 8 readers read 16 MiB files",
		fmt.Sprintf("all data correct; %s; %d full reads; peak RSS %d MiB (bound %d); %d staging files left open, %d pooled connections; threads %d→%d",
			took.Round(time.Second), total, peakMiB, limitMiB, staged, sockets, threadsBefore, threadsAfter))
}

// TestInteg_LoadLargeWritersAtOnce: 16 writers stream 40 MiB files side by side (five 8 MiB parts
// each) into a staging directory that holds less than they write. Every object is whole in S3,
// the daemon's memory stays within its bound (8 part buffers, mount-wide, however many write and
// however many parts are in flight: the others are sent from the staging file; with every full
// part read into memory at once it peaked at 417 MiB), writers wait for space rather than
// fail, and nothing is left behind.
func TestInteg_LoadLargeWritersAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	ctx := context.Background()
	prefix := testPrefix(t)
	const writers, size, cache = 16, 40 << 20, 64 << 20
	// 512 MiB of staging for 640 MiB: writers wait while the parts they filled are sent, and the
	// space is freed as they are (a file's first part stays until it is committed). More staging
	// than memory, so that the staging bound alone does not keep the memory low.
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--cache-size", "64M", "--staging-size", "512M")...)
	pid := m.cmd.Process.Pid
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for wr := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Create(m.path(fmt.Sprintf("big%02d", wr)))
			if err != nil {
				errs <- err
				return
			}
			body := randomBytes(int64(500+wr), size)
			for off := 0; off < size; off += 1 << 20 {
				if _, err := f.Write(body[off : off+1<<20]); err != nil {
					f.Close()
					errs <- fmt.Errorf("writer %d at %d MiB: %v", wr, off>>20, err)
					return
				}
			}
			if err := f.Sync(); err != nil {
				errs <- fmt.Errorf("writer %d: fsync: %v", wr, err)
			}
			if err := f.Close(); err != nil {
				errs <- fmt.Errorf("writer %d: close: %v", wr, err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	peakMiB := procStatus(pid, "VmHWM") / 1024
	for wr := range writers {
		got, err := w.Get(ctx, fmt.Sprintf("%sbig%02d", prefix, wr))
		if err != nil || sha256.Sum256(got) != sha256.Sum256(randomBytes(int64(500+wr), size)) {
			t.Errorf("big%02d in S3: %d bytes, %v; want the %d bytes written", wr, len(got), err, size)
		}
	}
	// The bound: cache + upload buffers (8 × 8 MiB) + 128 MiB, as with many small writers.
	limitMiB := int64(cache>>20) + 64 + 128
	if peakMiB > limitMiB {
		t.Errorf("peak RSS %d MiB with %d writers, want at most %d MiB", peakMiB, writers, limitMiB)
	}
	if staged, _ := openStagingFiles(pid); staged != 0 {
		t.Errorf("%d staging files still open after every file was closed", staged)
	}
	if n := pendingUploads(t, w, prefix); n != 0 {
		t.Errorf("%d multipart uploads left behind", n)
	}
	record(t, "load", fmt.Sprintf("%d writers × %d MiB at once, 512 MiB of staging", writers, size>>20),
		fmt.Sprintf("all data correct; %s; peak RSS %d MiB (bound %d)", took.Round(100*time.Millisecond), peakMiB, limitMiB))
}
