package fs

import (
	"io"
	"regexp"
)

// go-fuse's request log (Options.Debug) shows the first 8 bytes of what a request carries and a
// reply returns: the data of WRITE and READ, xattr values. Those are the user's file contents,
// and the log goes to a journal other people read. dataRedactor cuts them out of each line and
// keeps the sizes: `rx 7: WRITE n2 {Fh 1 ...} "secret d"... 4096b` becomes `... 4096b`, and
// `tx 8: OK, 4096b data "secret d"...` becomes `tx 8: OK, 4096b data`. File names stay.
type dataRedactor struct{ w io.Writer }

var (
	// A request's payload: a Go-quoted string, "..." if cut, and its size.
	payloadIn = regexp.MustCompile(`"(?:[^"\\]|\\.)*"(?:\.\.\.)? (\d+b)`)
	// A reply's payload: its size and "data", then the Go-quoted start of it.
	payloadOut = regexp.MustCompile(`(\d+b data) "(?:[^"\\]|\\.)*"(?:\.\.\.)?`)
)

// Write redacts one log line (log.Logger writes each line with one Write).
func (d dataRedactor) Write(p []byte) (int, error) {
	q := payloadIn.ReplaceAll(p, []byte("$1"))
	q = payloadOut.ReplaceAll(q, []byte("$1"))
	if _, err := d.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}
