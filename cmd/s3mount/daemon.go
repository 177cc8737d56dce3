package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/internal/safepath"
)

// The daemon. By default s3mount runs in the background: the command starts a copy of itself
// (marked by childEnv, with a pipe on fd 3 for the outcome and one on fd 4 for its arguments,
// which stay out of its command line: see secrets.go) and waits until that copy reports the
// mount live ("OK") or failed ("ERR <exit code> <message>"); only then does it exit, with the
// child's code.
// Under systemd (Type=notify, with -f) the process also tells systemd READY=1 once mounted.
const childEnv = "S3MOUNT_DAEMON_CHILD"

// notifyFD is the child's end of the readiness pipe.
const notifyFD = 3

// daemonize starts the background child and relays its outcome.
func daemonize(args []string, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fail(exitError, "cannot find my own executable to start the background process: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fail(exitError, "%v", err)
	}
	argsR, argsW, err := os.Pipe()
	if err != nil {
		return fail(exitError, "%v", err)
	}
	// The child's command line, which every user sees, is the masked copy; its real arguments
	// go through the pipe on argsFD.
	cmd := exec.Command(self, maskedArgs(args)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.ExtraFiles = []*os.File{w, argsR} // notifyFD, argsFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		argsR.Close()
		argsW.Close()
		return fail(exitError, "starting the background process: %v", err)
	}
	w.Close()
	argsR.Close()
	sendErr := sendArgs(argsW, args)
	argsW.Close()
	if sendErr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		r.Close()
		return fail(exitError, "passing the arguments to the background process: %v", sendErr)
	}
	line, _ := bufio.NewReader(r).ReadString('\n')
	r.Close()
	line = strings.TrimSpace(line)
	switch {
	case line == "OK":
		_ = cmd.Process.Release()
		return nil
	case strings.HasPrefix(line, "ERR "):
		_ = cmd.Wait()
		code, msg, _ := strings.Cut(strings.TrimPrefix(line, "ERR "), " ")
		n, _ := strconv.Atoi(code)
		return &cliError{code: max(n, exitError), err: errors.New(unescapeLine(msg))}
	default:
		err := cmd.Wait()
		return fail(exitError, "the background process ended before mounting (%v); run with -f to see its output", err)
	}
}

// notifier reports the outcome of mounting to whoever waits: the parent (background mode) and
// systemd (NOTIFY_SOCKET).
type notifier struct {
	pipe *os.File // nil in the foreground
}

func newNotifier() *notifier {
	n := &notifier{}
	if os.Getenv(childEnv) != "" {
		n.pipe = os.NewFile(notifyFD, "notify")
		os.Unsetenv(childEnv)
	}
	return n
}

func (n *notifier) ready() {
	if n.pipe != nil {
		fmt.Fprintln(n.pipe, "OK")
		n.pipe.Close()
		n.pipe = nil
	}
	sdNotify("READY=1")
}

func (n *notifier) failed(code int, err error) {
	if n.pipe != nil {
		fmt.Fprintf(n.pipe, "ERR %d %s\n", code, escapeLine(err.Error()))
		n.pipe.Close()
		n.pipe = nil
	}
}

// escapeLine keeps a multi-line message on one line of the pipe.
func escapeLine(s string) string   { return strings.ReplaceAll(s, "\n", "\x1f") }
func unescapeLine(s string) string { return strings.ReplaceAll(s, "\x1f", "\n") }

// sdNotify sends a state line to systemd when it runs us with Type=notify.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state))
}

// backgroundLogger logs to the file given with log_file, else to syslog; never to a terminal. The
// log file is opened through its checked directory with O_NOFOLLOW (internal/safepath): a log file
// that another user could redirect is an error.
func backgroundLogger(c *config) (*slog.Logger, io.Closer, error) {
	level := slog.LevelInfo
	if c.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.logFile != "" {
		f, err := safepath.OpenFile(c.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, err
		}
		return slog.New(slog.NewTextHandler(f, opts)), f, nil
	}
	if w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "s3mount"); err == nil {
		return slog.New(slog.NewTextHandler(w, opts)), w, nil
	}
	return slog.New(slog.NewTextHandler(io.Discard, opts)), io.NopCloser(nil), nil
}

// waitForShutdown is how long SIGTERM waits for writers to close their files.
const defaultShutdownGrace = 30 * time.Second
