//go:build integration

package integration

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_Demo runs `make demo`'s script in its check mode, so that the README's first command
// keeps working: it mounts through the real chain, lists, reads a file, and stops everything.
func TestInteg_Demo(t *testing.T) {
	cmd := exec.Command("bash", "scripts/demo.sh", "--check")
	cmd.Dir = world.RepoRoot()
	done := make(chan struct{})
	time.AfterFunc(5*time.Minute, func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
		}
	})
	out, err := cmd.CombinedOutput()
	close(done)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{"mounted without a single access key", "2026-q4.csv", "unmounted"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
