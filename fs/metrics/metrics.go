// Package metrics records counters, gauges and latency histograms. It imports neither go-fuse,
// the AWS SDK nor a metrics library, so every layer can use it; a nil *Registry is valid and
// records nothing. The daemon (cmd/s3mount) serves the series in the Prometheus format through
// Each, and logs Summary.
//
// Locking: mu guards the maps; a series' values are atomics, updated without it.
package metrics

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of series.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
)

// Buckets are the upper bounds, in seconds, of every histogram's buckets: from half a millisecond
// (a FUSE operation served from memory) to a minute (a large part on a slow link, or a request
// retried until op_timeout).
var Buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Registry holds the series. Series are identified by name and label values.
type Registry struct {
	mu     sync.RWMutex
	help   map[string]string // metric name → help
	kind   map[string]string // metric name → Counter, Gauge or Histogram
	series map[string]*series
	fast   map[fastKey]*series // series with at most one label, by fastKey
}

type series struct {
	name   string
	labels []string // name, value pairs
	key    string   // labels rendered as {a="b",...}
	bits   atomic.Uint64
	// Histograms only: bits holds the sum; counts[i] the observations in bucket i alone
	// (counts[len(Buckets)] those above the last bound).
	counts []atomic.Uint64
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{help: map[string]string{}, kind: map[string]string{}, series: map[string]*series{}, fast: map[fastKey]*series{}}
}

// seriesKey renders labels (name, value pairs) as {a="b",...}, or "" when there are none.
func seriesKey(labels []string) string {
	if len(labels) < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteByte('=')
		b.WriteString(strconv.Quote(labels[i+1]))
	}
	b.WriteByte('}')
	return b.String()
}

// fastKey identifies a series of at most one label without building its key: the lookup of
// every FUSE operation and S3 request allocates nothing.
type fastKey struct{ name, label, value string }

func (r *Registry) get(kind, name, help string, labels []string) *series {
	var fk fastKey
	fast := len(labels) <= 2
	if fast {
		fk.name = name
		if len(labels) == 2 {
			fk.label, fk.value = labels[0], labels[1]
		}
		r.mu.RLock()
		s, ok := r.fast[fk]
		r.mu.RUnlock()
		if ok {
			return s
		}
	}
	key := seriesKey(labels)
	r.mu.RLock()
	s, ok := r.series[name+key]
	r.mu.RUnlock()
	if ok {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok = r.series[name+key]
	if !ok {
		s = &series{name: name, labels: append([]string(nil), labels[:len(labels)/2*2]...), key: key}
		if kind == Histogram {
			s.counts = make([]atomic.Uint64, len(Buckets)+1)
		}
		r.series[name+key] = s
		r.help[name], r.kind[name] = help, kind
	}
	if fast {
		r.fast[fk] = s
	}
	return s
}

// addFloat adds v to the float64 held in u.
func addFloat(u *atomic.Uint64, v float64) {
	for {
		old := u.Load()
		if u.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Add adds v to the counter name{labels...} (labels are name, value pairs).
func (r *Registry) Add(name, help string, v float64, labels ...string) {
	if r == nil {
		return
	}
	addFloat(&r.get(Counter, name, help, labels).bits, v)
}

// Inc adds one to a counter.
func (r *Registry) Inc(name, help string, labels ...string) { r.Add(name, help, 1, labels...) }

// Set sets the gauge name{labels...}.
func (r *Registry) Set(name, help string, v float64, labels ...string) {
	if r == nil {
		return
	}
	r.get(Gauge, name, help, labels).bits.Store(math.Float64bits(v))
}

// Observe records v (seconds) in the histogram name{labels...}.
func (r *Registry) Observe(name, help string, v float64, labels ...string) {
	if r == nil {
		return
	}
	s := r.get(Histogram, name, help, labels)
	s.counts[sort.SearchFloat64s(Buckets, v)].Add(1)
	addFloat(&s.bits, v)
}

// Since records the time since start in the histogram name{labels...}.
func (r *Registry) Since(name, help string, start time.Time, labels ...string) {
	if r == nil {
		return
	}
	r.Observe(name, help, time.Since(start).Seconds(), labels...)
}

// Value returns the value of name{labels...} (for a histogram, its number of observations), zero
// if it was never recorded.
func (r *Registry) Value(name string, labels ...string) float64 {
	if r == nil {
		return 0
	}
	r.mu.RLock()
	s := r.series[name+seriesKey(labels)]
	r.mu.RUnlock()
	if s == nil {
		return 0
	}
	return s.value()
}

func (s *series) value() float64 {
	if s.counts == nil {
		return math.Float64frombits(s.bits.Load())
	}
	var n uint64
	for i := range s.counts {
		n += s.counts[i].Load()
	}
	return float64(n)
}

// Series is a snapshot of one series.
type Series struct {
	Name, Help, Kind string
	Labels           []string // name, value pairs
	Value            float64  // counters and gauges
	// Histograms: Counts[i] is the number of observations ≤ Buckets[i] (cumulative), Count all of
	// them, Sum their total.
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Each calls f with a snapshot of every series, in name order.
func (r *Registry) Each(f func(Series)) {
	if r == nil {
		return
	}
	for _, s := range r.sorted() {
		r.mu.RLock()
		out := Series{Name: s.name, Help: r.help[s.name], Kind: r.kind[s.name], Labels: s.labels}
		r.mu.RUnlock()
		if s.counts == nil {
			out.Value = math.Float64frombits(s.bits.Load())
		} else {
			out.Counts = make([]uint64, len(Buckets))
			for i := range s.counts {
				out.Count += s.counts[i].Load()
				if i < len(Buckets) {
					out.Counts[i] = out.Count
				}
			}
			out.Sum = math.Float64frombits(s.bits.Load())
		}
		f(out)
	}
}

// sorted returns the series in name order.
func (r *Registry) sorted() []*series {
	r.mu.RLock()
	out := make([]*series, 0, len(r.series))
	for _, s := range r.series {
		out = append(out, s)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return out[i].key < out[j].key
	})
	return out
}

// Summary returns the non-zero series as "name{labels}=value" items, for a log line. A histogram
// is given as its count and the bucket bounds its median and 99th percentile fall under:
// "name{labels}=count:12,p50<=0.01,p99<=0.25" (a bound of +Inf: above the last bucket).
func (r *Registry) Summary() []string {
	var out []string
	r.Each(func(s Series) {
		key := s.Name + seriesKey(s.Labels)
		switch {
		case s.Kind == Histogram && s.Count > 0:
			out = append(out, fmt.Sprintf("%s=count:%d,p50<=%g,p99<=%g", key, s.Count, s.quantile(.5), s.quantile(.99)))
		case s.Kind != Histogram && s.Value != 0:
			out = append(out, fmt.Sprintf("%s=%g", key, s.Value))
		}
	})
	return out
}

// quantile returns the upper bound of the bucket the q-quantile of a histogram falls in.
func (s Series) quantile(q float64) float64 {
	rank := uint64(math.Ceil(q * float64(s.Count)))
	for i, c := range s.Counts {
		if c >= rank {
			return Buckets[i]
		}
	}
	return math.Inf(1)
}

// Sum returns the sum of every series of name, whatever its labels (for histograms, their
// numbers of observations).
func (r *Registry) Sum(name string) float64 {
	if r == nil {
		return 0
	}
	var sum float64
	for _, s := range r.sorted() {
		if s.name == name {
			sum += s.value()
		}
	}
	return sum
}
