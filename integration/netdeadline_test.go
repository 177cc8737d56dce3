//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/faultproxy"
	"github.com/s3mount/s3mount/integration/world"
)

// Short deadlines for these tests; the bound a caller may wait is about opTimeout (see
// docs/SECURITY.md, "The network"); the tests allow boundSlack on top for the machine.
const (
	reqTimeout = 1 * time.Second
	opTimeout  = 3 * time.Second
	boundSlack = 12 * time.Second
)

func deadlineArgs() []string {
	return []string{"--request-timeout", reqTimeout.String(), "--op-timeout", opTimeout.String()}
}

// bounded runs op and fails the test unless it ends within opTimeout+boundSlack; it returns op's
// error.
func bounded(t *testing.T, what string, op func() error) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- op() }()
	select {
	case err := <-done:
		t.Logf("%s: %s after %s", what, errno(err), time.Since(start).Round(100*time.Millisecond))
		return err
	case <-time.After(opTimeout + boundSlack):
		t.Fatalf("%s still waits after %s", what, opTimeout+boundSlack)
		return nil
	}
}

// wantTimedOut fails the test unless err is ETIMEDOUT.
func wantTimedOut(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, syscall.ETIMEDOUT) {
		t.Errorf("%s while the endpoint hangs: %v, want ETIMEDOUT", what, err)
	}
}

// statFresh stats a name this mount has never looked up, so that the kernel must ask.
func statFresh(m *mounted, i int) error {
	_, err := os.Stat(m.path(fmt.Sprintf("fresh-%d", i)))
	if errors.Is(err, os.ErrNotExist) {
		return nil // S3 answered
	}
	return err
}

// hangAndRecover is the common part: with the endpoint hanging (the caller has added the fault
// and waited until requests need it), a stat, a read and an fsync of a file being written fail
// with ETIMEDOUT within the bound; once the fault is cleared, the same handle's close commits the
// content, and the mount serves again without a remount.
func hangAndRecover(t *testing.T, wd *world.World, m *mounted, prefix string, f *os.File, data []byte, clear func()) {
	t.Helper()
	wantTimedOut(t, "fsync", bounded(t, "fsync", f.Sync))
	wantTimedOut(t, "stat", bounded(t, "stat", func() error { return statFresh(m, 1) }))
	wantTimedOut(t, "read", bounded(t, "read", func() error { _, err := os.ReadFile(m.path("old")); return err }))
	clear()
	if err := bounded(t, "close after recovery", f.Close); err != nil {
		t.Fatalf("close after the endpoint recovered: %v; the staged content should have been kept for it", err)
	}
	if got, err := wd.Get(context.Background(), prefix+"f"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("S3 holds %d bytes (%v), want the %d written", len(got), err, len(data))
	}
	if err := statFresh(m, 2); err != nil {
		t.Errorf("stat after recovery: %v", err)
	}
	if got, err := os.ReadFile(m.path("old")); err != nil || string(got) != "old" {
		t.Errorf("read after recovery: %q, %v", got, err)
	}
	if err := os.WriteFile(m.path("after"), []byte("after"), 0o644); err != nil {
		t.Errorf("write after recovery: %v", err)
	}
}

// openWritten creates f in the mount and writes data into it (staged, not yet committed).
func openWritten(t *testing.T, m *mounted, data []byte) *os.File {
	t.Helper()
	f, err := os.Create(m.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestInteg_NetS3HangsThenRecovers(t *testing.T) {
	prefix := testPrefix(t)
	if err := w.Put(context.Background(), prefix+"old", strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	p, ep := proxied(t, w)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(append(append(accessChain(), ep...), deadlineArgs()...), "--cache-size", "0", "--metadata-ttl", "0")...)
	data := randomBytes(41, 300<<10)
	f := openWritten(t, m, data)
	p.Add(faultproxy.Fault{Hang: true})
	hangAndRecover(t, w, m, prefix, f, data, p.Clear)
	record(t, "fault", "S3 accepts connections and never answers", fmt.Sprintf("stat, read and fsync fail with ETIMEDOUT within op_timeout (%s here); the staged file is kept, and close after S3 returns commits it", opTimeout))
}

// credentialEndpointHangs mounts through a fault proxy in front of the emulator's STS or IMDS,
// with credentials reported to expire in 20 s, and makes that endpoint hang: once the credentials
// run out, operations fail with ETIMEDOUT within the bound, and work again once it answers.
func credentialEndpointHangs(t *testing.T, endpoint string) {
	w2 := startPrivateWorld(t, 20*time.Second)
	target, flag := w2.Emu.STSEndpoint(), "--sts-endpoint"
	if endpoint == "IMDS" {
		target, flag = w2.Emu.IMDSEndpoint(), "--imds-endpoint"
	}
	p, err := faultproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	prefix := testPrefix(t)
	if err := w2.Put(context.Background(), prefix+"old", strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	args := append(append(append(w2.MountArgs(), accessChain()...), deadlineArgs()...), flag, p.URL(), "--cache-size", "0", "--metadata-ttl", "0")
	m := mountWith(t, nil, args, "s3://"+world.Bucket+"/"+prefix)
	data := randomBytes(42, 300<<10)
	f := openWritten(t, m, data)
	p.Add(faultproxy.Fault{Hang: true})
	// Until the credentials run out, requests go on with them (refreshes fail in the background);
	// then the first that needs new ones times out.
	var failed error
	for i := 100; failed == nil; i++ {
		if i > 100+40 {
			t.Fatal("operations still succeed 80 s after the credential endpoint started hanging")
		}
		failed = bounded(t, "stat", func() error { return statFresh(m, i) })
		if failed == nil {
			time.Sleep(2 * time.Second)
		}
	}
	wantTimedOut(t, "stat once the credentials expired", failed)
	hangAndRecover(t, w2, m, prefix, f, data, p.Clear)
	record(t, "fault", endpoint+" accepts connections and never answers while credentials expire", fmt.Sprintf("after expiry, stat, read and fsync fail with ETIMEDOUT within op_timeout (%s here); the staged file is kept; the next refresh succeeds once %s answers", opTimeout, endpoint))
}

func TestInteg_NetSTSHangsWhileCredentialsExpire(t *testing.T) { credentialEndpointHangs(t, "STS") }

func TestInteg_NetIMDSHangsWhileCredentialsExpire(t *testing.T) { credentialEndpointHangs(t, "IMDS") }

// TestInteg_NetSIGTERMWhileS3Hangs: with an fsync waiting on a hung S3 (each attempt may wait 2
// minutes), SIGTERM ends the daemon within the grace period and op_timeout, and the writer hears
// of it (ETIMEDOUT, not the connection torn down) before the daemon is gone.
func TestInteg_NetSIGTERMWhileS3Hangs(t *testing.T) {
	prefix := testPrefix(t)
	p, ep := proxied(t, w)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(append(accessChain(), ep...), "--request-timeout", "2m", "--op-timeout", opTimeout.String(), "--shutdown-timeout", "2s")...)
	f := openWritten(t, m, randomBytes(43, 100<<10))
	t.Cleanup(func() { _ = m.cmd.Process.Kill() }) // before f's close, should the daemon hang
	p.Add(faultproxy.Fault{Hang: true})
	synced := make(chan error, 1)
	go func() { synced <- f.Sync() }()
	time.Sleep(time.Second)
	sent := time.Now()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var serr error
	select {
	case serr = <-synced:
	case err := <-m.done:
		m.done <- err
		t.Fatalf("the daemon exited (%v) before the waiting fsync was answered", err)
	case <-time.After(opTimeout + boundSlack):
		t.Fatalf("fsync still waits %s after SIGTERM", opTimeout+boundSlack)
	}
	wantTimedOut(t, "fsync at shutdown", serr)
	f.Close()
	select {
	case err := <-m.done:
		m.done <- err
		var ee interface{ ExitCode() int }
		if !errors.As(err, &ee) || ee.ExitCode() != 14 {
			t.Errorf("exit: %v, want 14 (a file did not reach S3)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon still runs 30 s after SIGTERM")
	}
	record(t, "fault", "SIGTERM while an fsync waits on a hung S3", fmt.Sprintf("fsync got %s; the daemon exited 14 after %s", errno(serr), time.Since(sent).Round(time.Second)))
}
