//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/faultproxy"
	"github.com/s3mount/s3mount/integration/world"
)

// proxied starts a fault proxy in front of MinIO and returns it with the mount flag that uses it.
func proxied(t *testing.T, wd *world.World) (*faultproxy.Proxy, []string) {
	t.Helper()
	p, err := faultproxy.Start(wd.MinIO.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, []string{"--endpoint", p.URL()}
}

// pendingUploads counts the incomplete multipart uploads under prefix. MinIO lists the uploads of
// one key only: give it the whole key.
func pendingUploads(t *testing.T, wd *world.World, prefix string) int {
	t.Helper()
	out, err := wd.Admin.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(world.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

func startPrivateWorld(t *testing.T, expiry time.Duration) *world.World {
	t.Helper()
	w2, err := world.Start(context.Background(), world.Options{Dir: t.TempDir(), ReportedExpiry: expiry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w2.Close)
	return w2
}

func TestInteg_FaultReadsResumeMidStream(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	data := randomBytes(11, 24<<20)
	if err := w.Put(ctx, prefix+"f", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	p, ep := proxied(t, w)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(append(accessChain(), ep...), "--cache-size", "0")...)
	p.Add(faultproxy.Fault{Match: faultproxy.IsGet, CutAfter: 300 << 10, Times: 4})
	got, err := os.ReadFile(m.path("f"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with bodies cut short: %d bytes, %v", len(got), err)
	}
	if p.Hits() < 4 {
		t.Errorf("only %d bodies were cut", p.Hits())
	}
	record(t, "fault", "GET bodies cut short (4 times, 24 MiB file)", "read resumes mid-stream; bytes identical")
}

func TestInteg_FaultTransientErrorsAreRetried(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	p, ep := proxied(t, w)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), ep...)...)
	p.Add(faultproxy.Fault{Match: faultproxy.IsUploadPart, Status: 503, Code: "SlowDown", Times: 3})
	p.Add(faultproxy.Fault{Match: faultproxy.IsPut, Status: 500, Code: "InternalError", Times: 2})
	p.Add(faultproxy.Fault{Match: faultproxy.IsComplete, Reset: true, Times: 1})
	p.Add(faultproxy.Fault{Delay: 100 * time.Millisecond, Times: 20})
	big, small := randomBytes(12, 20<<20), randomBytes(13, 4096)
	if err := os.WriteFile(m.path("big"), big, 0o644); err != nil {
		t.Fatalf("write with transient faults: %v", err)
	}
	if err := os.WriteFile(m.path("small"), small, 0o644); err != nil {
		t.Fatalf("write with transient faults: %v", err)
	}
	for name, want := range map[string][]byte{"big": big, "small": small} {
		got, err := w.Get(ctx, prefix+name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s in S3: %d bytes, %v", name, len(got), err)
		}
	}
	record(t, "fault", "503 SlowDown on parts, 500 on PUT, reset on complete, 100 ms latency", "retried with backoff; writes succeed; S3 holds the exact bytes")
}

func TestInteg_FaultOutlastingRetriesReachesTheWriter(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	if err := w.Put(ctx, prefix+"f", strings.NewReader("previous version")); err != nil {
		t.Fatal(err)
	}
	p, ep := proxied(t, w)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), ep...)...)
	p.Add(faultproxy.Fault{Match: faultproxy.IsUploadPart, Status: 500, Code: "InternalError"})
	p.Add(faultproxy.Fault{Match: faultproxy.IsPut, Status: 503, Code: "SlowDown"})
	for _, size := range []int{1000, 20 << 20} {
		f, err := os.OpenFile(m.path("f"), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, werr := f.Write(randomBytes(14, size))
		serr := f.Sync()
		cerr := f.Close()
		if werr == nil && serr == nil && cerr == nil {
			t.Errorf("%d bytes: write, fsync and close all succeeded though S3 refused every upload", size)
		}
		got, err := w.Get(ctx, prefix+"f")
		if err != nil || string(got) != "previous version" {
			t.Errorf("%d bytes: S3 holds %d bytes (%v), want the previous version intact", size, len(got), err)
		}
		record(t, "fault", fmt.Sprintf("every upload fails (%d bytes)", size), fmt.Sprintf("write=%v fsync=%v close=%v; previous object intact", errno(werr), errno(serr), errno(cerr)))
	}
	p.Clear()
	deadline := time.Now().Add(10 * time.Second)
	for pendingUploads(t, w, prefix+"f") > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := pendingUploads(t, w, prefix+"f"); n != 0 {
		t.Errorf("%d multipart uploads left behind", n)
	}
}

// errno renders an error as its errno name, or "ok".
func errno(err error) string {
	var e syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e):
		return e.Error()
	}
	return err.Error()
}

func TestInteg_FaultMinIORestartDuringMultipart(t *testing.T) {
	ctx := context.Background()
	w2 := startPrivateWorld(t, 0)
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(w2.MountArgs(), accessChain()...)...)
	data := randomBytes(15, 48<<20)
	f, err := os.Create(m.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if off == 24<<20 {
			if err := w2.MinIO.Restart(); err != nil {
				t.Fatalf("restarting MinIO: %v", err)
			}
		}
		if _, err := f.Write(data[off : off+1<<20]); err != nil {
			t.Logf("write during the restart: %v", err)
			f.Close()
			record(t, "fault", "MinIO restarted during a multipart upload", "the writer got "+errno(err))
			return
		}
	}
	cerr := f.Close()
	got, err := w2.Get(ctx, prefix+"f")
	switch {
	case cerr == nil && (err != nil || !bytes.Equal(got, data)):
		t.Errorf("close succeeded but S3 holds %d bytes (%v)", len(got), err)
	case cerr != nil && err == nil:
		t.Errorf("close failed (%v) but an object is visible", cerr)
	}
	record(t, "fault", "MinIO restarted (SIGKILL) during a 48 MiB multipart upload", "close="+errno(cerr)+"; S3 holds the complete object or none")
}

func TestInteg_FaultSTSDownThenRecovers(t *testing.T) {
	w2 := startPrivateWorld(t, 60*time.Second)
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(w2.MountArgs(), accessChain()...)...)
	stop := time.Now().Add(50 * time.Second)
	time.AfterFunc(5*time.Second, func() { w2.Emu.SetSTSAvailable(false) })
	time.AfterFunc(35*time.Second, func() { w2.Emu.SetSTSAvailable(true) })
	defer w2.Emu.SetSTSAvailable(true)
	failures := 0
	for i := 0; time.Now().Before(stop); i++ {
		body := randomBytes(int64(i), 64<<10)
		if err := os.WriteFile(m.path(fmt.Sprintf("f%d", i%5)), body, 0o644); err != nil {
			failures++
			t.Errorf("write %d while STS was down: %v", i, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	record(t, "fault", "STS unavailable for 30 s (credentials valid 60 s)", fmt.Sprintf("%d failed writes: the current credentials carry on until STS returns", failures))
}

func TestInteg_FaultPermissionRevokedMidRun(t *testing.T) {
	ctx := context.Background()
	w2 := startPrivateWorld(t, 10*time.Second)
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(w2.MountArgs(), accessChain()...)...)
	if err := os.WriteFile(m.path("f"), []byte("version 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	role, _ := w2.Emu.PermissionPolicy(world.AccessRole)
	if err := w2.Emu.SetPermissionPolicy(world.AccessRole, json.RawMessage(`{"Statement":[{"Effect":"Allow","Action":"iam:GetRole","Resource":"*"}]}`)); err != nil {
		t.Fatal(err)
	}
	defer w2.Emu.SetPermissionPolicy(world.AccessRole, role)
	time.Sleep(15 * time.Second) // past the lifetime of the credentials minted before
	err := os.WriteFile(m.path("f"), []byte("version 2"), 0o644)
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("write after the role lost its S3 permissions: %v, want EACCES", err)
	}
	if got, gerr := w2.Get(ctx, prefix+"f"); gerr != nil || string(got) != "version 1" {
		t.Errorf("S3 holds %q (%v), want version 1 intact", got, gerr)
	}
	record(t, "fault", "the role's S3 permissions revoked mid-run", "the next write fails with "+errno(err)+" once the old credentials expire; previous object intact")
}

func TestInteg_FaultIMDSLateAtStart(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"f", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	w.Emu.SetIMDSAvailable(false)
	defer w.Emu.SetIMDSAvailable(true)
	time.AfterFunc(10*time.Second, func() { w.Emu.SetIMDSAvailable(true) })
	start := time.Now()
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--retry-timeout", "40s")...)
	if took := time.Since(start); took < 9*time.Second {
		t.Errorf("mounted after %s, before IMDS came up", took)
	}
	if data, err := os.ReadFile(m.path("f")); err != nil || string(data) != "x" {
		t.Errorf("read: %q, %v", data, err)
	}
	record(t, "fault", "IMDS unreachable at start, up 10 s later", fmt.Sprintf("mount retried and came up after %s", time.Since(start).Round(time.Second)))
}

func TestInteg_FaultStagingDiskFull(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	staging := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", staging).CombinedOutput(); err != nil {
		t.Fatalf("tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(staging, syscall.MNT_DETACH) })
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--staging-dir", staging)...)
	f, err := os.Create(m.path("big"))
	if err != nil {
		t.Fatal(err)
	}
	// Written back to front, so nothing can be streamed out early: it all has to be staged.
	var werr error
	for off := int64(15 << 20); off >= 0 && werr == nil; off -= 1 << 20 {
		_, werr = f.WriteAt(make([]byte, 1<<20), off)
	}
	f.Close()
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Errorf("write beyond the staging disk: %v, want ENOSPC", werr)
	}
	if ok, _ := w.Exists(ctx, prefix+"big"); ok {
		t.Error("a partial object reached S3")
	}
	os.Remove(m.path("big"))
	data := randomBytes(16, 1<<20)
	if err := os.WriteFile(m.path("after"), data, 0o644); err != nil {
		t.Errorf("write after the disk was full: %v", err)
	}
	record(t, "fault", "staging disk full (6 MiB tmpfs, 16 MiB file)", "write fails with "+errno(werr)+"; nothing in S3; space freed, later writes succeed")
}

func TestInteg_FaultSIGKILLMidWrite(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	f, err := os.Create(m.path("big"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 24; i++ { // 24 MiB: parts 1 and 2 are streamed
		if _, err := f.Write(randomBytes(int64(i), 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for pendingUploads(t, w, prefix+"big") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	m.done <- nil
	_, werr := f.Write([]byte("more"))
	f.Close()
	if ok, _ := w.Exists(ctx, prefix+"big"); ok {
		t.Error("a partial object is visible after SIGKILL")
	}
	leftovers := pendingUploads(t, w, prefix+"big")
	// The next mount on the same (dead) mountpoint recovers it and aborts the leftover upload.
	m2 := mountOn(t, m.dir, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	if _, err := os.ReadDir(m2.dir); err != nil {
		t.Errorf("the new mount does not serve: %v", err)
	}
	if n := pendingUploads(t, w, prefix+"big"); n != 0 {
		t.Errorf("%d multipart uploads left after the next mount (had %d)", n, leftovers)
	}
	record(t, "fault", "SIGKILL of the daemon during a multipart write", fmt.Sprintf("writer got %s; no object visible; %d leftover upload(s) aborted by the next mount, which recovered the dead mountpoint", errno(werr), leftovers))
}

func TestInteg_FaultReaderWhileWriterReplaces(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	version := func(i int) []byte {
		body := randomBytes(int64(i), 3<<20)
		sum := sha256.Sum256(body[32:])
		copy(body, sum[:])
		return body
	}
	if err := w.Put(ctx, prefix+"f", bytes.NewReader(version(0))); err != nil {
		t.Fatal(err)
	}
	writer := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	reader := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--ro", "--metadata-ttl", "0")...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= 8; i++ {
			if err := os.WriteFile(writer.path("f"), version(i), 0o644); err != nil {
				t.Errorf("writer: %v", err)
			}
		}
		close(done)
	}()
	complete, stale := 0, 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		data, err := os.ReadFile(reader.path("f"))
		switch {
		case errors.Is(err, syscall.ESTALE) || errors.Is(err, syscall.ENOENT):
			stale++
		case err != nil:
			t.Errorf("reader: %v", err)
		default:
			sum := sha256.Sum256(data[32:])
			if len(data) < 32 || !bytes.Equal(sum[:], data[:32]) {
				t.Fatalf("reader saw mixed or partial content (%d bytes)", len(data))
			}
			complete++
		}
	}
	wg.Wait()
	record(t, "fault", "a reader (second mount) while a writer replaces the file 8 times", fmt.Sprintf("%d complete versions read, %d ESTALE; never mixed bytes", complete, stale))
}

func TestInteg_TwoMountsWriteOneDirectory(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	a := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	b := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	var wg sync.WaitGroup
	for _, m := range []*mounted{a, b} {
		wg.Add(1)
		go func(m *mounted, tag string) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if err := os.WriteFile(m.path(fmt.Sprintf("%s-%02d", tag, i)), []byte(tag), 0o644); err != nil {
					t.Errorf("%s: %v", tag, err)
				}
				if err := os.WriteFile(m.path("shared"), bytes.Repeat([]byte(tag), 100000), 0o644); err != nil {
					t.Errorf("%s shared: %v", tag, err)
				}
			}
		}(m, filepath.Base(m.dir))
	}
	wg.Wait()
	out, err := w.Admin.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(world.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out.Contents); n != 81 {
		t.Errorf("%d objects, want 80 distinct files and the shared one", n)
	}
	shared, _ := w.Get(ctx, prefix+"shared")
	tagA, tagB := filepath.Base(a.dir), filepath.Base(b.dir)
	if !bytes.Equal(shared, bytes.Repeat([]byte(tagA), 100000)) && !bytes.Equal(shared, bytes.Repeat([]byte(tagB), 100000)) {
		t.Errorf("the shared file holds neither writer's complete content")
	}
	record(t, "fault", "two mounts of one prefix on one host write one directory", "all 80 files present; the shared file holds one writer's complete content (last close wins)")
}

// mountOn mounts on an existing directory (for example a dead mountpoint).
func mountOn(t *testing.T, dir, target string, args ...string) *mounted {
	t.Helper()
	all := append(append(w.MountArgs(), args...), "-f", target, dir)
	m := &mounted{dir: dir, cmd: command(all...), stderr: &syncBuffer{}, done: make(chan error, 1)}
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.done <- m.cmd.Wait() }()
	t.Cleanup(func() { m.unmount(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.ReadDir(dir); err == nil && isMounted(dir) {
			return m
		}
		select {
		case err := <-m.done:
			m.done <- err
			t.Fatalf("s3mount exited before mounting (%v):\n%s", err, m.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount did not appear within 60s:\n%s", m.stderr)
		}
	}
}
