package fs

import "testing"

func TestPartLayout(t *testing.T) {
	const p = 8 << 20
	off := int64(0)
	for i := 0; i < 10000; i++ {
		o, n := partRange(i, p)
		if o != off {
			t.Fatalf("part %d starts at %d, want %d", i, o, off)
		}
		if partIndex(o, p) != i || partIndex(o+n-1, p) != i {
			t.Fatalf("partIndex disagrees with partRange at part %d", i)
		}
		off += n
	}
	if off < 5<<40 {
		t.Errorf("10,000 parts hold %d bytes, less than 5 TiB", off)
	}
	for _, c := range []struct{ size, want int64 }{{0, 1}, {1, 1}, {p, 1}, {p + 1, 2}, {1000 * p, 1000}, {1000*p + 1, 1001}} {
		if got := partCount(c.size, p); int64(got) != c.want {
			t.Errorf("partCount(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}
