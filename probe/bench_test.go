package probe

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }
func (discardConn) Close() error                { return nil }

var _ io.Writer = discardConn{}

// BenchmarkProbeEvent is the probe's cost per handshake once a frame is
// read: parse SYN and SYN-ACK, track, encode the record into the export
// buffer (sent every ~25 records to a discarding connection).
func BenchmarkProbeEvent(b *testing.B) {
	p := &Probe{}
	m, err := newMetrics(nil, p)
	if err != nil {
		b.Fatal(err)
	}
	exp := newExporter(discardConn{}, 1, time.Hour, m)
	tr := newTracker(3, 65536, 5e9, exp.add, m)
	syn := frame(false, 6, tcpSYN, 0, 0)
	synack := frame(false, 6, tcpSYN|tcpACK, 0, 0)
	// the SYN-ACK travels the other way
	copy(synack[26:30], []byte{10, 0, 0, 2})
	copy(synack[30:34], []byte{10, 0, 0, 1})
	synack[34], synack[35], synack[36], synack[37] = 0, 80, 0x9c, 0x40
	var pk pkt
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts := int64(i) * 1000
		pk = pkt{}
		if !parse(syn, &pk) {
			b.Fatal("parse syn")
		}
		pk.ts = ts
		tr.handle(&pk)
		pk = pkt{}
		if !parse(synack, &pk) {
			b.Fatal("parse synack")
		}
		pk.ts, pk.toVM = ts+250_000, true
		tr.handle(&pk)
	}
	b.StopTimer()
	if tr.pending() != 0 {
		b.Fatalf("pending %d: SYN-ACK did not match", tr.pending())
	}
}

// BenchmarkFilterAttach is the cost of one re-attachment of a tap's
// dynamic filter with all probe.ack_slots (16) in use (the worst case;
// BenchmarkFilterAttach1: one slot) (SO_ATTACH_FILTER
// on a UDP socket: the kernel checks and compiles the program the same
// way for any socket family).
func BenchmarkFilterAttach(b *testing.B) {
	static, err := Filter()
	if err != nil {
		b.Fatal(err)
	}
	af, err := newAckFilter(static, DefaultConfig().AckSlots)
	if err != nil {
		b.Fatal(err)
	}
	for i := range DefaultConfig().AckSlots {
		af.add(tkey{a: cli, b: srv, ap: uint16(1000 + i), bp: 80})
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	b.ReportAllocs()
	b.ResetTimer()
	if testing.Verbose() && b.N > 1000 {
		t0 := time.Now()
		for i := 0; i < 1000; i++ {
			_ = attachFilter(fd, static)
		}
		b.Logf("static filter (%d insns): %v per attach; dynamic %d insns", len(static), time.Since(t0)/1000, len(af.prog))
	}
	for i := 0; i < b.N; i++ {
		af.remove(tkey{a: cli, b: srv, ap: uint16(1000 + i%16), bp: 80}) // a changed slot
		af.add(tkey{a: cli, b: srv, ap: uint16(1000 + i%16), bp: 80})
		if err := attachFilter(fd, af.current()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFilterAttach1(b *testing.B) {
	static, _ := Filter()
	af, _ := newAckFilter(static, 16)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		k := tkey{a: cli, b: srv, ap: uint16(1000 + i), bp: 80}
		af.add(k)
		if err := attachFilter(fd, af.current()); err != nil {
			b.Fatal(err)
		}
		af.remove(k)
	}
}
