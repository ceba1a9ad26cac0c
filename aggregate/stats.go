package aggregate

import (
	"math"

	"github.com/vmflow/vmflow/decoder"
)

// z95 is the two-sided 95% normal quantile.
const z95 = 1.96

// CI95Bytes returns the 95% interval of the byte estimate:
// Bytes ± 1.96·√BytesVar, the lower end clamped at the observed bytes.
func (s *Stats) CI95Bytes() (lo, hi float64) {
	return ci95(s.Bytes, s.BytesVar, float64(s.SampledBytes))
}

// CI95Packets returns the 95% interval of the packet estimate.
func (s *Stats) CI95Packets() (lo, hi float64) {
	return ci95(s.Packets, s.PacketsVar, float64(s.SampledPackets))
}

func ci95(est, v, floor float64) (lo, hi float64) {
	d := 0.0
	if v > 0 {
		d = z95 * math.Sqrt(v)
	}
	lo, hi = est-d, est+d
	if lo < floor {
		lo = floor
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// Merge adds o into s: sums of estimates, variances (independent samples),
// samples and flows (flows then counts distinct 5-tuples per window,
// summed over windows); top ports are combined by (proto, port) and the
// TopPortsN largest kept; the last-seen addressing comes from the later of
// the two; First/Last span both.
func (s *Stats) Merge(o *Stats) {
	s.Bytes += o.Bytes
	s.Packets += o.Packets
	s.BytesVar += o.BytesVar
	s.PacketsVar += o.PacketsVar
	s.Samples += o.Samples
	s.Flows += o.Flows
	s.SampledBytes += o.SampledBytes
	s.SampledPackets += o.SampledPackets
	s.TCPPackets += o.TCPPackets
	s.UDPPackets += o.UDPPackets
	s.ICMPPackets += o.ICMPPackets
	s.OtherPackets += o.OtherPackets
	s.TCPBytes += o.TCPBytes
	s.UDPBytes += o.UDPBytes
	s.ICMPBytes += o.ICMPBytes
	s.OtherBytes += o.OtherBytes
	s.SYN += o.SYN
	s.SYNACK += o.SYNACK
	s.SYNACKIn += o.SYNACKIn
	s.RSTIn += o.RSTIn
	s.RST += o.RST
	s.FIN += o.FIN
	s.ICMPErrors += o.ICMPErrors
	s.DroppedPackets += o.DroppedPackets
	s.DroppedBytes += o.DroppedBytes
	s.TopPorts = mergeTopPorts(&s.TopPorts, &o.TopPorts)
	s.mergeLat(o)
	if o.First != 0 && (s.First == 0 || o.First < s.First) {
		s.First = o.First
	}
	if o.Samples > 0 && (s.Samples == o.Samples || o.Last >= s.Last) {
		s.SrcIP, s.DstIP = o.SrcIP, o.DstIP
		s.SrcMAC, s.DstMAC = o.SrcMAC, o.DstMAC
		s.VNI = o.VNI
	}
	if o.Last > s.Last {
		s.Last = o.Last
	}
}

// mergeTopPorts combines two top-port lists without allocating.
func mergeTopPorts(a, b *[TopPortsN]PortCount) [TopPortsN]PortCount {
	var all [2 * TopPortsN]PortCount
	n := 0
	add := func(p PortCount) {
		if p.Bytes <= 0 {
			return
		}
		for i := 0; i < n; i++ {
			if all[i].Proto == p.Proto && all[i].Port == p.Port {
				all[i].Bytes += p.Bytes
				return
			}
		}
		all[n] = p
		n++
	}
	for _, p := range a {
		add(p)
	}
	for _, p := range b {
		add(p)
	}
	sortPorts(all[:n])
	var out [TopPortsN]PortCount
	copy(out[:], all[:n])
	return out
}

// sortPorts sorts by bytes descending, then proto and port (insertion
// sort: at most 2·TopPortsN entries, no allocation).
func sortPorts(p []PortCount) {
	less := func(x, y PortCount) bool {
		if x.Bytes != y.Bytes {
			return x.Bytes > y.Bytes
		}
		if x.Proto != y.Proto {
			return x.Proto < y.Proto
		}
		return x.Port < y.Port
	}
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && less(p[j], p[j-1]); j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// addPort is the space-saving update: an existing entry grows, an empty
// one is taken, else the smallest entry is replaced and inherits its count
// (an overestimate bounded by that count).
func (s *Stats) addPort(proto uint8, port uint16, bytes float64) {
	if bytes <= 0 {
		return
	}
	minI := 0
	for i := range s.TopPorts {
		e := &s.TopPorts[i]
		if e.Bytes == 0 {
			e.Proto, e.Port, e.Bytes = proto, port, bytes
			return
		}
		if e.Proto == proto && e.Port == port {
			e.Bytes += bytes
			return
		}
		if e.Bytes < s.TopPorts[minI].Bytes {
			minI = i
		}
	}
	e := &s.TopPorts[minI]
	e.Proto, e.Port = proto, port
	e.Bytes += bytes
}

// add sums one record (already attributed and admitted) scaled by n.
func (s *Stats) add(r *decoder.Record, n float64) {
	b, p := float64(r.Bytes), float64(r.Packets)
	nb, np := n*b, n*p
	s.Bytes += nb
	s.Packets += np
	s.BytesVar += n * (n - 1) * b * b
	s.PacketsVar += n * (n - 1) * p * p
	s.SampledBytes += r.Bytes
	s.SampledPackets += r.Packets
	s.Samples++

	l3 := r.Flags&decoder.FlagL3 != 0
	proto := r.Proto
	if !l3 {
		proto = 0
	}
	switch {
	case l3 && proto == 6:
		s.TCPPackets += np
		s.TCPBytes += nb
		f := r.TCPFlags
		syn, ack := f&0x02 != 0, f&0x10 != 0
		if syn {
			if !ack || r.Packets > 1 {
				s.SYN += n
			} else {
				s.SYNACK += n
			}
		}
		if f&0x04 != 0 {
			s.RST += n
		}
		if f&0x01 != 0 {
			s.FIN += n
		}
	case l3 && proto == 17:
		s.UDPPackets += np
		s.UDPBytes += nb
	case l3 && (proto == 1 || proto == 58):
		s.ICMPPackets += np
		s.ICMPBytes += nb
		t := r.ICMPType
		if (proto == 1 && (t == 3 || t == 11 || t == 12)) || (proto == 58 && t >= 1 && t <= 4) {
			s.ICMPErrors += np
		}
	default:
		s.OtherPackets += np
		s.OtherBytes += nb
	}
	if r.Flags&decoder.FlagL4 != 0 && (proto == 6 || proto == 17 || proto == 132) {
		s.addPort(proto, r.DstPort, nb)
	}
	s.DroppedPackets += n * float64(r.DroppedPackets)
	s.DroppedBytes += n * float64(r.DroppedBytes)

	// Last-seen addressing; a non-IP frame (ARP) between the same VMs does
	// not erase the IPs, a record without MACs (some IPFIX templates) not
	// the MACs.
	if l3 {
		s.SrcIP, s.DstIP = r.SrcIP, r.DstIP
	}
	if r.SrcMAC != ([6]byte{}) || r.DstMAC != ([6]byte{}) {
		s.SrcMAC, s.DstMAC = r.SrcMAC, r.DstMAC
	}
	s.VNI = r.VNI
	if s.First == 0 || (r.Received != 0 && r.Received < s.First) {
		s.First = r.Received
	}
	if r.Received > s.Last {
		s.Last = r.Received
	}
}
