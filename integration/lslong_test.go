//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/s3mount/s3mount/integration/world"
)

// TestInteg_LsLongAgainNeedsNoHeads: against MinIO, a second `ls -l` of an unchanged directory
// costs its listing alone: the times a listing and a HEAD give agree to the second, so the nodes
// the first one made answer for the versions listed.
func TestInteg_LsLongAgainNeedsNoHeads(t *testing.T) {
	prefix := testPrefix(t)
	const n = 40
	for i := 0; i < n; i++ {
		if err := w.Put(context.Background(), fmt.Sprintf("%sd/f%02d", prefix, i), strings.NewReader("hello")); err != nil {
			t.Fatal(err)
		}
	}
	m, addr := mountWithMetrics(t, "s3://"+world.Bucket+"/"+prefix)
	stats := func() int { // HEADs and GETs so far
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		total := 0
		for _, op := range []string{"HeadObject", "GetObject"} {
			if v := regexp.MustCompile(`s3mount_s3_requests_total\{op="` + op + `"\} (\d+)`).FindSubmatch(body); v != nil {
				k, _ := strconv.Atoi(string(v[1]))
				total += k
			}
		}
		return total
	}
	ls := func() {
		out, err := exec.Command("ls", "-l", m.path("d")).CombinedOutput()
		if err != nil || strings.Count(string(out), "\n-") != n {
			t.Fatalf("ls -l: %v\n%s", err, out)
		}
	}
	ls()
	first := stats()
	if first != n {
		t.Errorf("first ls -l: %d HEADs and GETs, want %d", first, n)
	}
	ls()
	if again := stats() - first; again != 0 {
		t.Errorf("second ls -l of the unchanged directory: %d HEADs and GETs, want none", again)
	}
}
