//go:build integration

package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/faultproxy"
	"github.com/s3mount/s3mount/integration/world"
)

// statusOf is the part of `s3mount status --json` the tests read.
type statusOf struct {
	Mountpoint  string `json:"mountpoint"`
	Source      string `json:"source"`
	State       string `json:"state"`
	Problem     string `json:"problem"`
	PID         int    `json:"pid"`
	Credentials []struct {
		Link       string    `json:"link"`
		RoleARN    string    `json:"role_arn"`
		ExternalID bool      `json:"uses_external_id"`
		Expires    time.Time `json:"expires"`
	} `json:"credentials"`
	Traffic *struct {
		Requests     int64 `json:"s3_requests"`
		BytesWritten int64 `json:"bytes_written"`
	} `json:"since_mount"`
	Writing []struct {
		Key  string `json:"key"`
		Size int64  `json:"size"`
		Open bool   `json:"open"`
	} `json:"writing"`
	LastCommit *struct {
		Key   string `json:"key"`
		Error string `json:"error"`
	} `json:"last_commit"`
	ErrorCount int `json:"error_count"`
}

// runStatus runs s3mount status (with cmd's credentials if given) and returns its exit code, its
// output and the reports of --json.
func runStatus(t *testing.T, cred *syscall.Credential, bin string, args ...string) (int, string, []statusOf) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"status"}, args...)...)
	cmd.Env = world.CleanEnv()
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("s3mount status %v did not finish within 30s", args)
	}
	out := stdout.String() + stderr.String()
	var reports []statusOf
	if len(args) > 0 && args[0] == "--json" {
		if err := json.Unmarshal(stdout.Bytes(), &reports); err != nil {
			t.Fatalf("status --json printed no JSON array (%v):\n%s", err, out)
		}
	}
	return cmd.ProcessState.ExitCode(), out, reports
}

// noSecrets fails the test if out shows the External ID.
func noSecrets(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, world.AccessExtID) {
		t.Errorf("status shows the External ID:\n%s", out)
	}
}

// TestInteg_StatusLiveAndBusy: status of a live mount shows its source, its credential chain
// (role ARNs and expiry, no External ID), a file being written while it is held open, and after
// the close a successful commit and the bytes written; it exits 0.
func TestInteg_StatusLiveAndBusy(t *testing.T) {
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	code, out, reports := runStatus(t, nil, binary, "--json", m.dir)
	noSecrets(t, out)
	if code != 0 || len(reports) != 1 {
		t.Fatalf("status of a live mount: exit %d, %d reports:\n%s", code, len(reports), out)
	}
	r := reports[0]
	if r.State != "live" || r.Source != "s3://"+world.Bucket+"/"+prefix || r.PID != m.cmd.Process.Pid {
		t.Errorf("state %q source %q pid %d; want live, the target and pid %d", r.State, r.Source, r.PID, m.cmd.Process.Pid)
	}
	if len(r.Credentials) != 2 || r.Credentials[1].RoleARN != world.AccessRole || !r.Credentials[1].ExternalID ||
		time.Until(r.Credentials[1].Expires) < time.Minute {
		t.Errorf("credential chain %+v; want the instance profile, then %s with an External ID and its expiry", r.Credentials, world.AccessRole)
	}

	// Busy: a file being written, held open.
	f, err := os.Create(m.path("big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(randomBytes(3, 20<<20)); err != nil {
		t.Fatal(err)
	}
	code, out, reports = runStatus(t, nil, binary, "--json", m.dir)
	noSecrets(t, out)
	if code != 0 || len(reports) != 1 || len(reports[0].Writing) != 1 || reports[0].Writing[0].Key != prefix+"big" ||
		!reports[0].Writing[0].Open || reports[0].Writing[0].Size != 20<<20 {
		t.Fatalf("status while big is written and open: exit %d, want it listed open with 20 MiB:\n%s", code, out)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, reports = runStatus(t, nil, binary, "--json", m.dir)
	r = reports[0]
	if code != 0 || len(r.Writing) != 0 || r.LastCommit == nil || r.LastCommit.Key != prefix+"big" || r.LastCommit.Error != "" ||
		r.Traffic == nil || r.Traffic.BytesWritten < 20<<20 {
		t.Errorf("status after the close: exit %d; want nothing being written, the commit of big, 20 MiB written:\n%s", code, out)
	}
	// The text form says the same, without the secret.
	code, out, _ = runStatus(t, nil, binary, m.dir)
	noSecrets(t, out)
	t.Logf("s3mount status %s:\n%s", m.dir, out)
	for _, want := range []string{m.dir, "live", world.AccessRole, "with an External ID", "expires", "last commit: " + prefix + "big ok", "writing: 0 file(s)", "cache:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("status text: exit %d", code)
	}
}

// TestInteg_StatusDeadMount: a mount whose daemon was killed (-9) stays as "transport endpoint
// is not connected"; status says it is dead and exits 30.
func TestInteg_StatusDeadMount(t *testing.T) {
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	t.Cleanup(func() { _ = exec.Command("fusermount3", "-uz", m.dir).Run() }) // runs before m.unmount
	t.Cleanup(func() { os.Remove(controlSocket(m.dir)) })                     // the killed daemon's
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-m.done
	m.done <- err
	if _, err := os.ReadDir(m.dir); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after kill -9, listing the mountpoint: %v, want transport endpoint is not connected", err)
	}
	code, out, reports := runStatus(t, nil, binary, "--json", m.dir)
	if code != 30 || len(reports) != 1 || reports[0].State != "dead" || !strings.Contains(reports[0].Problem, "not connected") {
		t.Errorf("status of a dead mount: exit %d; want 30, state dead, not connected:\n%s", code, out)
	}
	// Without a mountpoint the dead mount is among all the mounts, and the exit is still 30.
	if code, out, _ := runStatus(t, nil, binary); code != 30 || !strings.Contains(out, m.dir) {
		t.Errorf("status of all mounts with a dead one: exit %d, want 30 and %s listed:\n%s", code, m.dir, out)
	}
}

// TestInteg_StatusFailingUploads: while S3 answers 500 to every PUT the file's close fails, and
// status says the last commit failed (exit 31), naming the file; errors of the last minutes count.
func TestInteg_StatusFailingUploads(t *testing.T) {
	prefix := testPrefix(t)
	p, ep := proxied(t, w)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, append(accessChain(), ep...)...)
	p.Add(faultproxy.Fault{Match: faultproxy.IsPut, Status: 500, Code: "InternalError"})
	if err := os.WriteFile(m.path("doomed"), []byte("never reaches S3"), 0o644); err == nil {
		t.Fatal("writing a file succeeded though S3 answers 500 to every PUT")
	}
	code, out, reports := runStatus(t, nil, binary, "--json", m.dir)
	if code != 31 || len(reports) != 1 || reports[0].State != "failing" || reports[0].LastCommit == nil ||
		reports[0].LastCommit.Key != prefix+"doomed" || reports[0].LastCommit.Error == "" || reports[0].ErrorCount == 0 {
		t.Fatalf("status while uploads fail: exit %d; want 31, failing, the last commit of doomed failed:\n%s", code, out)
	}
	// Once S3 is back and a commit succeeds, the mount is healthy again.
	p.Clear()
	if err := os.WriteFile(m.path("fine"), []byte("reaches S3"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runStatus(t, nil, binary, "--json", m.dir); code != 0 {
		t.Errorf("status after a successful commit: exit %d, want 0:\n%s", code, out)
	}
}

// TestInteg_StatusOtherUserCannotConnect: another local user can neither reach the control
// socket (its directory is 0700) nor, when the directory and socket are opened up, get an answer
// from the daemon (SO_PEERCRED): it learns nothing of the mount.
func TestInteg_StatusOtherUserCannotConnect(t *testing.T) {
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	u := newLocalUser(t)
	cred := &syscall.Credential{Uid: u.uid, Gid: u.gid}
	// A copy of the binary the other user may run.
	binDir, err := os.MkdirTemp("", "s3mount-status-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bin := filepath.Join(binDir, "s3mount")
	copyFile(t, binary, bin, 0o755)
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}

	code, out, reports := runStatus(t, cred, bin, "--json", m.dir)
	noSecrets(t, out)
	if len(reports) != 1 || reports[0].State != "not-yours" || !strings.Contains(reports[0].Problem, "permission denied") ||
		reports[0].Credentials != nil || reports[0].PID != 0 {
		t.Fatalf("status by another user: exit %d; want not-yours, permission denied, nothing about the mount:\n%s", code, out)
	}

	// Open the directory and the socket to everyone: the daemon itself must still refuse.
	const dir = "/run/s3mount"
	sockets, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	for _, s := range sockets {
		_ = os.Chmod(s, 0o666)
		t.Cleanup(func() { _ = os.Chmod(s, 0o600) })
	}
	code, out, reports = runStatus(t, cred, bin, "--json", m.dir)
	noSecrets(t, out)
	if len(reports) != 1 || reports[0].State != "not-yours" || !strings.Contains(reports[0].Problem, "denied: only the user who mounted") ||
		reports[0].Credentials != nil || reports[0].PID != 0 {
		t.Fatalf("status by another user through an open socket: exit %d; want the daemon's denial and nothing else:\n%s", code, out)
	}
	if !strings.Contains(m.stderr.String(), "refused a connection from another user") {
		t.Errorf("the daemon did not log the refused connection:\n%s", m.stderr)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestInteg_StatusWithoutSocket: a mount that works but whose daemon has no control socket (one
// older than status, or a socket removed) is unreachable, not dead, and still not healthy (30).
func TestInteg_StatusWithoutSocket(t *testing.T) {
	prefix := testPrefix(t)
	m := mount(t, "s3://"+world.Bucket+"/"+prefix, accessChain()...)
	if err := os.Remove(controlSocket(m.dir)); err != nil {
		t.Fatal(err)
	}
	code, out, reports := runStatus(t, nil, binary, "--json", m.dir)
	if code != 30 || len(reports) != 1 || reports[0].State != "unreachable" || !strings.Contains(reports[0].Problem, "no control socket") {
		t.Errorf("status of a working mount without its socket: exit %d, want 30 and unreachable:\n%s", code, out)
	}
}

// controlSocket is the path of the control socket of root's mount at dir.
func controlSocket(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join("/run/s3mount", hex.EncodeToString(sum[:12])+".sock")
}
