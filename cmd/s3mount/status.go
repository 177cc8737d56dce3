package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes of `s3mount status`.
const (
	exitStatusDead    = 30 // a mount is dead: its daemon is gone or does not answer
	exitStatusFailing = 31 // a mount's last commit failed
	exitStatusNone    = 32 // no s3mount mount (or not at the mountpoint named)
)

// statusTimeout bounds how long status waits for a daemon (and for the kernel about a mount).
const statusTimeout = 3 * time.Second

// fuseMount is an s3mount mount found in /proc/self/mountinfo.
type fuseMount struct {
	dir, source string
	uid         int // user_id= of the FUSE mount: who mounted
}

// s3mountMounts lists the fuse.s3mount mounts in /proc/self/mountinfo.
func s3mountMounts() ([]fuseMount, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []fuseMount
	for _, line := range strings.Split(string(data), "\n") {
		// mount ID, parent ID, major:minor, root, mount point, options, optional fields..., "-",
		// type, source, super options
		pre, post, ok := strings.Cut(line, " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 || tail[0] != "fuse.s3mount" {
			continue
		}
		m := fuseMount{dir: unescapeMountinfo(fields[4]), source: unescapeMountinfo(tail[1]), uid: -1}
		for _, o := range strings.Split(tail[2], ",") {
			if v, ok := strings.CutPrefix(o, "user_id="); ok {
				m.uid, _ = strconv.Atoi(v)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// statusCommand prints the status of every s3mount mount, or of the one named:
//
//	s3mount status [--json] [MOUNTPOINT]
func statusCommand(args []string, stdout io.Writer) error {
	jsonOut := false
	var named []string
	for _, a := range args {
		switch {
		case a == "--json":
			jsonOut = true
		case strings.HasPrefix(a, "-"):
			return fail(exitUsage, "status: unknown option %q (usage: s3mount status [--json] [MOUNTPOINT])", a)
		default:
			named = append(named, a)
		}
	}
	if len(named) > 1 {
		return fail(exitUsage, "status: at most one mountpoint (usage: s3mount status [--json] [MOUNTPOINT])")
	}
	mounts, err := s3mountMounts()
	if err != nil {
		return fail(exitError, "status: %v", err)
	}
	if len(named) == 1 {
		want := resolveMountpoint(named[0])
		var found []fuseMount
		for _, m := range mounts {
			if m.dir == want {
				found = append(found, m)
			}
		}
		if len(found) == 0 {
			return fail(exitStatusNone, "status: %s is not an s3mount mount", want)
		}
		mounts = found[len(found)-1:] // the mount on top
	}
	reports := make([]mountReport, 0, len(mounts))
	code := exitOK
	for _, m := range mounts {
		r := queryMount(m)
		switch {
		case r.State == "dead" || r.State == "unreachable":
			code = exitStatusDead
		case r.State == "failing" && code == exitOK:
			code = exitStatusFailing
		}
		reports = append(reports, r)
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(reports)
	} else {
		if len(reports) == 0 {
			fmt.Fprintln(stdout, "no s3mount mounts")
		}
		for i, r := range reports {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			printReport(stdout, r)
		}
	}
	if len(mounts) == 0 {
		return &cliError{code: exitStatusNone, err: errors.New("no s3mount mounts")}
	}
	switch code {
	case exitStatusDead:
		return &cliError{code: code, err: errors.New("a mount is dead")}
	case exitStatusFailing:
		return &cliError{code: code, err: errors.New("a mount's last commit failed")}
	}
	return nil
}

// queryMount asks the daemon of m for its status. A mount of the caller's whose socket is gone or
// refuses, or that does not answer in time, is dead; so is one the kernel says is not connected.
func queryMount(m fuseMount) mountReport {
	r := mountReport{Mountpoint: m.dir, Source: m.source}
	own := m.uid < 0 || m.uid == os.Geteuid()
	uid := m.uid
	if uid < 0 {
		uid = os.Geteuid()
	}
	// Another user's mount is asked too: its daemon (or the directory of its socket) refuses.
	dead := func(problem string) mountReport {
		switch {
		case !own:
			r.State, r.Problem = "not-yours", fmt.Sprintf("mounted by uid %d, which alone can ask its daemon (%s)", m.uid, problem)
		case kernelSaysDead(m.dir):
			r.State, r.Problem = "dead", "transport endpoint is not connected (the daemon is gone); clean up with: fusermount3 -uz "+m.dir
		default:
			r.State, r.Problem = "dead", problem
		}
		return r
	}
	path := filepath.Join(controlDirFor(uid, own), socketName(m.dir))
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		r = dead("no control socket at " + path + ": the daemon is gone")
		if r.State == "dead" && !strings.Contains(r.Problem, "not connected") && kernelAnswers(m.dir) {
			// The kernel still reaches a daemon: one older than s3mount status, or whose socket
			// was removed. Status cannot vouch for it.
			r.State, r.Problem = "unreachable", "the mount answers, but its daemon has no control socket at "+path+
				": it predates s3mount status (remount to upgrade it), or the socket was removed"
		}
		return r
	}
	conn, err := net.DialTimeout("unix", path, statusTimeout)
	if err != nil {
		return dead(fmt.Sprintf("the daemon does not answer on %s: %v", path, errors.Unwrap(err)))
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(statusTimeout))
	// The answer is read even if the request could not be sent: a daemon that refuses the caller
	// says so and hangs up before reading it.
	_, werr := fmt.Fprintln(conn, "status")
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil && werr != nil {
		return dead(fmt.Sprintf("the daemon does not answer: %v", werr))
	}
	if err != nil {
		return dead(fmt.Sprintf("the daemon did not answer within %s: %v", statusTimeout, err))
	}
	var got mountReport
	if err := json.Unmarshal(line, &got); err != nil {
		answer := strings.TrimSpace(string(line))
		if strings.HasPrefix(answer, "denied") {
			r.State, r.Problem = "not-yours", "the daemon answered: "+answer
			return r
		}
		r.State, r.Problem = "dead", "the daemon answered: "+answer
		return r
	}
	return got
}

// kernelAnswers reports whether the kernel gets an answer from dir's daemon within statusTimeout.
func kernelAnswers(dir string) bool {
	done := make(chan error, 1)
	go func() {
		var st syscall.Statfs_t
		done <- syscall.Statfs(dir, &st)
	}()
	select {
	case err := <-done:
		return err == nil
	case <-time.After(statusTimeout):
		return false
	}
}

// kernelSaysDead reports whether the kernel answers ENOTCONN for dir (its daemon is gone). A
// hung daemon is not waited for beyond statusTimeout.
func kernelSaysDead(dir string) bool {
	done := make(chan error, 1)
	go func() {
		var st syscall.Statfs_t // statfs always asks the daemon; stat may be answered from cache
		done <- syscall.Statfs(dir, &st)
	}()
	select {
	case err := <-done:
		return errors.Is(err, syscall.ENOTCONN)
	case <-time.After(statusTimeout):
		return false
	}
}

func printReport(w io.Writer, r mountReport) {
	fmt.Fprintf(w, "%s  %s  %s\n", r.Mountpoint, r.Source, r.State)
	if r.Problem != "" {
		fmt.Fprintf(w, "  problem: %s\n", r.Problem)
	}
	if r.PID == 0 {
		return
	}
	mode := "read-write"
	if r.ReadOnly {
		mode = "read-only"
	}
	fmt.Fprintf(w, "  daemon: pid %d, s3mount %s, mounted %s (%s ago), %s, %s %s\n", r.PID, r.Version,
		r.MountedAt.Format(time.RFC3339), ago(r.MountedAt), mode, r.Endpoint, r.Region)
	for _, l := range r.Credentials {
		fmt.Fprintf(w, "  credentials: %s", l.Link)
		if l.RoleARN != "" {
			fmt.Fprintf(w, " %s (session %s", l.RoleARN, l.SessionName)
			if l.ExternalID {
				fmt.Fprint(w, ", with an External ID")
			}
			fmt.Fprint(w, ")")
		}
		if !l.Expires.IsZero() {
			fmt.Fprintf(w, ", expires %s (in %s)", l.Expires.Format(time.RFC3339), time.Until(l.Expires).Round(time.Second))
		}
		if l.Error != "" {
			fmt.Fprintf(w, ", last refresh FAILED: %s", l.Error)
		}
		fmt.Fprintln(w)
	}
	if t := r.Traffic; t != nil {
		fmt.Fprintf(w, "  since mount: %d S3 requests (%d failed), %s read, %s written, %d FUSE operations\n",
			t.Requests, t.RequestErrors, bytesText(t.BytesRead), bytesText(t.BytesWritten), t.FuseOps)
	}
	s := r.Status
	if s == nil {
		return
	}
	fmt.Fprintf(w, "  writing: %d file(s), %d part(s) in flight\n", len(s.Writing), s.PartsInFlight)
	for _, f := range s.Writing {
		state := "closed"
		if f.Open {
			state = "open"
		}
		fmt.Fprintf(w, "    %s  %s  %s, %d part(s) in flight\n", f.Key, bytesText(f.Size), state, f.PartsInFlight)
	}
	if c := s.LastCommit; c != nil {
		if c.Error == "" {
			fmt.Fprintf(w, "  last commit: %s ok, %s ago\n", c.Key, ago(c.Time))
		} else {
			fmt.Fprintf(w, "  last commit: %s FAILED %s ago: %s\n", c.Key, ago(c.Time), c.Error)
		}
	}
	fmt.Fprintf(w, "  errors in the last %d min: %d\n", int(statusWindow.Minutes()), s.ErrorCount)
	for _, e := range s.Errors {
		fmt.Fprintf(w, "    %s %s %s %s: %s\n", e.Time.Format(time.TimeOnly), e.Op, e.Path, e.Errno, e.Error)
	}
	cache := "off"
	if s.CacheLimit > 0 {
		cache = bytesText(s.CacheLimit)
	}
	disk := "off"
	if s.DiskCacheMax > 0 {
		disk = bytesText(s.DiskCacheUsed) + " of " + bytesText(s.DiskCacheMax)
	}
	fmt.Fprintf(w, "  cache: memory %s; disk %s; staging %s of %s", cache, disk, bytesText(s.StagingUsed), bytesText(s.StagingLimit))
	if t := r.Traffic; t != nil {
		fmt.Fprintf(w, "; blocks from memory %d, from disk %d, from S3 %d", t.CacheHits, t.DiskCacheHits, t.CacheMisses)
	}
	fmt.Fprintln(w)
}

func ago(t time.Time) time.Duration { return time.Since(t).Round(time.Second) }

// bytesText renders n bytes in binary units.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
