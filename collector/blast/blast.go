// Package blast replays captured export datagrams (sFlow, IPFIX, NetFlow)
// to a UDP target at a given rate or as fast as possible, with sendmmsg. It
// rewrites sFlow sequence numbers and uptime, or IPFIX sequence numbers and
// export times (sending the template messages first), so the receiver sees
// one gap-free stream per sending socket. It backs cmd/vmflow-blast and the
// end-to-end benchmarks.
package blast

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// SFlowHeader is the fixed header of an sFlow v5 datagram.
type SFlowHeader struct {
	Agent    netip.Addr
	SubAgent uint32
	Sequence uint32
	Uptime   uint32 // ms
	Samples  uint32
	// Byte offsets of the sub-agent ID and sequence number; the uptime
	// follows the sequence number and the sample count the uptime.
	SubAgentOffset int
	SeqOffset      int
}

// ParseSFlowHeader reads the sFlow v5 header: version 5, agent address type
// (1 IPv4, 2 IPv6), agent address, sub-agent, sequence, uptime, samples.
func ParseSFlowHeader(b []byte) (SFlowHeader, bool) {
	var h SFlowHeader
	if len(b) < 8 || binary.BigEndian.Uint32(b) != 5 {
		return h, false
	}
	var alen int
	switch binary.BigEndian.Uint32(b[4:]) {
	case 1:
		alen = 4
	case 2:
		alen = 16
	default:
		return h, false
	}
	off := 8 + alen
	if len(b) < off+16 {
		return h, false
	}
	if alen == 4 {
		h.Agent = netip.AddrFrom4([4]byte(b[8:12]))
	} else {
		h.Agent = netip.AddrFrom16([16]byte(b[8:24]))
	}
	h.SubAgentOffset = off
	h.SeqOffset = off + 4
	h.SubAgent = binary.BigEndian.Uint32(b[off:])
	h.Sequence = binary.BigEndian.Uint32(b[off+4:])
	h.Uptime = binary.BigEndian.Uint32(b[off+8:])
	h.Samples = binary.BigEndian.Uint32(b[off+12:])
	return h, true
}

// LoadPcap returns the UDP payloads of a pcap or pcapng file whose
// destination port is dstPort (any port when 0), in capture order.
func LoadPcap(path string, dstPort uint16) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load pcap: %w", err)
	}
	type packetReader interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var pr packetReader
	var lt layers.LinkType
	if len(raw) >= 4 && binary.LittleEndian.Uint32(raw) == 0x0A0D0D0A {
		r, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("load pcap %s: %w", path, err)
		}
		pr, lt = r, r.LinkType()
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("load pcap %s: %w", path, err)
		}
		pr, lt = r, r.LinkType()
	}
	var out [][]byte
	for {
		data, _, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("load pcap %s: %w", path, err)
		}
		pkt := gopacket.NewPacket(data, lt, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || (dstPort != 0 && uint16(udp.DstPort) != dstPort) {
			continue
		}
		// Only the outer UDP layer: the sampled headers inside are not
		// decoded because gopacket stops at the UDP payload.
		out = append(out, append([]byte(nil), udp.Payload...))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load pcap %s: no UDP datagrams to port %d", path, dstPort)
	}
	return out, nil
}

// LoadDir returns the contents of every regular file in dir (one datagram
// per file), sorted by name.
func LoadDir(dir string) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load dir: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var out [][]byte
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load dir: %w", err)
		}
		if len(b) == 0 || len(b) > 65507 {
			continue
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load dir %s: no datagram files", dir)
	}
	return out, nil
}

// Config says where and how fast to send.
type Config struct {
	Target  string // host:port
	Sockets int    // sending sockets (source ports), each on its own goroutine; default 1
	Batch   int    // datagrams per sendmmsg; default 64
	// Rate is datagrams per second over all sockets; 0 sends as fast as
	// possible.
	Rate float64
	// SampleRate paces by sFlow samples (with RewriteIPFIX: IPFIX flow
	// records) per second instead (overrides Rate).
	SampleRate float64
	// Duration and Count bound the run (whichever comes first); with
	// neither, every payload is sent once.
	Duration time.Duration
	Count    uint64
	// RewriteSFlow rewrites each sFlow datagram's sequence number (one
	// counter per agent/sub-agent, from 1) and uptime (ms since the start)
	// and, with several sockets, adds socket<<16 to the sub-agent so each
	// socket is its own gap-free stream.
	RewriteSFlow bool
	// GSO sends datagrams of equal size in one buffer that the kernel
	// splits (UDP_SEGMENT): the receiver still sees separate datagrams,
	// the sender spends far less CPU per datagram. Payloads are grouped by
	// size, so the send order differs from the capture (sequence numbers
	// are rewritten in send order).
	GSO bool
	// RewriteIPFIX replays IPFIX messages as one exporter per socket: the
	// messages that carry templates or options data go first, once, and
	// the others loop; each message's sequence number is rewritten (one
	// counter per socket and observation domain, from 0, advanced by the
	// message's data records) and its export time set to the send time.
	// Every payload must be IPFIX.
	RewriteIPFIX bool
	// Sources are local addresses to send from, socket i from
	// Sources[i % len(Sources)] (e.g. 127.0.0.1 ... 127.0.0.4: four
	// exporters, since a collector tells exporters apart by address).
	// Empty: the kernel picks.
	Sources []string
}

// Result is what was sent.
type Result struct {
	Datagrams       uint64  `json:"datagrams"`
	Samples         uint64  `json:"samples"` // sFlow samples (RewriteIPFIX: IPFIX flow records) in the datagrams sent
	Bytes           uint64  `json:"bytes"`
	Errors          uint64  `json:"errors"` // datagrams the kernel refused
	Seconds         float64 `json:"seconds"`
	DatagramsPerSec float64 `json:"datagrams_per_s"`
	SamplesPerSec   float64 `json:"samples_per_s"`
}

// AvgSamples returns the mean sFlow sample count per payload (0 when none
// is sFlow).
func AvgSamples(payloads [][]byte) float64 {
	var n, s float64
	for _, p := range payloads {
		if h, ok := ParseSFlowHeader(p); ok {
			s += float64(h.Samples)
		}
		n++
	}
	if n == 0 {
		return 0
	}
	return s / n
}

// Run sends payloads to cfg.Target in a loop until Count, Duration or ctx.
func Run(ctx context.Context, cfg Config, payloads [][]byte) (Result, error) {
	if len(payloads) == 0 {
		return Result{}, errors.New("blast: no payloads")
	}
	if cfg.Sockets < 1 {
		cfg.Sockets = 1
	}
	if cfg.Batch < 1 {
		cfg.Batch = 64
	}
	if cfg.Count == 0 && cfg.Duration == 0 {
		cfg.Count = uint64(len(payloads))
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Target)
	if err != nil {
		return Result{}, fmt.Errorf("blast: target: %w", err)
	}
	var ipfix []IPFIXMessage
	if cfg.RewriteIPFIX {
		var ok bool
		if ipfix, ok = AnalyzeIPFIX(payloads); !ok {
			return Result{}, errors.New("blast: RewriteIPFIX: a payload is not a well-formed IPFIX message")
		}
		loop := 0
		for _, m := range ipfix {
			if !m.Setup {
				loop++
			}
		}
		if loop == 0 {
			return Result{}, errors.New("blast: RewriteIPFIX: every message holds templates or options, none flow data")
		}
	}
	senders := make([]*sender, cfg.Sockets)
	for i := range senders {
		var laddr *net.UDPAddr
		if len(cfg.Sources) > 0 {
			a, err := netip.ParseAddr(cfg.Sources[i%len(cfg.Sources)])
			if err != nil {
				return Result{}, fmt.Errorf("blast: source: %w", err)
			}
			laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
		}
		conn, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			for _, s := range senders[:i] {
				s.conn.Close()
			}
			return Result{}, fmt.Errorf("blast: %w", err)
		}
		_ = conn.SetWriteBuffer(4 << 20)
		s := newSender(i, conn, cfg, payloads, ipfix, raddr.IP.To4() == nil)
		if cfg.Count > 0 {
			s.limited = true
			s.count = cfg.Count / uint64(cfg.Sockets)
			if uint64(i) < cfg.Count%uint64(cfg.Sockets) {
				s.count++
			}
		}
		if cfg.Rate > 0 {
			s.rate = cfg.Rate / float64(cfg.Sockets)
		}
		if cfg.SampleRate > 0 {
			s.rate = cfg.SampleRate / float64(cfg.Sockets)
			s.bySamples = true
		}
		senders[i] = s
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.conn.Close()
			s.run(ctx, start)
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	var r Result
	for _, s := range senders {
		r.Datagrams += s.sent
		r.Samples += s.samples
		r.Bytes += s.bytes
		r.Errors += s.errors
	}
	r.Seconds = el
	if el > 0 {
		r.DatagramsPerSec = float64(r.Datagrams) / el
		r.SamplesPerSec = float64(r.Samples) / el
	}
	return r, nil
}

// unit is one send: a datagram, or with GSO several datagrams of one size
// in one buffer that the kernel splits (UDP_SEGMENT).
type unit struct {
	buf     []byte
	segSize int // 0: a single datagram
	segs    []seg
	oob     []byte
}

type seg struct {
	off     int
	seqOff  int // 0: not sFlow
	samples uint64
	stream  int
	// IPFIX (RewriteIPFIX): what the message adds to its stream's
	// sequence; seqOff is then the IPFIX sequence offset
	ipfix   bool
	records uint32
}

type sender struct {
	conn  *net.UDPConn
	write func([]ipv4.Message) (int, error)
	units []unit
	// loop is the first unit sent again after the last one: the units
	// before it (IPFIX templates) go once
	loop    int
	seqs    []uint32
	msgs    []ipv4.Message
	rewrite bool
	limited bool // stop after count

	count, sent, samples, bytes, errors uint64
	rate                                float64
	bySamples                           bool // rate counts samples, not datagrams
}

// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS on older kernels.
const maxGSOSegments = 64

func newSender(idx int, conn *net.UDPConn, cfg Config, payloads [][]byte, ipfix []IPFIXMessage, v6 bool) *sender {
	s := &sender{conn: conn, rewrite: cfg.RewriteSFlow || ipfix != nil}
	msgIndex := make(map[*byte]int, len(payloads)) // IPFIX: payload -> ipfix[i]
	if ipfix != nil {
		for i, p := range payloads {
			msgIndex[&p[0]] = i
		}
	}
	if v6 {
		pc := ipv6.NewPacketConn(conn)
		s.write = func(ms []ipv4.Message) (int, error) { return pc.WriteBatch(ms, 0) }
	} else {
		pc := ipv4.NewPacketConn(conn)
		s.write = func(ms []ipv4.Message) (int, error) { return pc.WriteBatch(ms, 0) }
	}
	type streamKey struct {
		agent netip.Addr
		sub   uint32
	}
	streams := map[streamKey]int{}
	prep := func(p []byte) ([]byte, seg) {
		b := append([]byte(nil), p...)
		h, ok := ParseSFlowHeader(b)
		if !ok {
			return b, seg{stream: -1}
		}
		if cfg.RewriteSFlow && cfg.Sockets > 1 {
			h.SubAgent += uint32(idx) << 16
			binary.BigEndian.PutUint32(b[h.SubAgentOffset:], h.SubAgent)
		}
		k := streamKey{h.Agent, h.SubAgent}
		st, seen := streams[k]
		if !seen {
			st = len(s.seqs)
			streams[k] = st
			s.seqs = append(s.seqs, 0)
		}
		return b, seg{seqOff: h.SeqOffset, samples: uint64(h.Samples), stream: st}
	}
	if ipfix != nil {
		// one stream per observation domain; each message's data records
		// advance it
		domains := map[uint32]int{}
		prep = func(p []byte) ([]byte, seg) {
			b := append([]byte(nil), p...)
			h, _ := ParseIPFIXHeader(b)
			m := ipfix[msgIndex[&p[0]]]
			st, seen := domains[h.Domain]
			if !seen {
				st = len(s.seqs)
				domains[h.Domain] = st
				s.seqs = append(s.seqs, 0)
			}
			sg := seg{seqOff: ipfixSeqOffset, stream: st, ipfix: true, records: uint32(m.Records)}
			if !m.Setup {
				sg.samples = uint64(m.FlowRecords)
			}
			return b, sg
		}
		var loop [][]byte
		for i, p := range payloads {
			if !ipfix[i].Setup {
				loop = append(loop, p)
				continue
			}
			b, sg := prep(p)
			s.units = append(s.units, unit{buf: b, segs: []seg{sg}})
		}
		s.loop = len(s.units)
		payloads = loop
	}
	if !cfg.GSO {
		for _, p := range payloads {
			b, sg := prep(p)
			s.units = append(s.units, unit{buf: b, segs: []seg{sg}})
		}
	} else {
		// Group the payloads by size; each group becomes buffers of up to
		// maxGSOSegments datagrams (and at most 64 KiB).
		bySize := map[int][][]byte{}
		var sizes []int
		for _, p := range payloads {
			if _, ok := bySize[len(p)]; !ok {
				sizes = append(sizes, len(p))
			}
			bySize[len(p)] = append(bySize[len(p)], p)
		}
		sort.Ints(sizes)
		for _, size := range sizes {
			group := bySize[size]
			per := max(1, min(maxGSOSegments, 65000/size))
			for len(group) > 0 {
				n := min(per, len(group))
				u := unit{}
				for _, p := range group[:n] {
					b, sg := prep(p)
					sg.off = len(u.buf)
					u.buf = append(u.buf, b...)
					u.segs = append(u.segs, sg)
				}
				if n > 1 {
					u.segSize = size
					u.oob = udpSegmentCmsg(size)
				}
				s.units = append(s.units, u)
				group = group[n:]
			}
		}
	}
	s.msgs = make([]ipv4.Message, min(cfg.Batch, len(s.units)))
	for i := range s.msgs {
		s.msgs[i].Buffers = make([][]byte, 1)
	}
	return s
}

// udpSegmentCmsg is a control message setting UDP_SEGMENT (GSO size).
func udpSegmentCmsg(size int) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return b
}

func (s *sender) run(ctx context.Context, start time.Time) {
	idx := 0
	done := ctx.Done()
	type pending struct{ segs, samples, bytes uint64 }
	pend := make([]pending, len(s.msgs))
	for {
		select {
		case <-done:
			return
		default:
		}
		left := uint64(1 << 62)
		if s.limited {
			if s.sent+s.errors >= s.count {
				return
			}
			left = s.count - s.sent - s.errors
		}
		if s.rate > 0 {
			progress := float64(s.sent + s.errors)
			perDgram := 1.0
			if s.bySamples {
				progress = float64(s.samples)
				perDgram = max(1, float64(s.samples)/float64(max(s.sent, 1)))
			}
			due := start.Add(time.Duration(progress / s.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(min(d, 50*time.Millisecond))
				continue
			}
			// at most 0.5 ms worth per call keeps the pace smooth
			left = min(left, max(1, uint64(s.rate/perDgram/2000)))
		}
		uptime := uint32(1000 + time.Since(start).Milliseconds())
		exportTime := uint32(time.Now().Unix())
		k := 0
		for k < len(s.msgs) && left > 0 {
			u := &s.units[idx]
			n := min(uint64(len(u.segs)), left)
			left -= n
			var p pending
			for j := range int(n) {
				sg := &u.segs[j]
				if sg.ipfix {
					b := u.buf[sg.off:]
					binary.BigEndian.PutUint32(b[sg.seqOff:], s.seqs[sg.stream])
					binary.BigEndian.PutUint32(b[ipfixExportTimeOffset:], exportTime)
					s.seqs[sg.stream] += sg.records
					p.samples += sg.samples
				} else if sg.seqOff > 0 {
					if s.rewrite {
						s.seqs[sg.stream]++
						b := u.buf[sg.off:]
						binary.BigEndian.PutUint32(b[sg.seqOff:], s.seqs[sg.stream])
						binary.BigEndian.PutUint32(b[sg.seqOff+4:], uptime)
					}
					p.samples += sg.samples
				}
			}
			p.segs = n
			end := len(u.buf)
			if int(n) < len(u.segs) {
				end = u.segs[n].off
			}
			p.bytes = uint64(end)
			s.msgs[k].Buffers[0] = u.buf[:end]
			s.msgs[k].OOB = nil
			if u.segSize > 0 && n > 1 {
				s.msgs[k].OOB = u.oob
			}
			pend[k] = p
			k++
			idx++
			if idx == len(s.units) {
				idx = s.loop
			}
		}
		off := 0
		for off < k {
			n, err := s.write(s.msgs[off:k])
			n = max(n, 0)
			for _, p := range pend[off : off+n] {
				s.sent += p.segs
				s.samples += p.samples
				s.bytes += p.bytes
			}
			off += n
			if err != nil && off < k {
				// the first unsent message was refused (e.g. ICMP port
				// unreachable from an earlier datagram); skip it
				s.errors += pend[off].segs
				off++
			}
		}
	}
}
