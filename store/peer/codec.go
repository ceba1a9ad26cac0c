package peer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// The /peer/v1/windows body: a compact binary form of []*aggregate.Window
// (gob took ~11 µs and 339 bytes per pair). Strings (VM names, hosts,
// tenants, addresses) go through a table: a string's first use is written
// out, later uses are its index. Of the statistics' 19 float fields only
// the non-zero ones are written, after a bit mask.
//
//	magic "VMFW1\n", uvarint windows
//	window: varint start ns, varint end ns, uvarint pairs, pairs
//	pair:   key, 2 × endpoint (7 strings), stats
//
//	stats:  float mask + the non-zero floats, counters, top ports,
//	        addresses, then uvarint n + n bytes of the probe's latency
//	        (store.AppendLatency; n = 0 without)
//
// Window.DstPorts (the alert engine's input, keyed by the collector's own
// VM ids) is not carried: alerts run on the collectors. Window.Ports (the
// VMs' port counters) is not carried either: a query node shows them from
// InfluxDB (vm_port) only, i.e. after the collectors' write lag.
const magic = "VMFW2\n"

// maxPairs bounds one decoded window (memory of a hostile or corrupt body).
const maxPairs = 50_000_000

func statFloats(s *aggregate.Stats) [21]*float64 {
	return [21]*float64{&s.Bytes, &s.Packets, &s.BytesVar, &s.PacketsVar,
		&s.TCPPackets, &s.UDPPackets, &s.ICMPPackets, &s.OtherPackets,
		&s.TCPBytes, &s.UDPBytes, &s.ICMPBytes, &s.OtherBytes,
		&s.SYN, &s.SYNACK, &s.RST, &s.FIN, &s.ICMPErrors, &s.DroppedPackets, &s.DroppedBytes,
		&s.SYNACKIn, &s.RSTIn}
}

func endpointStrings(e *aggregate.Endpoint) [7]*string {
	return [7]*string{&e.VM, &e.UUID, &e.Host, &e.Tenant, &e.TenantName, &e.IP, &e.MAC}
}

type encoder struct {
	b    []byte
	strs map[string]uint64
}

func (e *encoder) uv(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) sv(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) f(v float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }

func (e *encoder) str(s string) {
	if i, ok := e.strs[s]; ok {
		e.uv(i + 1)
		return
	}
	e.strs[s] = uint64(len(e.strs))
	e.uv(0)
	e.uv(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) addr(a netip.Addr) {
	switch {
	case !a.IsValid():
		e.b = append(e.b, 0)
	case a.Is4():
		b := a.As4()
		e.b = append(append(e.b, 4), b[:]...)
	default:
		b := a.As16()
		e.b = append(append(e.b, 16), b[:]...)
	}
}

func (e *encoder) pair(p *aggregate.Pair) {
	e.b = append(e.b, byte(p.Key.Source))
	for _, k := range [2]*aggregate.EndpointKey{&p.Key.Src, &p.Key.Dst} {
		e.uv(uint64(k.VM))
		e.addr(k.IP)
	}
	for _, ep := range [2]*aggregate.Endpoint{&p.Src, &p.Dst} {
		for _, s := range endpointStrings(ep) {
			e.str(*s)
		}
	}
	st := &p.Stats
	fs := statFloats(st)
	var mask uint32
	for i, f := range fs {
		if *f != 0 {
			mask |= 1 << i
		}
	}
	e.uv(uint64(mask))
	for _, f := range fs {
		if *f != 0 {
			e.f(*f)
		}
	}
	e.uv(st.Samples)
	e.uv(st.Flows)
	e.uv(st.SampledBytes)
	e.uv(st.SampledPackets)
	n := 0
	for n < len(st.TopPorts) && st.TopPorts[n] != (aggregate.PortCount{}) {
		n++
	}
	e.uv(uint64(n))
	for _, pc := range st.TopPorts[:n] {
		e.b = append(e.b, pc.Proto)
		e.uv(uint64(pc.Port))
		e.f(pc.Bytes)
	}
	e.addr(st.SrcIP)
	e.addr(st.DstIP)
	e.b = append(e.b, st.SrcMAC[:]...)
	e.b = append(e.b, st.DstMAC[:]...)
	e.uv(uint64(st.VNI))
	e.sv(st.First)
	e.sv(st.Last)
	if st.Lat == nil {
		e.uv(0)
	} else {
		lat := store.AppendLatency(nil, st.Lat)
		e.uv(uint64(len(lat)))
		e.b = append(e.b, lat...)
	}
}

// EncodeWindows writes ws as WindowsPath answers them.
func EncodeWindows(w io.Writer, ws []*aggregate.Window) error {
	e := &encoder{b: make([]byte, 0, 64<<10), strs: map[string]uint64{}}
	e.b = append(e.b, magic...)
	e.uv(uint64(len(ws)))
	for _, win := range ws {
		e.sv(win.Start.UnixNano())
		e.sv(win.End.UnixNano())
		e.uv(uint64(len(win.Pairs)))
		for i := range win.Pairs {
			e.pair(&win.Pairs[i])
			if len(e.b) >= 1<<20 {
				if _, err := w.Write(e.b); err != nil {
					return err
				}
				e.b = e.b[:0]
			}
		}
	}
	_, err := w.Write(e.b)
	return err
}

var errCorrupt = errors.New("corrupt windows body")

type decoderState struct {
	r    *bufio.Reader
	strs []string
	err  error
}

func (d *decoderState) fail(err error) {
	if d.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
	}
}

func (d *decoderState) uv() uint64 {
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.fail(err)
	}
	return v
}

func (d *decoderState) sv() int64 {
	v, err := binary.ReadVarint(d.r)
	if err != nil {
		d.fail(err)
	}
	return v
}

func (d *decoderState) full(b []byte) {
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.fail(err)
	}
}

func (d *decoderState) byte1() byte {
	c, err := d.r.ReadByte()
	if err != nil {
		d.fail(err)
	}
	return c
}

func (d *decoderState) f() float64 {
	var b [8]byte
	d.full(b[:])
	return math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
}

func (d *decoderState) str() string {
	i := d.uv()
	if d.err != nil {
		return ""
	}
	if i > 0 {
		if i > uint64(len(d.strs)) {
			d.fail(fmt.Errorf("%w: string %d of %d", errCorrupt, i, len(d.strs)))
			return ""
		}
		return d.strs[i-1]
	}
	n := d.uv()
	if n > 1<<16 {
		d.fail(fmt.Errorf("%w: string of %d bytes", errCorrupt, n))
		return ""
	}
	b := make([]byte, n)
	d.full(b)
	s := string(b)
	d.strs = append(d.strs, s)
	return s
}

func (d *decoderState) addr() netip.Addr {
	switch d.byte1() {
	case 0:
		return netip.Addr{}
	case 4:
		var b [4]byte
		d.full(b[:])
		return netip.AddrFrom4(b)
	case 16:
		var b [16]byte
		d.full(b[:])
		return netip.AddrFrom16(b)
	}
	d.fail(fmt.Errorf("%w: address length", errCorrupt))
	return netip.Addr{}
}

func (d *decoderState) pair(p *aggregate.Pair) {
	p.Key.Source = decoder.Source(d.byte1())
	for _, k := range [2]*aggregate.EndpointKey{&p.Key.Src, &p.Key.Dst} {
		v := d.uv()
		if v > math.MaxUint32 {
			d.fail(fmt.Errorf("%w: VM id", errCorrupt))
		}
		k.VM = enrich.VMID(v)
		k.IP = d.addr()
	}
	for _, ep := range [2]*aggregate.Endpoint{&p.Src, &p.Dst} {
		for _, s := range endpointStrings(ep) {
			*s = d.str()
		}
	}
	st := &p.Stats
	mask := d.uv()
	for i, f := range statFloats(st) {
		if mask&(1<<i) != 0 {
			*f = d.f()
		}
	}
	st.Samples = d.uv()
	st.Flows = d.uv()
	st.SampledBytes = d.uv()
	st.SampledPackets = d.uv()
	n := d.uv()
	if n > uint64(len(st.TopPorts)) {
		d.fail(fmt.Errorf("%w: %d top ports", errCorrupt, n))
		return
	}
	for i := range st.TopPorts[:n] {
		pc := &st.TopPorts[i]
		pc.Proto = d.byte1()
		pc.Port = uint16(d.uv())
		pc.Bytes = d.f()
	}
	st.SrcIP = d.addr()
	st.DstIP = d.addr()
	d.full(st.SrcMAC[:])
	d.full(st.DstMAC[:])
	st.VNI = uint32(d.uv())
	st.First = d.sv()
	st.Last = d.sv()
	if n := d.uv(); n > 0 {
		if n > maxLatencyBytes {
			d.fail(fmt.Errorf("%w: latency of %d bytes", errCorrupt, n))
			return
		}
		b := make([]byte, n)
		d.full(b)
		if st.Lat = store.DecodeLatency(b); st.Lat == nil && d.err == nil {
			d.fail(fmt.Errorf("%w: bad latency", errCorrupt))
		}
	}
}

// maxLatencyBytes bounds one pair's encoded latency (four histograms of at
// most a few hundred buckets each).
const maxLatencyBytes = 64 << 10

// DecodeWindows reads what EncodeWindows wrote.
func DecodeWindows(r io.Reader) ([]*aggregate.Window, error) {
	d := &decoderState{r: bufio.NewReaderSize(r, 64<<10)}
	var m [len(magic)]byte
	d.full(m[:])
	if d.err != nil || string(m[:]) != magic {
		return nil, fmt.Errorf("%w: not a vmflow windows body", errCorrupt)
	}
	nw := d.uv()
	if nw > 100_000 {
		return nil, fmt.Errorf("%w: %d windows", errCorrupt, nw)
	}
	var out []*aggregate.Window
	for i := uint64(0); i < nw && d.err == nil; i++ {
		w := &aggregate.Window{Start: time.Unix(0, d.sv()).UTC(), End: time.Unix(0, d.sv()).UTC()}
		np := d.uv()
		if np > maxPairs {
			return nil, fmt.Errorf("%w: %d pairs", errCorrupt, np)
		}
		for j := uint64(0); j < np && d.err == nil; j++ {
			w.Pairs = append(w.Pairs, aggregate.Pair{})
			d.pair(&w.Pairs[len(w.Pairs)-1])
		}
		out = append(out, w)
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode windows: %w", d.err)
	}
	return out, nil
}
