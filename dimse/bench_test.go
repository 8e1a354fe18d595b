package dimse

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkEcho is one C-ECHO round trip on an open association over loopback.
func BenchmarkEcho(b *testing.B) {
	ts := startServer(b, nil)
	c, err := Dial(context.Background(), ts.addr, clientConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Release(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		if st, err := c.Echo(context.Background()); err != nil || st.Code != StatusSuccess {
			b.Fatalf("echo: %v %v", st, err)
		}
	}
}

// BenchmarkStore is one C-STORE of a 1 MiB data set on an open association over loopback; the
// server hashes what it receives.
func BenchmarkStore(b *testing.B) {
	ts := startServer(b, nil)
	c, err := Dial(context.Background(), ts.addr, clientConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Release(context.Background())
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if st, err := c.Store(context.Background(), ctImage, "1.2.3", ExplicitVRLittleEndian, bytes.NewReader(data)); err != nil || st.Code != StatusSuccess {
			b.Fatalf("store: %v %v", st, err)
		}
	}
}

// BenchmarkAssociate is one association negotiated and released.
func BenchmarkAssociate(b *testing.B) {
	ts := startServer(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		c, err := Dial(context.Background(), ts.addr, clientConfig())
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Release(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadPDU decodes an A-ASSOCIATE-RQ with every kind of item.
func BenchmarkReadPDU(b *testing.B) {
	raw := EncodePDU(samplePDUs()["associate-rq"])
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadPDU(bytes.NewReader(raw), 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
