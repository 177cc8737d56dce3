package fs

import (
	"bytes"
	"testing"
	"time"
	"unsafe"
)

// TestBufPool: buffers are reused once put back, never overlap, and the memory of chunks whose
// buffers are all free goes back to the kernel after the pool was idle (it reads as zeros), while
// a chunk with a buffer in use keeps its content.
func TestBufPool(t *testing.T) {
	const size = 512 << 10 // 4 buffers per 2 MiB chunk
	p := newBufPool(size)
	p.idleTrim = 50 * time.Millisecond
	var bufs [][]byte
	for i := 0; i < 6; i++ { // two chunks, the second in part
		b := p.get()
		if len(b) != size {
			t.Fatalf("buffer of %d bytes, want %d", len(b), size)
		}
		for j := range b {
			b[j] = byte(i + 1)
		}
		bufs = append(bufs, b)
	}
	for i, b := range bufs {
		if !bytes.Equal(b, bytes.Repeat([]byte{byte(i + 1)}, size)) {
			t.Fatalf("buffer %d was overwritten: buffers overlap", i)
		}
	}
	if got := len(p.chunks); got != 8 {
		t.Fatalf("%d buffers mapped, want 8 (two chunks)", got)
	}
	p.put(bufs[5])
	if b := p.get(); unsafe.SliceData(b) != unsafe.SliceData(bufs[5]) {
		t.Error("a buffer put back was not reused")
	}
	// Free the whole first chunk and one buffer of the second, keep bufs[5] in use.
	for _, b := range bufs[:5] {
		p.put(b)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		trimming := p.trimming
		p.mu.Unlock()
		if !trimming {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle pool was not trimmed")
		}
	}
	for i, b := range bufs[:4] {
		if !bytes.Equal(b, make([]byte, size)) {
			t.Errorf("buffer %d of the free chunk still holds its content after the trim", i)
		}
	}
	for _, i := range []int{4, 5} {
		if !bytes.Equal(bufs[i], bytes.Repeat([]byte{byte(i + 1)}, size)) {
			t.Errorf("buffer %d of the chunk in use lost its content", i)
		}
	}
	b := p.get()
	if len(b) != size {
		t.Fatal("no buffer after the trim")
	}
	p.put(b)
	defer func() {
		if recover() == nil {
			t.Error("a buffer put back twice did not panic")
		}
	}()
	p.put(b)
}
