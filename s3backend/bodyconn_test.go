package s3backend

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"net"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// TestBodyConn: the HTTP client's connections copy request bodies through recycled buffers (see
// bodyConn), and what they send is the body.
func TestBodyConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	hc := newHTTPClient(NewConfig()).(*awshttp.BuildableClient)
	c, err := hc.GetTransport().DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*bodyConn); !ok {
		t.Fatalf("the transport dials a %T, want a bodyConn", c)
	}
	body := make([]byte, 100<<10+7) // over three buffers
	rand.New(rand.NewSource(1)).Read(body)
	n, err := c.(io.ReaderFrom).ReadFrom(io.LimitReader(bytes.NewReader(body), int64(len(body))))
	c.Close()
	if err != nil || n != int64(len(body)) {
		t.Fatalf("ReadFrom: %d bytes, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, body) {
		t.Errorf("the server got %d bytes that differ from the body", len(b))
	}
}
