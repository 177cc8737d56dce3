// Package metrics is a small registry of counters and gauges, exposed in the Prometheus text
// format and as a log summary. It imports neither go-fuse nor the AWS SDK, so every layer can use
// it; a nil *Registry is valid and records nothing.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds the series. Series are identified by name and label values.
type Registry struct {
	mu     sync.Mutex
	help   map[string]string // metric name → help
	kind   map[string]string // metric name → "counter" or "gauge"
	series map[string]*series
}

type series struct {
	name   string
	labels string // rendered {a="b",...}
	bits   atomic.Uint64
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{help: map[string]string{}, kind: map[string]string{}, series: map[string]*series{}}
}

// seriesKey renders labels (name, value pairs) as {a="b",...}, or "" when there are none.
func seriesKey(labels []string) string {
	var b strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	if b.Len() == 0 {
		return ""
	}
	return "{" + b.String() + "}"
}

func (r *Registry) get(kind, name, help string, labels []string) *series {
	lbl := seriesKey(labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.series[name+lbl]
	if !ok {
		s = &series{name: name, labels: lbl}
		r.series[name+lbl] = s
		r.help[name], r.kind[name] = help, kind
	}
	return s
}

// Add adds v to the counter name{labels...} (labels are name, value pairs).
func (r *Registry) Add(name, help string, v float64, labels ...string) {
	if r == nil {
		return
	}
	s := r.get("counter", name, help, labels)
	for {
		old := s.bits.Load()
		if s.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Inc adds one to a counter.
func (r *Registry) Inc(name, help string, labels ...string) { r.Add(name, help, 1, labels...) }

// Value returns the value of name{labels...}, zero if it was never recorded.
func (r *Registry) Value(name string, labels ...string) float64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	s := r.series[name+seriesKey(labels)]
	r.mu.Unlock()
	if s == nil {
		return 0
	}
	return math.Float64frombits(s.bits.Load())
}

// Set sets the gauge name{labels...}.
func (r *Registry) Set(name, help string, v float64, labels ...string) {
	if r == nil {
		return
	}
	r.get("gauge", name, help, labels).bits.Store(math.Float64bits(v))
}

// sorted returns the series in name order.
func (r *Registry) sorted() []*series {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*series, 0, len(r.series))
	for _, s := range r.series {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return out[i].labels < out[j].labels
	})
	return out
}

// WriteText writes every series in the Prometheus text exposition format.
func (r *Registry) WriteText(w io.Writer) {
	if r == nil {
		return
	}
	last := ""
	for _, s := range r.sorted() {
		if s.name != last {
			r.mu.Lock()
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", s.name, r.help[s.name], s.name, r.kind[s.name])
			r.mu.Unlock()
			last = s.name
		}
		fmt.Fprintf(w, "%s%s %g\n", s.name, s.labels, math.Float64frombits(s.bits.Load()))
	}
}

// Summary returns the non-zero series as "name{labels}=value" items, for a log line.
func (r *Registry) Summary() []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, s := range r.sorted() {
		if v := math.Float64frombits(s.bits.Load()); v != 0 {
			out = append(out, fmt.Sprintf("%s%s=%g", s.name, s.labels, v))
		}
	}
	return out
}

// Sum returns the sum of every series of name, whatever its labels.
func (r *Registry) Sum(name string) float64 {
	if r == nil {
		return 0
	}
	var sum float64
	for _, s := range r.sorted() {
		if s.name == name {
			sum += math.Float64frombits(s.bits.Load())
		}
	}
	return sum
}
