package shaper

import (
	"fmt"
	"math"
	"math/rand"
	"time"
)

// LogNormal is a latency distribution: log-normal around Median, with Sigma the standard deviation
// of its logarithm (0 gives Median every time), cut at Max (0: 10 × Median). S3's first-byte
// latencies have this shape: most near the median, a tail of a few times it.
type LogNormal struct {
	Median time.Duration
	Sigma  float64
	Max    time.Duration
}

// Sample draws one latency.
func (l LogNormal) Sample(r *rand.Rand) time.Duration {
	if l.Median <= 0 {
		return 0
	}
	d := time.Duration(float64(l.Median) * math.Exp(l.Sigma*r.NormFloat64()))
	limit := l.Max
	if limit <= 0 {
		limit = 10 * l.Median
	}
	return min(d, limit)
}

// Quantile is the latency below which a share q (0 < q < 1) of samples fall, before the cut at Max.
func (l LogNormal) Quantile(q float64) time.Duration {
	// The standard normal's quantile, by bisection of its CDF (enough for documentation and tests).
	lo, hi := -10.0, 10.0
	for i := 0; i < 100; i++ {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(-mid/math.Sqrt2) < q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Duration(float64(l.Median) * math.Exp(l.Sigma*lo))
}

// Profile is what the shaper does to the requests and connections passing through it. The zero
// Profile passes everything through untouched.
type Profile struct {
	// Latency is added to every request: its answer's first byte leaves no earlier than a sampled
	// latency after the request's last byte arrived (the server's own time counts within it).
	Latency LogNormal
	// ConnBytesPerSec caps each client connection's bytes per second, in each direction (0: no cap).
	// Throughput then comes from many connections at once, as from S3.
	ConnBytesPerSec float64
	// ReadRate and WriteRate are the requests per second one prefix serves before answering 503
	// SlowDown: GET and HEAD (ReadRate), every other method (WriteRate); 0: no limit. A prefix is
	// the bucket and the key up to its last slash (for a LIST, its prefix parameter's). Each prefix
	// may run ahead of its rate by Burst seconds' worth of requests (0: one second's).
	ReadRate, WriteRate float64
	Burst               float64
}

// Network is a profile for each endpoint a client on EC2 talks to.
type Network struct {
	Name          string
	S3, IMDS, STS Profile
	ConnMiBPerSec float64 // S3's per-connection cap, in MiB/s (0: none)
	RateScale     float64 // S3's published request rates per prefix, times this
}

// S3's published figures, which the s3like profile scales (docs/notes/performance.md says where each
// comes from).
const (
	S3ReadRate        = 5500 // GET/HEAD per second per prefix
	S3WriteRate       = 3500 // PUT/COPY/POST/DELETE per second per prefix
	S3ConnMiBPerSec   = 85.8 // one connection: 85-90 MB/s (AWS), 82 MiB/s measured
	DefaultConnMiBSec = 25   // s3like's per-connection cap on this 2-core machine
)

// Loopback is no shaping at all: the clients talk to MinIO and the emulator directly.
func Loopback() Network { return Network{Name: "loopback"} }

// S3Like is S3 as an EC2 instance in the bucket's region sees it, scaled to a machine whose cores
// cannot move S3's bandwidth: connMiB MiB/s per connection (DefaultConnMiBSec if 0), and the
// request rates per prefix scaled by the same ratio to S3's 85.8 MiB/s per connection, so that
// requests and bytes keep S3's proportions.
func S3Like(connMiB float64) Network {
	if connMiB <= 0 {
		connMiB = DefaultConnMiBSec
	}
	scale := connMiB / S3ConnMiBPerSec
	return Network{
		Name:          "s3like",
		ConnMiBPerSec: connMiB,
		RateScale:     scale,
		S3: Profile{
			Latency:         LogNormal{Median: 20 * time.Millisecond, Sigma: 0.45, Max: 200 * time.Millisecond},
			ConnBytesPerSec: connMiB * (1 << 20),
			ReadRate:        math.Round(S3ReadRate * scale),
			WriteRate:       math.Round(S3WriteRate * scale),
		},
		// IMDS answers from the instance's own host; STS is a regional service call.
		IMDS: Profile{Latency: LogNormal{Median: time.Millisecond, Sigma: 0.3}},
		STS:  Profile{Latency: LogNormal{Median: 30 * time.Millisecond, Sigma: 0.45, Max: 300 * time.Millisecond}},
	}
}

// ByName returns the named network profile: "loopback" or "s3like" (with connMiB as in S3Like).
func ByName(name string, connMiB float64) (Network, bool) {
	switch name {
	case "loopback":
		return Loopback(), true
	case "s3like":
		return S3Like(connMiB), true
	}
	return Network{}, false
}

// Shaped reports whether the network changes anything.
func (n Network) Shaped() bool { return n.S3 != Profile{} || n.IMDS != Profile{} || n.STS != Profile{} }

// Summary describes the network in one line, for reports.
func (n Network) Summary() string {
	if !n.Shaped() {
		return n.Name + ": no shaping, every client talks to MinIO and the emulator on 127.0.0.1 directly"
	}
	l := n.S3.Latency
	return fmt.Sprintf("%s: S3 first byte log-normal, median %v, p90 %v, p99 %v (at most %v); %.0f MiB/s per connection; "+
		"503 SlowDown past %.0f GET/HEAD and %.0f other requests a second per prefix (S3's 5,500 and 3,500 × %.2f); "+
		"STS median %v, IMDS median %v",
		n.Name, l.Median, l.Quantile(0.9).Round(time.Millisecond), l.Quantile(0.99).Round(time.Millisecond), l.Max,
		n.ConnMiBPerSec, n.S3.ReadRate, n.S3.WriteRate, n.RateScale, n.STS.Latency.Median, n.IMDS.Latency.Median)
}
