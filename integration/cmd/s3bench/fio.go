package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// fioJob is one fio job section: its name and job-specific options (name=value, without "--").
type fioJob struct {
	name string
	opts []string
}

// fioGlobal are the options every job shares, after mountpoint-s3's published fio jobs
// (scripts/fio/*): 256 KiB blocks, the sync engine, no fallocate.
var fioGlobal = []string{"bs=256k", "ioengine=sync", "fallocate=none", "group_reporting=1"}

// fio runs fio with the shared options, more global options and the jobs, and returns the
// aggregate bandwidth in MiB/s that fio reports. The mount directory is hidden from error messages.
func (b *bench) fio(ctx context.Context, mnt string, global []string, jobs ...fioJob) (float64, error) {
	out := filepath.Join(b.tmp, fmt.Sprintf("fio-%d.json", time.Now().UnixNano()))
	defer os.Remove(out)
	args := []string{"--output-format=json", "--output=" + out}
	for _, o := range append(append([]string{}, fioGlobal...), global...) {
		args = append(args, "--"+o)
	}
	for _, j := range jobs {
		args = append(args, "--name="+j.name)
		for _, o := range j.opts {
			args = append(args, "--"+o)
		}
	}
	cmd := exec.CommandContext(ctx, "fio", args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("fio stopped: %w", context.Cause(ctx))
		}
		return 0, fmt.Errorf("fio: %v: %s", err, fioReason(stderr.String(), mnt))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return 0, err
	}
	if i := bytes.IndexByte(data, '{'); i > 0 {
		data = data[i:] // fio may print notes before the JSON
	}
	var res struct {
		Jobs []struct {
			Error       int `json:"error"`
			Read, Write struct {
				BW int64 `json:"bw_bytes"`
			}
		} `json:"jobs"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return 0, fmt.Errorf("fio output: %v", err)
	}
	if len(res.Jobs) == 0 {
		return 0, fmt.Errorf("fio output has no jobs")
	}
	var bw int64
	for _, j := range res.Jobs {
		if j.Error != 0 {
			return 0, fmt.Errorf("fio job error %d (%s)", j.Error, syscall.Errno(j.Error))
		}
		bw += j.Read.BW + j.Write.BW
	}
	start, ok := b.fioStart[len(jobs)]
	if !ok {
		return 0, fmt.Errorf("fio's own CPU with %d jobs was not calibrated (see calibrateFio)", len(jobs))
	}
	m := meterFrom(ctx)
	m.discount(start.machine)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.program(max(0, rusageSeconds(ru)-start.program))
	}
	return float64(bw) / mib, nil
}

// fioCost is the CPU that fio spends on itself, starting and stopping: the machine's, and its own.
type fioCost struct{ machine, program float64 }

// rusageSeconds is the user and system CPU time in ru (a process and the children it waited for).
func rusageSeconds(ru *syscall.Rusage) float64 {
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// calibrateFio measures the CPU that fio itself spends starting and stopping, with each number of
// jobs the bench runs it with (one, four, and job 9's writers), by reading 256 KiB of a local file:
// some 0.17 CPU seconds of the machine's here with one job, which a measurement's CPU leaves out
// (fio's bandwidth leaves that time out too).
func (b *bench) calibrateFio(ctx context.Context) error {
	file := filepath.Join(b.tmp, "fio-calibration")
	if err := os.WriteFile(file, make([]byte, 256<<10), 0o644); err != nil {
		return err
	}
	defer os.Remove(file)
	b.fioStart = map[int]fioCost{}
	for _, n := range []int{1, 4, b.sz.Writers} {
		var jobs []fioJob
		for i := 0; i < n; i++ {
			jobs = append(jobs, fioJob{fmt.Sprintf("calibrate%d", i), []string{"filename=" + file, "size=256k"}})
		}
		b.fioStart[n] = fioCost{} // nothing left out while calibrating
		var machine, program []float64
		for i := 0; i < 5; i++ {
			m := &meter{}
			m.begin()
			if _, err := b.fio(withMeter(ctx, m), b.tmp, []string{"rw=read", "readonly"}, jobs...); err != nil {
				return fmt.Errorf("calibrating fio: %w", err)
			}
			m.end()
			if m.sample != nil {
				machine, program = append(machine, m.sample.Busy), append(program, m.sample.Program)
			}
		}
		b.fioStart[n] = fioCost{median(machine), median(program)}
	}
	return nil
}

var fioNoise = regexp.MustCompile(`(?m)^(fio: pid=\d+, err=\d+/file:[^ ]+ )`)

// fioReason picks the telling line of fio's error output, with the mount directory shortened.
func fioReason(s, mnt string) string {
	s = strings.ReplaceAll(s, mnt, "<mnt>")
	s = fioNoise.ReplaceAllString(s, "")
	var best string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if best == "" || strings.Contains(line, "error") || strings.Contains(line, "err=") {
			best = line
			if strings.Contains(line, "error") {
				break
			}
		}
	}
	return best
}
