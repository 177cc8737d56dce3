package metrics

import (
	"math"
	"strings"
	"sync"
	"testing"
)

func TestCountersAndGauges(t *testing.T) {
	m := New()
	m.Inc("c_total", "a counter", "op", "read")
	m.Add("c_total", "a counter", 2, "op", "read")
	m.Inc("c_total", "a counter", "op", "write")
	m.Set("g", "a gauge", 7)
	if got := m.Value("c_total", "op", "read"); got != 3 {
		t.Errorf("c_total{op=read} = %v, want 3", got)
	}
	if got := m.Sum("c_total"); got != 4 {
		t.Errorf("sum of c_total = %v, want 4", got)
	}
	if got := m.Value("g"); got != 7 {
		t.Errorf("g = %v, want 7", got)
	}
	var nilReg *Registry
	nilReg.Inc("x", "")
	nilReg.Observe("x", "", 1)
	nilReg.Each(func(Series) { t.Error("a nil registry has series") })
	if nilReg.Value("x") != 0 || nilReg.Sum("x") != 0 || nilReg.Summary() != nil {
		t.Error("a nil registry records")
	}
}

// TestHistogram: observations land in the bucket of the first bound at or above them; Each gives
// cumulative counts, the count and the sum; the summary names the buckets of the median and the
// 99th percentile.
func TestHistogram(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				m.Observe("h_seconds", "a histogram", 0.003, "op", "GetObject") // ≤ 0.005
			}
		}()
	}
	wg.Wait()
	m.Observe("h_seconds", "a histogram", 0.005, "op", "GetObject") // ≤ 0.005: bounds are inclusive
	m.Observe("h_seconds", "a histogram", 0.7, "op", "GetObject")   // ≤ 1
	m.Observe("h_seconds", "a histogram", 100, "op", "GetObject")   // +Inf
	var got []Series
	m.Each(func(s Series) { got = append(got, s) })
	if len(got) != 1 {
		t.Fatalf("%d series, want 1", len(got))
	}
	s := got[0]
	if s.Kind != Histogram || s.Help != "a histogram" || strings.Join(s.Labels, ",") != "op,GetObject" {
		t.Errorf("series %+v", s)
	}
	if s.Count != 103 || math.Abs(s.Sum-(100*0.003+0.005+0.7+100)) > 1e-9 {
		t.Errorf("count %d sum %v", s.Count, s.Sum)
	}
	for i, bound := range Buckets {
		want := uint64(0)
		switch {
		case bound >= 1:
			want = 102
		case bound >= 0.005:
			want = 101
		}
		if s.Counts[i] != want {
			t.Errorf("bucket le=%g: %d, want %d", bound, s.Counts[i], want)
		}
	}
	if v := m.Value("h_seconds", "op", "GetObject"); v != 103 {
		t.Errorf("Value of a histogram = %v, want its count 103", v)
	}
	sum := strings.Join(m.Summary(), " ")
	if want := `h_seconds{op="GetObject"}=count:103,p50<=0.005,p99<=1`; sum != want {
		t.Errorf("summary %q, want %q", sum, want)
	}
}

// BenchmarkFUSEOp is what a FUSE operation records: a counter and a latency.
func BenchmarkFUSEOp(b *testing.B) {
	m := New()
	for b.Loop() {
		m.Inc("s3mount_fuse_ops_total", "h", "op", "read")
		m.Observe("s3mount_fuse_op_duration_seconds", "h", 0.001, "op", "read")
	}
}
