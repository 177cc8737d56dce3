//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3mount/s3mount/integration/faultproxy"
	"github.com/s3mount/s3mount/integration/world"
)

// waitNoUploads waits up to d for the incomplete multipart uploads of key to be gone. (MinIO lists
// the uploads of one key only, not those under a prefix.)
func waitNoUploads(t *testing.T, key string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for pendingUploads(t, w, key) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := pendingUploads(t, w, key); n != 0 {
		t.Errorf("%d multipart uploads of %s left behind", n, key)
	}
}

// readEventually reads path until it holds want, for up to d.
func readEventually(t *testing.T, path string, want []byte, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, err := os.ReadFile(path)
		if err == nil && bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d bytes (%v), want the %d bytes written", path, len(got), err, len(want))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Uploads that S3 started for a CreateMultipartUpload whose answer never reached the mount (the
// proxy carries the request out and drops the answer, as when the client gives up waiting) are
// aborted: after a retry that succeeded, and after a close that failed because every answer was
// lost. The writer is told the truth, S3 and the other mount show one version whole.
func TestInteg_UnconfirmedUploadsAreAborted(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	if err := w.Put(ctx, prefix+"f", bytes.NewReader([]byte("previous version"))); err != nil {
		t.Fatal(err)
	}
	p, ep := proxied(t, w)
	a := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), ep...)...)
	b := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)

	// One answer lost: the SDK's retry starts a second upload, which the mount completes.
	p.Add(faultproxy.Fault{Match: faultproxy.IsCreateMultipart, LateBy: 300 * time.Millisecond, Drop: true, Times: 1})
	first := randomBytes(21, 20<<20)
	if err := os.WriteFile(a.path("f"), first, 0o644); err != nil {
		t.Fatalf("write with one lost answer (retried): %v", err)
	}
	if p.Hits() != 1 {
		t.Fatalf("the fault hit %d requests, want 1", p.Hits())
	}
	readEventually(t, b.path("f"), first, 10*time.Second)
	waitNoUploads(t, prefix+"f", 20*time.Second)

	// Every answer lost: close fails, S3 keeps the version before, and the uploads every attempt
	// started are aborted.
	p.Add(faultproxy.Fault{Match: faultproxy.IsCreateMultipart, LateBy: 300 * time.Millisecond, Drop: true})
	err := os.WriteFile(a.path("f"), randomBytes(22, 20<<20), 0o644)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("write while every answer is lost: %v, want EIO", err)
	}
	if got, err := w.Get(ctx, prefix+"f"); err != nil || !bytes.Equal(got, first) {
		t.Errorf("S3 holds %d bytes (%v), want the version before intact", len(got), err)
	}
	p.Clear()
	waitNoUploads(t, prefix+"f", 20*time.Second)
	readEventually(t, a.path("f"), first, 10*time.Second)
	readEventually(t, b.path("f"), first, 10*time.Second)
	next := randomBytes(23, 20<<20)
	if err := os.WriteFile(a.path("f"), next, 0o644); err != nil {
		t.Fatalf("write once S3 answers: %v", err)
	}
	readEventually(t, b.path("f"), next, 10*time.Second)
	waitNoUploads(t, prefix+"f", 20*time.Second)

	// A real client timeout: every start of an upload is carried out by S3 but answered after the
	// client gave up (--request-timeout), so close fails with ETIMEDOUT, S3 keeps the version
	// before, and the uploads S3 started meanwhile are found and aborted.
	c := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), append(ep, "--request-timeout", "1s", "--op-timeout", "4s")...)...)
	p.Add(faultproxy.Fault{Match: faultproxy.IsCreateMultipart, LateBy: 2 * time.Second})
	err = os.WriteFile(c.path("f"), randomBytes(24, 20<<20), 0o644)
	if !errors.Is(err, syscall.ETIMEDOUT) {
		t.Errorf("write while every answer comes too late: %v, want ETIMEDOUT", err)
	}
	if got, err := w.Get(ctx, prefix+"f"); err != nil || !bytes.Equal(got, next) {
		t.Errorf("S3 holds %d bytes (%v), want the version before intact", len(got), err)
	}
	p.Clear()
	waitNoUploads(t, prefix+"f", 30*time.Second)
}

// Fresh opens on another mount never get ESTALE after an overwrite: whole-file reads (open, read,
// close, again and again) on mount B while mount A replaces the file each read one version
// whole, and once the metadata bounds have passed, the new one.
func TestInteg_FreshOpensAfterOverwriteAreNotStale(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	versions := [][]byte{randomBytes(30, 1<<20)}
	if err := w.Put(ctx, prefix+"f", bytes.NewReader(versions[0])); err != nil {
		t.Fatal(err)
	}
	a := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	// Without a content cache every read asks S3 for the version B opened, as reads of more data
	// than the cache holds do: the old version is not served from memory.
	b := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), "--cache-size", "0")...)
	if _, err := os.ReadDir(b.dir); err != nil { // B's listing and caches hold the first version
		t.Fatal(err)
	}
	if _, err := os.ReadFile(b.path("f")); err != nil {
		t.Fatal(err)
	}
	reads, stale := 0, 0
	for i := 1; i <= 6; i++ {
		next := randomBytes(int64(30+i), (1<<20)+(i%3-1)*200000) // the same size, larger, smaller
		if err := os.WriteFile(a.path("f"), next, 0o644); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, next)
		for end := time.Now().Add(700 * time.Millisecond); time.Now().Before(end); {
			got, err := os.ReadFile(b.path("f"))
			reads++
			if errors.Is(err, syscall.ESTALE) {
				stale++
				continue
			}
			if err != nil {
				t.Fatalf("version %d: read on the other mount: %v", i, err)
			}
			whole := false
			for _, v := range versions {
				whole = whole || bytes.Equal(got, v)
			}
			if !whole {
				t.Fatalf("version %d: the other mount read %d bytes, no version whole", i, len(got))
			}
		}
	}
	if stale > 0 {
		t.Errorf("%d of %d fresh opens on the other mount got ESTALE", stale, reads)
	}
	readEventually(t, b.path("f"), versions[len(versions)-1], 7*time.Second)
}

// A new file whose upload failed is gone from the writer's mount once closed, as from S3 and the
// other mount; names whose keys S3 refuses fail at once with ENAMETOOLONG and write nothing.
func TestInteg_FailedNewFileIsGoneAndLongKeysFailEarly(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	p, ep := proxied(t, w)
	a := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), ep...)...)
	b := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)

	p.Add(faultproxy.Fault{Match: func(r *http.Request) bool { return faultproxy.IsPut(r) && strings.HasSuffix(r.URL.Path, "/new") },
		Status: 500, Code: "InternalError"})
	if err := os.WriteFile(a.path("new"), []byte("never stored"), 0o644); !errors.Is(err, syscall.EIO) {
		t.Errorf("writing while S3 refuses: %v, want EIO", err)
	}
	for _, m := range []*mounted{a, b} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := os.Stat(m.path("new"))
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: stat of the file whose upload failed: %v, want ENOENT", m.dir, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if ok, _ := w.Exists(ctx, prefix+"new"); ok {
		t.Errorf("S3 has the file whose upload failed")
	}
	p.Clear()
	if err := os.WriteFile(a.path("new"), []byte("stored"), 0o644); err != nil {
		t.Fatalf("writing once S3 answers: %v", err)
	}
	readEventually(t, b.path("new"), []byte("stored"), 7*time.Second)

	// Deep directories with long names: a name whose key would pass 1,024 bytes fails at once.
	dir, keyLen := a.dir, len(prefix)
	for i := 0; 1024-keyLen > 250; i++ {
		dir = filepath.Join(dir, strings.Repeat(string(rune('a'+i)), 200))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		keyLen += 201
	}
	fits := strings.Repeat("f", 1024-keyLen)
	tooLong := fits + "x"
	for what, err := range map[string]error{
		"create":  os.WriteFile(filepath.Join(dir, tooLong), []byte("x"), 0o644),
		"mkdir":   os.Mkdir(filepath.Join(dir, fits), 0o755), // its marker, fits + "/", is 1,025 bytes
		"symlink": os.Symlink("new", filepath.Join(dir, tooLong)),
		"rename":  os.Rename(a.path("new"), filepath.Join(dir, tooLong)),
	} {
		if !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("%s of a key over 1,024 bytes: %v, want ENAMETOOLONG", what, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, fits), []byte("at the limit"), 0o644); err != nil {
		t.Errorf("a file whose key is 1,024 bytes: %v", err)
	}
	rel, _ := filepath.Rel(a.dir, filepath.Join(dir, fits))
	readEventually(t, b.path(rel), []byte("at the limit"), 7*time.Second)
	out, err := w.Admin.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(world.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if len(aws.ToString(o.Key)) > 1024 || strings.HasSuffix(aws.ToString(o.Key), "x") {
			t.Errorf("S3 holds %d-byte key %q...", len(aws.ToString(o.Key)), aws.ToString(o.Key)[:40])
		}
	}
	if got, _ := w.Get(ctx, prefix+"new"); string(got) != "stored" {
		t.Errorf("the refused rename moved the file: S3 holds %q at its name", got)
	}
}

// What another mount's changes take to show here, with --metadata-ttl 300ms: ls (a readdir)
// lists S3 afresh, so it shows a new name at once; stat and open by name show a new name, a
// replaced file and a removal within 5 × metadata TTL (the directory's listing), whatever the
// negative TTL (here a minute): "no such file" taken from a listing is not cached by the kernel.
func TestInteg_VisibilityBoundsAcrossMounts(t *testing.T) {
	prefix := testPrefix(t)
	const ttl = 300 * time.Millisecond
	args := append(accessChain(), "--metadata-ttl", ttl.String(), "--negative-ttl", "1m")
	a := mount(t, "s3://"+world.Bucket+"/"+prefix, args...)
	b := mount(t, "s3://"+world.Bucket+"/"+prefix, args...)
	within := func(what string, bound time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(bound + 2*time.Second) // the bound, and slack for a loaded machine
		for !ok() {
			if time.Now().After(deadline) {
				t.Errorf("%s: not within %v", what, bound)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	listed := func(name string) bool {
		entries, err := os.ReadDir(b.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() == name {
				return true
			}
		}
		return false
	}
	if listed("n") {
		t.Fatal("n listed before it was written")
	}
	if _, err := os.Stat(b.path("n")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of n before it was written: %v", err)
	}
	if err := os.WriteFile(a.path("n"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !listed("n") {
		t.Errorf("ls on the other mount right after the close: n not listed")
	}
	if err := os.WriteFile(a.path("m"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	within("stat of a new name", 5*ttl, func() bool { _, err := os.Stat(b.path("m")); return err == nil })
	within("open of a new name", 5*ttl, func() bool { got, err := os.ReadFile(b.path("m")); return err == nil && string(got) == "new" })
	if err := os.WriteFile(a.path("m"), []byte("replaced, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	within("stat of a replaced file", 5*ttl, func() bool {
		st, err := os.Stat(b.path("m"))
		return err == nil && st.Size() == int64(len("replaced, longer"))
	})
	within("open of a replaced file", 5*ttl, func() bool {
		got, err := os.ReadFile(b.path("m"))
		return err == nil && string(got) == "replaced, longer"
	})
	if err := os.Remove(a.path("m")); err != nil {
		t.Fatal(err)
	}
	within("stat of a removed name", 5*ttl, func() bool { _, err := os.Stat(b.path("m")); return errors.Is(err, os.ErrNotExist) })
	within("ls of a removed name", 0, func() bool { return !listed("m") })
}

// A CompleteMultipartUpload that S3 carried out but whose answer was lost (the SDK's retry then
// finds no such upload) is a commit: the object S3 holds has the ETag of exactly the parts sent,
// so close succeeds, and nothing is left behind.
func TestInteg_CompleteWhoseAnswerWasLostIsACommit(t *testing.T) {
	prefix := testPrefix(t)
	p, ep := proxied(t, w)
	a := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), ep...)...)
	b := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	p.Add(faultproxy.Fault{Match: faultproxy.IsComplete, LateBy: 300 * time.Millisecond, Drop: true, Times: 1})
	data := randomBytes(40, 20<<20)
	if err := os.WriteFile(a.path("f"), data, 0o644); err != nil {
		t.Errorf("close after S3 completed the upload and the answer was lost: %v", err)
	}
	if p.Hits() != 1 {
		t.Errorf("the fault hit %d requests, want 1", p.Hits())
	}
	readEventually(t, a.path("f"), data, 7*time.Second)
	readEventually(t, b.path("f"), data, 7*time.Second)
	waitNoUploads(t, prefix+"f", 10*time.Second)
}

// A sweep a mount could not finish (S3 would not list the uploads) is finished by the next mount
// of the prefix, after the first was killed: the uploads its lost requests started are aborted.
func TestInteg_NextMountSweepsWhatAKilledMountCouldNot(t *testing.T) {
	prefix := testPrefix(t)
	p, ep := proxied(t, w)
	target := "s3://" + world.Bucket + "/" + prefix
	a := mount(t, target, append(accessChain(), ep...)...)
	p.Add(faultproxy.Fault{Match: faultproxy.IsCreateMultipart, LateBy: 300 * time.Millisecond, Drop: true})
	p.Add(faultproxy.Fault{Match: faultproxy.IsListUploads, Status: 500, Code: "InternalError"})
	if err := os.WriteFile(a.path("f"), randomBytes(50, 12<<20), 0o644); !errors.Is(err, syscall.EIO) {
		t.Errorf("write while every answer is lost: %v, want EIO", err)
	}
	if n := pendingUploads(t, w, prefix+"f"); n == 0 {
		t.Fatal("the lost requests started no upload")
	}
	_ = a.cmd.Process.Kill()
	<-a.done
	a.done <- nil
	p.Clear()
	a2 := mountOn(t, a.dir, target, append(accessChain(), ep...)...)
	if _, err := os.ReadDir(a2.dir); err != nil {
		t.Errorf("the new mount does not serve: %v", err)
	}
	waitNoUploads(t, prefix+"f", 10*time.Second)
}
