package awsemu

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MinIO is a MinIO server started for tests or the demo.
type MinIO struct {
	Endpoint, RootUser, RootPassword, DataDir string

	args []string // the command line, for Restart
	env  []string // MINIO_ settings beyond the root credentials
	logw io.Writer
	cmd  *exec.Cmd
	done chan error
	log  *tailBuffer
}

// FindMinIOBinary looks for minio on PATH, then where scripts/install-deps.sh puts it.
func FindMinIOBinary() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	home, _ := os.UserHomeDir()
	for _, p := range []string{
		filepath.Join(os.Getenv("S3MOUNT_TOOLS"), "bin", "minio"),
		filepath.Join(home, ".cache", "s3mount", "tools", "bin", "minio"),
		filepath.Join(home, "go", "bin", "minio"),
	} {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("minio not found; run scripts/install-deps.sh")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func secret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartMinIO starts MinIO on free ports of 127.0.0.1 with random root credentials and waits until
// it is live (30 s at most). Its output goes to logw.
func StartMinIO(dataDir string, logw io.Writer) (*MinIO, error) {
	return StartMinIOInRegion(dataDir, logw, "")
}

// StartMinIOInRegion is StartMinIO for a server in region (MINIO_SITE_REGION), which refuses
// requests signed for another region as S3 does; "" accepts any region.
func StartMinIOInRegion(dataDir string, logw io.Writer, region string) (*MinIO, error) {
	bin, err := FindMinIOBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), RootUser: "root" + secret(6), RootPassword: secret(16),
		DataDir: dataDir, log: &tailBuffer{},
	}
	m.args = []string{bin, "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), dataDir}
	m.logw = logw
	if region != "" {
		m.env = []string{"MINIO_SITE_REGION=" + region}
	}
	if err := m.start(); err != nil {
		return nil, err
	}
	return m, nil
}

// start runs MinIO and waits until it is live.
func (m *MinIO) start() error {
	m.done = make(chan error, 1)
	m.cmd = exec.Command(m.args[0], m.args[1:]...)
	m.cmd.Env = append(cleanEnv(), "MINIO_ROOT_USER="+m.RootUser, "MINIO_ROOT_PASSWORD="+m.RootPassword,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	m.cmd.Env = append(m.cmd.Env, m.env...)
	out := io.MultiWriter(m.logw, m.log)
	m.cmd.Stdout, m.cmd.Stderr = out, out
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return err
	}
	go func() { m.done <- m.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(m.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-m.done:
			m.done <- err
			return fmt.Errorf("minio exited (%v): %s", err, m.log.tail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = m.Stop()
			return fmt.Errorf("minio did not become live in 30s: %s", m.log.tail())
		}
	}
}

// Pid is the MinIO process's id (for measuring its CPU).
func (m *MinIO) Pid() int { return m.cmd.Process.Pid }

// Stop stops MinIO: SIGTERM, then SIGKILL after 10 s.
func (m *MinIO) Stop() error {
	select {
	case err := <-m.done:
		m.done <- err
		return nil // already stopped
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.done:
		m.done <- err
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		m.done <- <-m.done
	}
	return nil
}

// Restart stops MinIO at once (SIGKILL, as a crash) and starts it again on the same address
// and data, for fault tests.
func (m *MinIO) Restart() error {
	_ = m.cmd.Process.Kill()
	<-m.done
	return m.start()
}

// cleanEnv is the environment without AWS_ and MINIO_ variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "MINIO_") {
			env = append(env, kv)
		}
	}
	return env
}

// tailBuffer keeps the last few KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
