package shaper

import (
	"net"
	"sync"
	"time"
)

// quantum is how far a connection may run ahead of its rate before it sleeps: each sleep is at
// least this long, so a GiB costs few wake-ups (some 4,000 at 25 MiB/s).
const quantum = 10 * time.Millisecond

// pacedListener gives every accepted connection its own pacers.
type pacedListener struct {
	net.Listener
	rate float64 // bytes per second, each direction
}

func (l *pacedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &pacedConn{Conn: c, r: newPacer(l.rate), w: newPacer(l.rate)}, nil
}

// pacedConn paces the bytes read from and written to one connection.
type pacedConn struct {
	net.Conn
	r, w *pacer
}

func (c *pacedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b[:min(len(b), c.r.chunk())])
	c.r.account(n)
	return n, err
}

func (c *pacedConn) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		n, err := c.Conn.Write(b[written:min(len(b), written+c.w.chunk())])
		written += n
		c.w.account(n)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// pacer keeps one direction of a connection at rate bytes per second: it tracks when the bytes
// passed so far would have passed at that rate, and sleeps when that is more than a quantum ahead.
// Idle time earns no credit.
type pacer struct {
	rate  float64
	now   func() time.Time
	sleep func(time.Duration)

	mu   sync.Mutex // guards next
	next time.Time
}

func newPacer(rate float64) *pacer { return &pacer{rate: rate, now: time.Now, sleep: time.Sleep} }

// chunk is the most bytes to pass at once: a quantum's worth (at least 16 KiB).
func (p *pacer) chunk() int { return max(16<<10, int(p.rate*quantum.Seconds())) }

// account records n bytes passed and sleeps while they are ahead of the rate by more than a quantum.
func (p *pacer) account(n int) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	if ahead := p.next.Sub(now); ahead > quantum {
		p.sleep(ahead)
	}
}
