package fs

import (
	"fmt"
	"testing"
	"time"
)

// TestEventLogIsBounded: the recent errors kept for status are the latest maxStatusErrors, and
// their count stays bounded however many come.
func TestEventLogIsBounded(t *testing.T) {
	var l eventLog
	start := time.Now()
	for i := range 3 * maxErrorTimes {
		l.addError(ErrorEvent{Time: start.Add(time.Duration(i)), Op: "write", Path: fmt.Sprint(i)})
	}
	if len(l.errors) != maxStatusErrors || l.errors[len(l.errors)-1].Path != fmt.Sprint(3*maxErrorTimes-1) {
		t.Errorf("kept %d errors ending with %q, want the latest %d", len(l.errors), l.errors[len(l.errors)-1].Path, maxStatusErrors)
	}
	if len(l.count) > maxErrorTimes {
		t.Errorf("kept %d error times, want at most %d", len(l.count), maxErrorTimes)
	}
}
