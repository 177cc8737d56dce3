package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// filesystem is one thing measured through a mount.
type filesystem struct {
	name      string
	prefix    string // where it writes, inside the mount (ends in "/")
	available func() string
	// mount mounts prefix on dir and returns the pid of the filesystem process.
	mount func(dir string) (int, error)
}

func (b *bench) filesystems(s3mountBin, tmp string) []filesystem {
	w := b.w
	endpoint := w.MinIO.Endpoint
	passwd := filepath.Join(tmp, "s3fs-passwd")
	os.WriteFile(passwd, []byte(w.MinIO.RootUser+":"+w.MinIO.RootPassword), 0o600)
	present := func(bin string) func() string {
		return func() string {
			if _, err := exec.LookPath(bin); err != nil {
				return bin + " is not installed"
			}
			return ""
		}
	}
	rclone := func(mode string) func(string) (int, error) {
		return func(dir string) (int, error) {
			args := []string{"mount", "bench:" + world.Bucket + "/" + benchRoot, dir,
				"--vfs-cache-mode", mode, "--cache-dir", filepath.Join(tmp, "rclone-cache-"+filepath.Base(dir)),
				"--dir-cache-time", "1s", "--daemon-wait", "0s"}
			cmd := exec.Command("rclone", args...)
			// Debian's rclone 1.60 fails with AWS_CA_BUNDLE set: the environment is cleaned.
			cmd.Env = append(world.CleanEnv(),
				"RCLONE_CONFIG_BENCH_TYPE=s3", "RCLONE_CONFIG_BENCH_PROVIDER=Minio",
				"RCLONE_CONFIG_BENCH_ENDPOINT="+endpoint, "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+w.MinIO.RootUser,
				"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+w.MinIO.RootPassword, "RCLONE_CONFIG_BENCH_REGION=us-east-1")
			return startAndWait(cmd, dir)
		}
	}
	return []filesystem{
		{
			name: "s3mount", prefix: "w-s3mount/", available: func() string { return "" },
			mount: func(dir string) (int, error) {
				args := append(w.MountArgs(), "--role-arn", world.AccessRole, "--external-id", world.AccessExtID,
					"-f", "s3://"+world.Bucket+"/"+benchRoot, dir)
				cmd := exec.Command(s3mountBin, args...)
				cmd.Env = world.CleanEnv()
				return startAndWait(cmd, dir)
			},
		},
		{
			name: "s3fs", prefix: "w-s3fs/", available: present("s3fs"),
			mount: func(dir string) (int, error) {
				cmd := exec.Command("s3fs", world.Bucket+":/"+benchRoot, dir, "-f",
					"-o", "passwd_file="+passwd, "-o", "url="+endpoint, "-o", "use_path_request_style",
					"-o", "endpoint=us-east-1", "-o", "stat_cache_expire=1")
				cmd.Env = world.CleanEnv()
				return startAndWait(cmd, dir)
			},
		},
		{name: "rclone (cache off)", prefix: "w-rclone-off/", available: present("rclone"), mount: rclone("off")},
		{name: "rclone (cache writes)", prefix: "w-rclone-writes/", available: present("rclone"), mount: rclone("writes")},
	}
}

// benchRoot is what every filesystem mounts: data/ holds the objects read by every job, and each
// filesystem writes under its own w-<name>/ (the role may use only team-a/).
const benchRoot = "team-a/bench"

// startAndWait starts a filesystem process in the foreground and waits until dir is mounted.
func startAndWait(cmd *exec.Cmd, dir string) (int, error) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for !mounted(dir) {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("exited before mounting (%v): %s", err, lastLine(stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return 0, fmt.Errorf("not mounted after 60 s")
		}
	}
	return cmd.Process.Pid, nil
}

func lastLine(s string) string {
	lines := splitLines(strings.TrimSpace(s))
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// mounted reports whether dir is a mountpoint.
func mounted(dir string) bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range splitLines(string(data)) {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// unmount unmounts dir and waits for the process to go.
func unmount(dir string, pid int) {
	for i := 0; i < 50 && mounted(dir); i++ {
		if exec.Command("fusermount3", "-u", dir).Run() == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if mounted(dir) {
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// peakRSS returns the peak resident memory of a process in MiB.
func peakRSS(pid int) float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range splitLines(string(data)) {
		var kb int64
		if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &kb); n == 1 {
			return float64(kb) / 1024
		}
	}
	return 0
}
