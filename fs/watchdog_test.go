package fs

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the tests under a watchdog. A test that hangs on its own FUSE mount is not ended
// by the -timeout panic: the process's exit closes the files open on the mount, and waits for
// itself to answer their FLUSH. Shortly before the timeout, the watchdog writes every goroutine
// to a file and a summary (longest waits first, with the frame of ours each waits in) to stderr
// and the file's end, aborts the test mounts' connections, and kills the process. (It cannot help
// when the runtime itself is stuck, as when a page fault on the mount stops a garbage collection:
// see runMmapJob.)
func TestMain(m *testing.M) {
	flag.Parse()
	if d := flag.Lookup("test.timeout").Value.(flag.Getter).Get().(time.Duration); d > time.Minute {
		t := time.AfterFunc(d-20*time.Second, func() { hung(d - 20*time.Second) })
		defer t.Stop()
	}
	os.Exit(m.Run())
}

// hung writes the report and kills the process.
func hung(after time.Duration) {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	summary := summarizeGoroutines(buf, 20)
	out := os.Getenv("S3MOUNT_HANG_REPORT") // `make unit` prints its end when the tests fail
	if out == "" {
		out = os.TempDir() + "/s3mount-fs-hang.txt"
	}
	msg := fmt.Sprintf("watchdog: the tests still ran after %v; goroutines in %s\n%s", after, out, summary)
	_ = os.WriteFile(out, append(append(buf, '\n'), msg...), 0o644)
	fmt.Fprint(os.Stderr, msg)
	// Closing /dev/fuse aborts the connection: requests pending on the mounts get ENOTCONN, and
	// the exit does not wait for this process to answer them.
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, fd := range fds {
			if target, _ := os.Readlink("/proc/self/fd/" + fd.Name()); target == "/dev/fuse" {
				n, _ := strconv.Atoi(fd.Name())
				_ = syscall.Close(n)
			}
		}
	}
	mounted.Lock()
	for dir := range mounted.dirs {
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	mounted.Unlock()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

// mounted are the test mounts (see testMount), for the watchdog to detach.
var mounted = struct {
	sync.Mutex
	dirs map[string]bool
}{dirs: map[string]bool{}}

var goroutineHeader = regexp.MustCompile(`^goroutine \d+ \[([^\]]*)\]:$`)

// summarizeGoroutines groups the goroutines of a runtime.Stack dump by their wait state and the
// innermost frame of this module (or a running test's function), longest waits first, and
// returns at most max lines.
func summarizeGoroutines(dump []byte, max int) string {
	type group struct {
		state, frame string
		n            int
	}
	groups := map[string]*group{}
	var state, frame string
	flush := func() {
		if state == "" || frame == "" {
			return
		}
		k := state + "|" + frame
		if groups[k] == nil {
			groups[k] = &group{state: state, frame: frame}
		}
		groups[k].n++
	}
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := goroutineHeader.FindStringSubmatch(line); m != nil {
			flush()
			state, frame = m[1], ""
			continue
		}
		if frame == "" && strings.HasPrefix(line, "github.com/s3mount/s3mount/") {
			frame = strings.TrimPrefix(line, "github.com/s3mount/s3mount/")
			if i := strings.LastIndex(frame, "("); i > 0 {
				frame = frame[:i]
			}
		}
	}
	flush()
	list := make([]*group, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	minutes := func(s string) int {
		var n int
		if i := strings.LastIndex(s, ", "); i >= 0 {
			fmt.Sscanf(s[i+2:], "%d minutes", &n)
		}
		return n
	}
	sort.Slice(list, func(i, j int) bool {
		if a, b := minutes(list[i].state), minutes(list[j].state); a != b {
			return a > b
		}
		return list[i].frame < list[j].frame
	})
	var sb strings.Builder
	for i, g := range list {
		if i == max {
			fmt.Fprintf(&sb, "  ... %d more groups\n", len(list)-max)
			break
		}
		fmt.Fprintf(&sb, "  %3d × [%s] %s\n", g.n, g.state, g.frame)
	}
	return sb.String()
}

func TestSummarizeGoroutines(t *testing.T) {
	dump := `goroutine 1 [chan receive, 9 minutes]:
testing.(*T).Run(0xc000001, {0x6a, 0x1}, 0x7)
	/go/src/testing/testing.go:1 +0x1
github.com/s3mount/s3mount/fs.TestStuck(0xc000002)
	/work/main/fs/x_test.go:10 +0x2

goroutine 7 [select, 9 minutes]:
github.com/s3mount/s3mount/fs.(*reader).read(0xc0, {0x1, 0x2}, 0x0, 0x1000)
	/work/main/fs/prefetch.go:90 +0x3
github.com/s3mount/s3mount/fs.(*file).Read(0xc1)
	/work/main/fs/file.go:1 +0x4

goroutine 8 [select, 9 minutes]:
github.com/s3mount/s3mount/fs.(*reader).read(0xc0, {0x1, 0x2}, 0x0, 0x1000)
	/work/main/fs/prefetch.go:90 +0x3

goroutine 9 [IO wait]:
internal/poll.runtime_pollWait(0x1)
	/go/src/runtime/netpoll.go:1 +0x1

goroutine 12 [semacquire, 2 minutes]:
sync.(*Mutex).Lock(0xc2)
	/go/src/sync/mutex.go:1 +0x1
github.com/s3mount/s3mount/fs.(*Root).lookup(0xc3)
	/work/main/fs/lookup.go:1 +0x1
`
	want := "    2 × [select, 9 minutes] fs.(*reader).read\n" +
		"    1 × [chan receive, 9 minutes] fs.TestStuck\n" +
		"    1 × [semacquire, 2 minutes] fs.(*Root).lookup\n"
	if got := summarizeGoroutines([]byte(dump), 20); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	if got := summarizeGoroutines([]byte(dump), 1); !strings.HasSuffix(got, "... 2 more groups\n") {
		t.Errorf("summary cut at 1 group:\n%s", got)
	}
}
