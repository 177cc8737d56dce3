//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"sync"
	"testing"
)

var reportMu sync.Mutex

// record notes the outcome of a reliability scenario. With S3MOUNT_RELIABILITY_LOG set (make
// reliability-report does), each record becomes a JSON line there, together with whether the test
// passed, and docs/RELIABILITY.md is generated from those lines.
func record(t *testing.T, class, scenario, outcome string) {
	t.Helper()
	t.Logf("RELIABILITY | %s | %s | %s", class, scenario, outcome)
	path := os.Getenv("S3MOUNT_RELIABILITY_LOG")
	if path == "" {
		return
	}
	t.Cleanup(func() {
		line, _ := json.Marshal(map[string]any{
			"class": class, "scenario": scenario, "outcome": outcome, "test": t.Name(), "passed": !t.Failed(),
		})
		reportMu.Lock()
		defer reportMu.Unlock()
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Errorf("reliability log: %v", err)
			return
		}
		defer f.Close()
		f.Write(append(line, '\n'))
	})
}
