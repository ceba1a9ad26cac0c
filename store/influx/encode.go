package influx

import (
	"bytes"
	"hash/maphash"
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/collector"
)

// Measurement names and reserved tag values (see the README, "InfluxDB schema").
const (
	MeasurementPair     = "vm_pair"
	MeasurementVM       = "vm"
	MeasurementExporter = "exporter"
	MeasurementSelf     = "vmflow"
	// MeasurementInfo holds what a lean vm_pair point leaves out: a VM's
	// UUID, MAC and last-seen address, written when they change and every
	// influx.info_interval while the VM talks.
	MeasurementInfo = "vm_info"

	// ExternalVM is the src_vm/dst_vm tag value of an endpoint that is no
	// known VM. Its IP address is kept in the src_ip/dst_ip field; all
	// external endpoints of one VM, direction and source in one window
	// share one point (their counters summed).
	ExternalVM = "(external)"

	// NoValue is the host/tenant tag value of an endpoint whose host or
	// tenant is unknown, and of external endpoints: every vm_pair and vm
	// point carries all its tags, so that Flux filters never meet a
	// missing (null) tag.
	NoValue = "-"
)

func orNone(s string) string {
	if s == "" {
		return NoValue
	}
	return s
}

// pairEntry is one point of vm_pair: one pair, or several pairs that map to
// the same series (external endpoints of one VM).
type pairEntry struct {
	keyOff, keyLen int32
	first          *aggregate.Pair
	n              int32
	sum            aggregate.Stats // valid when n > 1
	topBytes       float64         // bytes of the pair whose addresses are shown
	src, dst       aggregate.Endpoint
}

// vmEntry is one point of the vm measurement.
type vmEntry struct {
	keyOff, keyLen                         int32
	txBytes, txPackets, rxBytes, rxPackets float64
	txPairs, rxPairs                       int64
}

// encoder turns windows into line protocol. Steady state is allocation
// free: its maps and buffers are reused from window to window.
type encoder struct {
	seed  maphash.Seed
	keys  []byte
	pidx  map[uint64]int32
	pairs []pairEntry
	vidx  map[uint64]int32
	vms   []vmEntry
	ts    int64   // window end, unix ns
	ival  int64   // interval field: window length in whole seconds, rounded up
	secs  float64 // true window length in seconds (rates)

	instance  string // influx.instance: tag of every point (multi-collector)
	full      bool   // influx.pair_fields: full
	infoEvery int64
	info      map[uint64]infoState // per VM (host, tenant, name)
	infos     []*aggregate.Endpoint
	lastSweep int64
}

// infoState is what was last written to vm_info for one VM (16 bytes, plus
// the map's overhead: about 40 bytes per VM).
type infoState struct {
	sig uint64 // hash of UUID, MAC and address
	at  int64  // unix ns of that point
}

func newEncoder() *encoder { return newEncoderFor(false, 10*time.Minute) }

func newEncoderFor(full bool, infoEvery time.Duration) *encoder {
	return &encoder{
		seed:      maphash.MakeSeed(),
		pidx:      make(map[uint64]int32),
		vidx:      make(map[uint64]int32),
		full:      full,
		infoEvery: int64(infoEvery),
		info:      make(map[uint64]infoState),
	}
}

// noteInfo queues a vm_info point for VM endpoint ep when it is new, its
// addressing changed, or its last point is info_interval old.
func (e *encoder) noteInfo(ep *aggregate.Endpoint) {
	var h maphash.Hash
	h.SetSeed(e.seed)
	h.WriteString(ep.Host)
	h.WriteByte(0)
	h.WriteString(ep.Tenant)
	h.WriteByte(0)
	h.WriteString(ep.VM)
	k := h.Sum64()
	h.Reset()
	h.WriteString(ep.UUID)
	h.WriteByte(0)
	h.WriteString(ep.MAC)
	h.WriteByte(0)
	h.WriteString(ep.IP)
	sig := h.Sum64()
	st, ok := e.info[k]
	if ok && st.sig == sig && e.ts-st.at < e.infoEvery && e.ts >= st.at {
		return
	}
	e.info[k] = infoState{sig: sig, at: e.ts}
	e.infos = append(e.infos, ep)
}

// sweepInfo forgets VMs not written for 4 info intervals (bounded state
// under VM churn); at most once per info interval.
func (e *encoder) sweepInfo() {
	if e.ts-e.lastSweep < e.infoEvery {
		return
	}
	e.lastSweep = e.ts
	for k, st := range e.info {
		if e.ts-st.at > 4*e.infoEvery {
			delete(e.info, k)
		}
	}
}

// appendTag appends ",key=value" with line-protocol escaping; empty values
// are left out (InfluxDB has no empty tag values).
func appendTag(b []byte, key, val string) []byte {
	if val == "" {
		return b
	}
	b = append(b, ',')
	b = append(b, key...)
	b = append(b, '=')
	if !needsEscape(val) {
		return append(b, val...)
	}
	for i := 0; i < len(val); i++ {
		c := val[i]
		switch c {
		case ',', '=', ' ':
			b = append(b, '\\', c)
		case '\n', '\r', '\t':
			b = append(b, '\\', ' ')
		case '\\':
			if i == len(val)-1 { // a trailing backslash would escape the separator
				b = append(b, '_')
			} else {
				b = append(b, c)
			}
		default:
			b = append(b, c)
		}
	}
	return b
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', '=', ' ', '\n', '\r', '\t', '\\':
			return true
		}
	}
	return false
}

func vmTag(e aggregate.Endpoint) string {
	if e.VM == "" {
		return ExternalVM
	}
	return e.VM
}

// appendPairKey appends the tag part of a vm_pair series key (tags in key
// order, as InfluxDB sorts them).
func appendPairKey(b []byte, p *aggregate.Pair, instance string) []byte {
	src, dst := &p.Src, &p.Dst
	dh, dt, sh, stn := NoValue, NoValue, NoValue, NoValue
	if dst.VM != "" {
		dh, dt = orNone(dst.Host), orNone(dst.Tenant)
	}
	if src.VM != "" {
		sh, stn = orNone(src.Host), orNone(src.Tenant)
	}
	b = appendTag(b, "dst_host", dh)
	b = appendTag(b, "dst_tenant", dt)
	b = appendTag(b, "dst_vm", vmTag(*dst))
	b = appendTag(b, "instance", instance)
	b = appendTag(b, "source", p.Key.Source.String())
	b = appendTag(b, "src_host", sh)
	b = appendTag(b, "src_tenant", stn)
	b = appendTag(b, "src_vm", vmTag(*src))
	return b
}

func appendVMKey(b []byte, e *aggregate.Endpoint, source, instance string) []byte {
	b = appendTag(b, "host", orNone(e.Host))
	b = appendTag(b, "instance", instance)
	b = appendTag(b, "source", source)
	b = appendTag(b, "tenant", orNone(e.Tenant))
	b = appendTag(b, "vm", e.VM)
	return b
}

type fieldWriter struct {
	b     []byte
	first bool
}

func (f *fieldWriter) name(n string) {
	if f.first {
		f.b = append(f.b, ' ')
		f.first = false
	} else {
		f.b = append(f.b, ',')
	}
	f.b = append(f.b, n...)
	f.b = append(f.b, '=')
}

func (f *fieldWriter) float(n string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	f.name(n)
	f.b = appendFloat(f.b, v)
}

// nz writes a float field only when it is not zero (absent reads as 0).
func (f *fieldWriter) nz(n string, v float64) {
	if v != 0 {
		f.float(n, v)
	}
}

// appendFloat formats v exactly (shortest round-trip form); integral values,
// common for scaled counters, take a fast path. A float field's value may
// be written without a decimal point in line protocol.
func appendFloat(b []byte, v float64) []byte {
	if v == math.Trunc(v) && v > -1e15 && v < 1e15 {
		if v == 0 && math.Signbit(v) {
			v = 0
		}
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func (f *fieldWriter) int(n string, v int64) {
	f.name(n)
	f.b = strconv.AppendInt(f.b, v, 10)
	f.b = append(f.b, 'i')
}

func (f *fieldWriter) str(n, v string) {
	if v == "" {
		return
	}
	f.name(n)
	f.b = append(f.b, '"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' {
			f.b = append(f.b, '\\')
		}
		if c == '\n' {
			c = ' '
		}
		f.b = append(f.b, c)
	}
	f.b = append(f.b, '"')
}

func (f *fieldWriter) addr(n string, a netip.Addr) {
	if !a.IsValid() {
		return
	}
	f.name(n)
	f.b = append(f.b, '"')
	f.b = a.AppendTo(f.b)
	f.b = append(f.b, '"')
}

// z95 is the two-sided 95% normal quantile used for the CI fields.
const z95 = 1.959963984540054

func ci(v, variance float64) (lo, hi float64) {
	if variance <= 0 {
		return v, v
	}
	d := z95 * math.Sqrt(variance)
	lo = v - d
	if lo < 0 {
		lo = 0
	}
	return lo, v + d
}

func mergeStats(dst *aggregate.Stats, s *aggregate.Stats) {
	dst.Bytes += s.Bytes
	dst.Packets += s.Packets
	dst.BytesVar += s.BytesVar
	dst.PacketsVar += s.PacketsVar
	dst.Samples += s.Samples
	dst.Flows += s.Flows
	dst.TCPPackets += s.TCPPackets
	dst.UDPPackets += s.UDPPackets
	dst.ICMPPackets += s.ICMPPackets
	dst.OtherPackets += s.OtherPackets
	dst.TCPBytes += s.TCPBytes
	dst.UDPBytes += s.UDPBytes
	dst.ICMPBytes += s.ICMPBytes
	dst.OtherBytes += s.OtherBytes
	dst.SYN += s.SYN
	dst.SYNACK += s.SYNACK
	dst.RST += s.RST
	dst.FIN += s.FIN
	dst.SYNACKIn += s.SYNACKIn
	dst.RSTIn += s.RSTIn
	dst.ICMPErrors += s.ICMPErrors
	dst.DroppedPackets += s.DroppedPackets
	dst.DroppedBytes += s.DroppedBytes
	if s.First != 0 && (dst.First == 0 || s.First < dst.First) {
		dst.First = s.First
	}
	if s.Last > dst.Last {
		dst.Last = s.Last
	}
	mergeTopPorts(&dst.TopPorts, &s.TopPorts)
	dst.MergeLatency(s)
}

// mergeTopPorts adds b's ports into a, keeping the TopPortsN largest.
func mergeTopPorts(a, b *[aggregate.TopPortsN]aggregate.PortCount) {
	for _, pc := range b {
		if pc.Bytes <= 0 {
			continue
		}
		found := false
		for i := range a {
			if a[i].Bytes > 0 && a[i].Proto == pc.Proto && a[i].Port == pc.Port {
				a[i].Bytes += pc.Bytes
				found = true
				break
			}
		}
		if !found {
			// replace the smallest entry if pc is larger
			mi := 0
			for i := range a {
				if a[i].Bytes < a[mi].Bytes {
					mi = i
				}
			}
			if pc.Bytes > a[mi].Bytes {
				a[mi] = pc
			}
		}
	}
	// keep sorted by bytes, largest first (insertion sort, N=8)
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].Bytes > a[j-1].Bytes; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// lookup finds or adds key in idx (collisions of the 64-bit hash with a
// different key are resolved by probing).
func (e *encoder) lookup(idx map[uint64]int32, key []byte, keyAt func(int32) []byte) (int32, bool) {
	h := maphash.Bytes(e.seed, key)
	for {
		i, ok := idx[h]
		if !ok {
			return -1, false
		}
		if bytes.Equal(keyAt(i), key) {
			return i, true
		}
		h++
	}
}

func (e *encoder) insert(idx map[uint64]int32, key []byte, i int32) {
	h := maphash.Bytes(e.seed, key)
	for {
		if _, ok := idx[h]; !ok {
			idx[h] = i
			return
		}
		h++
	}
}

// prepare computes the points of window w: one per vm_pair series and one
// per VM and source. Pairs that fall on the same series are summed.
func (e *encoder) prepare(w *aggregate.Window) {
	clear(e.pidx)
	clear(e.vidx)
	e.keys = e.keys[:0]
	e.pairs = e.pairs[:0]
	e.vms = e.vms[:0]
	e.infos = e.infos[:0]
	// A window is stamped with its end to the nanosecond. Windows closed
	// by the ticker end on a multiple of aggregate.window (a whole second),
	// so their stamps are the boundaries; a partial window (the one flushed
	// at stop, or the first after a start) ends elsewhere and gets a stamp
	// of its own, so it never overwrites the full window before it in the
	// same series (see the README, "Partial windows").
	e.ts = w.End.UnixNano()
	d := w.End.Sub(w.Start)
	e.secs, e.ival = 0, 0
	if d > 0 {
		e.secs = d.Seconds()
		e.ival = int64((d + time.Second - 1) / time.Second)
	}
	pairKey := func(i int32) []byte {
		p := &e.pairs[i]
		return e.keys[p.keyOff : p.keyOff+p.keyLen]
	}
	vmKey := func(i int32) []byte {
		v := &e.vms[i]
		return e.keys[v.keyOff : v.keyOff+v.keyLen]
	}
	for pi := range w.Pairs {
		p := &w.Pairs[pi]
		off := len(e.keys)
		e.keys = appendPairKey(e.keys, p, e.instance)
		key := e.keys[off:]
		if i, ok := e.lookup(e.pidx, key, pairKey); ok {
			e.keys = e.keys[:off]
			pe := &e.pairs[i]
			if pe.n == 1 {
				pe.sum = pe.first.Stats
			}
			pe.n++
			mergeStats(&pe.sum, &p.Stats)
			if p.Stats.Bytes > pe.topBytes {
				pe.topBytes = p.Stats.Bytes
				pe.src, pe.dst = p.Src, p.Dst
				pe.first = p // addresses of the largest contributor
			}
		} else {
			i := int32(len(e.pairs))
			e.pairs = append(e.pairs, pairEntry{keyOff: int32(off), keyLen: int32(len(key)), first: p, n: 1, topBytes: p.Stats.Bytes, src: p.Src, dst: p.Dst})
			e.insert(e.pidx, key, i)
		}
		// per-VM totals (the probe's pairs have no traffic: none)
		if isProbePair(p) {
			continue
		}
		src := p.Key.Source.String()
		for side := 0; side < 2; side++ {
			ep := &p.Src
			if side == 1 {
				ep = &p.Dst
			}
			if ep.VM == "" {
				continue
			}
			off := len(e.keys)
			e.keys = appendVMKey(e.keys, ep, src, e.instance)
			key := e.keys[off:]
			vi, ok := e.lookup(e.vidx, key, vmKey)
			if ok {
				e.keys = e.keys[:off]
			} else {
				vi = int32(len(e.vms))
				e.vms = append(e.vms, vmEntry{keyOff: int32(off), keyLen: int32(len(key))})
				e.insert(e.vidx, key, vi)
				if ep.UUID != "" || ep.MAC != "" || ep.IP != "" {
					e.noteInfo(ep)
				}
			}
			v := &e.vms[vi]
			if side == 0 {
				v.txBytes += p.Stats.Bytes
				v.txPackets += p.Stats.Packets
				v.txPairs++
			} else {
				v.rxBytes += p.Stats.Bytes
				v.rxPackets += p.Stats.Packets
				v.rxPairs++
			}
		}
	}
	e.sweepInfo()
}

func (e *encoder) appendTimestamp(b []byte) []byte {
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.ts, 10)
	return append(b, '\n')
}

// appendPair appends point i of the prepared window.
func (e *encoder) appendPair(b []byte, i int) []byte {
	pe := &e.pairs[i]
	st := &pe.first.Stats
	if pe.n > 1 {
		st = &pe.sum
	}
	b = append(b, MeasurementPair...)
	b = append(b, e.keys[pe.keyOff:pe.keyOff+pe.keyLen]...)
	f := fieldWriter{b: b, first: true}
	if isProbePair(pe.first) { // latency fields only (latency.go)
		return e.appendProbeFields(&f, st)
	}
	f.float("bytes", st.Bytes)
	f.float("packets", st.Packets)
	if e.full {
		f.float("bytes_var", st.BytesVar)
		f.float("packets_var", st.PacketsVar)
		lo, hi := ci(st.Bytes, st.BytesVar)
		f.float("bytes_ci_lo", lo)
		f.float("bytes_ci_hi", hi)
		lo, hi = ci(st.Packets, st.PacketsVar)
		f.float("packets_ci_lo", lo)
		f.float("packets_ci_hi", hi)
	} else { // 0 for IPFIX (every packet seen); the CI follows from the variance
		f.nz("bytes_var", st.BytesVar)
		f.nz("packets_var", st.PacketsVar)
	}
	if e.secs > 0 {
		f.float("bps", st.Bytes*8/e.secs)
		f.float("pps", st.Packets/e.secs)
	}
	f.int("samples", int64(st.Samples))
	f.int("flows", int64(st.Flows))
	f.int("interval", e.ival)
	f.nz("tcp_bytes", st.TCPBytes)
	f.nz("tcp_packets", st.TCPPackets)
	f.nz("udp_bytes", st.UDPBytes)
	f.nz("udp_packets", st.UDPPackets)
	f.nz("icmp_bytes", st.ICMPBytes)
	f.nz("icmp_packets", st.ICMPPackets)
	f.nz("other_bytes", st.OtherBytes)
	f.nz("other_packets", st.OtherPackets)
	f.nz("syn", st.SYN)
	f.nz("synack", st.SYNACK)
	f.nz("rst", st.RST)
	f.nz("fin", st.FIN)
	f.nz("synack_in", st.SYNACKIn) // the reverse pair's answers (aggregate/health.go)
	f.nz("rst_in", st.RSTIn)
	f.nz("icmp_errors", st.ICMPErrors)
	f.nz("dropped_packets", st.DroppedPackets)
	f.nz("dropped_bytes", st.DroppedBytes)
	if st.First != 0 {
		f.int("first", st.First)
	}
	if st.Last != 0 {
		f.int("last", st.Last)
	}
	if st.VNI != 0 {
		f.int("vni", int64(st.VNI))
	}
	if pe.n > 1 {
		f.int("merged", int64(pe.n))
	}
	// Addresses: of the pair itself, or of the largest contributor. Lean
	// points keep them only for an external endpoint (its address is its
	// identity); a VM's are in vm_info.
	addrs := &pe.first.Stats
	srcExt, dstExt := pe.src.VM == "", pe.dst.VM == ""
	if e.full || srcExt {
		f.addr("src_ip", addrs.SrcIP)
		if !addrs.SrcIP.IsValid() && pe.src.IP != "" {
			f.str("src_ip", pe.src.IP)
		}
	}
	if e.full || dstExt {
		f.addr("dst_ip", addrs.DstIP)
		if !addrs.DstIP.IsValid() && pe.dst.IP != "" {
			f.str("dst_ip", pe.dst.IP)
		}
	}
	if e.full {
		f.str("src_uuid", pe.src.UUID)
		f.str("dst_uuid", pe.dst.UUID)
		f.str("src_mac", pe.src.MAC)
		f.str("dst_mac", pe.dst.MAC)
	}
	if st.TopPorts[0].Bytes > 0 {
		f.name("top_ports")
		f.b = append(f.b, '"')
		for k, pc := range st.TopPorts {
			if pc.Bytes <= 0 {
				break
			}
			if k > 0 {
				f.b = append(f.b, ' ')
			}
			f.b = strconv.AppendUint(f.b, uint64(pc.Proto), 10)
			f.b = append(f.b, '/')
			f.b = strconv.AppendUint(f.b, uint64(pc.Port), 10)
			f.b = append(f.b, '=')
			f.b = appendFloat(f.b, pc.Bytes)
		}
		f.b = append(f.b, '"')
	}
	return e.appendTimestamp(f.b)
}

// appendInfo appends vm_info point i of the prepared window.
func (e *encoder) appendInfo(b []byte, i int) []byte {
	ep := e.infos[i]
	b = append(b, MeasurementInfo...)
	b = appendTag(b, "host", orNone(ep.Host))
	b = appendTag(b, "instance", e.instance)
	b = appendTag(b, "tenant", orNone(ep.Tenant))
	b = appendTag(b, "vm", ep.VM)
	f := fieldWriter{b: b, first: true}
	f.str("uuid", ep.UUID)
	f.str("mac", ep.MAC)
	f.str("ip", ep.IP)
	return e.appendTimestamp(f.b)
}

// appendVM appends per-VM point i of the prepared window.
func (e *encoder) appendVM(b []byte, i int) []byte {
	v := &e.vms[i]
	b = append(b, MeasurementVM...)
	b = append(b, e.keys[v.keyOff:v.keyOff+v.keyLen]...)
	f := fieldWriter{b: b, first: true}
	f.float("tx_bytes", v.txBytes)
	f.float("tx_packets", v.txPackets)
	f.float("rx_bytes", v.rxBytes)
	f.float("rx_packets", v.rxPackets)
	if e.secs > 0 {
		f.float("tx_bps", v.txBytes*8/e.secs)
		f.float("rx_bps", v.rxBytes*8/e.secs)
	}
	f.int("tx_pairs", v.txPairs)
	f.int("rx_pairs", v.rxPairs)
	f.int("interval", e.ival)
	return e.appendTimestamp(f.b)
}

// appendExporters appends one exporter point per row (cumulative counters),
// timestamped ts (second precision). Rows that map to the same series (same
// exporter IP, protocol, agent and domain: different UDP source ports) are
// summed.
func appendExporters(b []byte, ts time.Time, rows []collector.ExporterStatus, instance string) ([]byte, int) {
	type acc struct {
		key                                                string
		dg, samples, errs, lostDg, lostRec, reord, restart uint64
		lastSeq                                            uint32
		lastSeen                                           time.Time
	}
	var accs []acc
	index := map[string]int{}
	for _, r := range rows {
		ip := r.Address
		if ap, err := netip.ParseAddrPort(r.Address); err == nil {
			ip = ap.Addr().Unmap().String()
		}
		domain := r.ObsDomain
		if r.Protocol == "sflow" {
			domain = r.SubAgent
		}
		var kb []byte
		kb = appendTag(kb, "agent", orNone(r.Agent))
		kb = appendTag(kb, "domain", strconv.FormatUint(uint64(domain), 10))
		kb = appendTag(kb, "exporter", ip)
		kb = appendTag(kb, "instance", instance)
		kb = appendTag(kb, "protocol", r.Protocol)
		k := string(kb)
		i, ok := index[k]
		if !ok {
			i = len(accs)
			index[k] = i
			accs = append(accs, acc{key: k})
		}
		a := &accs[i]
		a.dg += r.Datagrams
		a.samples += r.Samples
		a.errs += r.DecodeErrors
		a.lostDg += r.LostDatagrams
		a.lostRec += r.LostRecords
		a.reord += r.Reordered
		a.restart += r.Restarts
		if r.LastSeen.After(a.lastSeen) {
			a.lastSeen = r.LastSeen
			a.lastSeq = r.LastSequence
		}
	}
	sec := ts.Unix() * 1e9 // whole seconds, in ns precision
	for _, a := range accs {
		b = append(b, MeasurementExporter...)
		b = append(b, a.key...)
		f := fieldWriter{b: b, first: true}
		f.int("datagrams", int64(a.dg))
		f.int("samples", int64(a.samples))
		f.int("decode_errors", int64(a.errs))
		f.int("lost_datagrams", int64(a.lostDg))
		f.int("lost_records", int64(a.lostRec))
		f.int("reordered", int64(a.reord))
		f.int("restarts", int64(a.restart))
		f.int("last_sequence", int64(a.lastSeq))
		if !a.lastSeen.IsZero() {
			f.int("last_seen", a.lastSeen.Unix())
		}
		b = append(f.b, ' ')
		b = strconv.AppendInt(b, sec, 10)
		b = append(b, '\n')
	}
	return b, len(accs)
}
