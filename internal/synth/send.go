package synth

import (
	"context"
	"fmt"
	"net"
	"time"

	"golang.org/x/net/ipv4"
)

// UDPSink sends datagrams over one unconnected UDP socket with sendmmsg,
// each from its hypervisor's own address (IP_PKTINFO source per message):
// the IPFIX exporter identity is the source address, and every 127.x
// address is local on Linux loopback.
type UDPSink struct {
	conn   *net.UDPConn
	pc     *ipv4.PacketConn
	dst    [2]*net.UDPAddr
	oob    [][]byte // per host: IP_PKTINFO with the host's source address
	bufs   [][]byte
	msgs   []ipv4.Message
	n      int
	Sent   uint64 // datagrams the kernel took
	Errors uint64 // datagrams refused
	err    error  // last send error
}

// NewUDPSink opens the socket for cloud c: sFlow to sflow and IPFIX to
// ipfix (either may be "").
func NewUDPSink(c *Cloud, sflow, ipfix string, batch, maxDatagram int) (*UDPSink, error) {
	s := &UDPSink{}
	for i, t := range []string{sflow, ipfix} {
		if t == "" {
			continue
		}
		a, err := net.ResolveUDPAddr("udp4", t)
		if err != nil {
			return nil, fmt.Errorf("synth: target %q: %w", t, err)
		}
		s.dst[i] = a
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, fmt.Errorf("synth: socket: %w", err)
	}
	_ = conn.SetWriteBuffer(8 << 20)
	s.conn = conn
	s.pc = ipv4.NewPacketConn(conn)
	for _, h := range c.Hosts {
		a := h.Addr.As4()
		cm := ipv4.ControlMessage{Src: net.IP(a[:])}
		s.oob = append(s.oob, cm.Marshal())
	}
	s.bufs = make([][]byte, batch)
	s.msgs = make([]ipv4.Message, batch)
	for i := range s.bufs {
		s.bufs[i] = make([]byte, maxDatagram)
		s.msgs[i].Buffers = make([][]byte, 1)
	}
	return s, nil
}

// Send queues a copy of b from host (sent when the batch is full or on Flush).
func (s *UDPSink) Send(p Proto, host int, b []byte) {
	if s.dst[p] == nil {
		return
	}
	n := copy(s.bufs[s.n], b)
	m := &s.msgs[s.n]
	m.Buffers[0] = s.bufs[s.n][:n]
	m.OOB = s.oob[host]
	m.Addr = s.dst[p]
	s.n++
	if s.n == len(s.msgs) {
		s.Flush()
	}
}

// Flush sends what is queued.
func (s *UDPSink) Flush() {
	off := 0
	for off < s.n {
		k, err := s.pc.WriteBatch(s.msgs[off:s.n], 0)
		if k > 0 {
			off += k
			s.Sent += uint64(k)
		}
		if err != nil {
			s.err = err
			s.Errors++
			off++ // skip the message the kernel refused
		} else if k <= 0 {
			break
		}
	}
	s.n = 0
}

// Err returns the last send error (nil if none).
func (s *UDPSink) Err() error { return s.err }

// Close closes the socket.
func (s *UDPSink) Close() error { return s.conn.Close() }

// Run advances g in real time until ctx is done (or duration passes, when
// > 0), then exports what is open. Tick is the pacing step (default 2 ms).
func Run(ctx context.Context, g *Generator, duration, tick time.Duration) error {
	if tick <= 0 {
		tick = 2 * time.Millisecond
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			g.Finish(time.Now())
			return nil
		case now := <-t.C:
			g.Advance(now)
		}
	}
}
