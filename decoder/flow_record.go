package decoder

import (
	"encoding/binary"
	"net/netip"
)

// fieldKind says what a template field maps to in a Record. It is decided
// once per template (from element id, enterprise number and length), so the
// per-record loop only switches on it and never re-checks lengths of fixed
// fields.
type fieldKind uint8

const (
	fkIgnore fieldKind = iota
	fkOctets
	fkPackets
	fkL2Octets
	fkDroppedOctets
	fkDroppedPackets
	fkProto
	fkTOS
	fkTCPFlags
	fkSrcPort
	fkDstPort
	fkSrcIPv4
	fkDstIPv4
	fkSrcIPv6
	fkDstIPv6
	fkInIf
	fkOutIf
	fkSrcMAC
	fkDstMAC
	fkVlanID
	fkDot1qVlan
	fkDot1qCustomerVlan
	fkEtherType
	fkTTL
	fkIPVersion
	fkICMPTypeCode
	fkICMPType
	fkICMPCode
	fkEndReason
	fkStartSec
	fkEndSec
	fkStartMs
	fkEndMs
	fkStartNTP
	fkEndNTP
	fkStartDeltaUs
	fkEndDeltaUs
	fkStartSysUp
	fkEndSysUp
	fkSamplingInterval
	fkSamplingPacketInterval
	fkSamplingPacketSpace
	fkL2SegmentID
	fkTunType
	fkTunKey
	fkTunSrc4
	fkTunDst4
	fkDirection
	fkFrameSection
	fkFrameSize
)

// penVMware is VMware's enterprise number, under which OVS exports its
// tunnel elements (ofproto/ipfix-enterprise-entities.def).
const penVMware = 6876

// kindOf maps a data template field. Elements with an unexpected length are
// ignored rather than misread. Total counts (octetTotalCount 85,
// packetTotalCount 86, ...) are ignored: we use deltas.
func kindOf(ie uint16, pen uint32, length uint16, version uint16) fieldKind {
	counter := length >= 1 && length <= 8
	small := length >= 1 && length <= 4
	if pen == penVMware {
		switch {
		case ie == 891 && length == 1: // tunnelType
			return fkTunType
		case ie == 892 && (length == flowVarLen || counter): // tunnelKey
			return fkTunKey
		case ie == 893 && length == 4: // tunnelSourceIPv4Address
			return fkTunSrc4
		case ie == 894 && length == 4: // tunnelDestinationIPv4Address
			return fkTunDst4
		}
		// 895 tunnelProtocolIdentifier, 896/897 tunnel ports: not kept.
		return fkIgnore
	}
	if pen != 0 {
		return fkIgnore
	}
	switch {
	case ie == 1 && counter: // octetDeltaCount / IN_BYTES
		return fkOctets
	case ie == 2 && counter: // packetDeltaCount / IN_PKTS
		return fkPackets
	case ie == 352 && counter: // layer2OctetDeltaCount
		return fkL2Octets
	case ie == 132 && counter: // droppedOctetDeltaCount
		return fkDroppedOctets
	case ie == 133 && counter: // droppedPacketDeltaCount
		return fkDroppedPackets
	case ie == 4 && length == 1: // protocolIdentifier
		return fkProto
	case ie == 5 && length == 1: // ipClassOfService
		return fkTOS
	case ie == 6 && (length == 1 || length == 2): // tcpControlBits
		return fkTCPFlags
	case ie == 7 && length == 2: // sourceTransportPort
		return fkSrcPort
	case ie == 11 && length == 2: // destinationTransportPort
		return fkDstPort
	case ie == 8 && length == 4: // sourceIPv4Address
		return fkSrcIPv4
	case ie == 12 && length == 4: // destinationIPv4Address
		return fkDstIPv4
	case ie == 27 && length == 16: // sourceIPv6Address
		return fkSrcIPv6
	case ie == 28 && length == 16: // destinationIPv6Address
		return fkDstIPv6
	case ie == 10 && small: // ingressInterface
		return fkInIf
	case ie == 14 && small: // egressInterface
		return fkOutIf
	case ie == 56 && length == 6: // sourceMacAddress
		return fkSrcMAC
	case ie == 80 && length == 6: // destinationMacAddress
		return fkDstMAC
	case ie == 58 && length == 2: // vlanId
		return fkVlanID
	case ie == 243 && length == 2: // dot1qVlanId
		return fkDot1qVlan
	case ie == 245 && length == 2: // dot1qCustomerVlanId
		return fkDot1qCustomerVlan
	case ie == 256 && length == 2: // ethernetType
		return fkEtherType
	case ie == 192 && length == 1: // ipTTL
		return fkTTL
	case ie == 60 && length == 1: // ipVersion
		return fkIPVersion
	case (ie == 32 || ie == 139) && length == 2: // icmpTypeCodeIPv4/IPv6
		return fkICMPTypeCode
	case (ie == 176 || ie == 178) && length == 1: // icmpTypeIPv4/IPv6
		return fkICMPType
	case (ie == 177 || ie == 179) && length == 1: // icmpCodeIPv4/IPv6
		return fkICMPCode
	case ie == 136 && length == 1: // flowEndReason
		return fkEndReason
	case ie == 150 && length == 4: // flowStartSeconds
		return fkStartSec
	case ie == 151 && length == 4: // flowEndSeconds
		return fkEndSec
	case ie == 152 && length == 8: // flowStartMilliseconds
		return fkStartMs
	case ie == 153 && length == 8: // flowEndMilliseconds
		return fkEndMs
	case (ie == 154 || ie == 156) && length == 8: // flowStartMicro/Nanoseconds (NTP format)
		return fkStartNTP
	case (ie == 155 || ie == 157) && length == 8: // flowEndMicro/Nanoseconds (NTP format)
		return fkEndNTP
	case ie == 158 && length == 4: // flowStartDeltaMicroseconds
		return fkStartDeltaUs
	case ie == 159 && length == 4: // flowEndDeltaMicroseconds
		return fkEndDeltaUs
	case ie == 22 && length == 4 && version == 9: // FIRST_SWITCHED (sysUptime ms)
		return fkStartSysUp
	case ie == 21 && length == 4 && version == 9: // LAST_SWITCHED
		return fkEndSysUp
	case (ie == 34 || ie == 50) && small: // samplingInterval, samplerRandomInterval
		return fkSamplingInterval
	case ie == 305 && small: // samplingPacketInterval
		return fkSamplingPacketInterval
	case ie == 306 && small: // samplingPacketSpace
		return fkSamplingPacketSpace
	case ie == 351 && length == 8: // layer2SegmentId
		return fkL2SegmentID
	case ie == 61 && length == 1: // flowDirection (0 ingress, 1 egress)
		return fkDirection
	case ie == 315: // dataLinkFrameSection: the sampled frame's first bytes
		return fkFrameSection
	case ie == 312 && small: // dataLinkFrameSize
		return fkFrameSize
	}
	return fkIgnore
}

// optionKindOf maps a non-scope field of an options template: only the
// sampling elements are used.
func optionKindOf(ie uint16, pen uint32, length uint16) fieldKind {
	if pen != 0 || length < 1 || length > 4 {
		return fkIgnore
	}
	switch ie {
	case 34, 50: // samplingInterval / samplerRandomInterval (v9 SAMPLING_INTERVAL, FLOW_SAMPLER_RANDOM_INTERVAL)
		return fkSamplingInterval
	case 305:
		return fkSamplingPacketInterval
	case 306:
		return fkSamplingPacketSpace
	}
	return fkIgnore
}

func flowUint(v []byte) uint64 {
	switch len(v) {
	case 8:
		return binary.BigEndian.Uint64(v)
	case 4:
		return uint64(binary.BigEndian.Uint32(v))
	case 2:
		return uint64(binary.BigEndian.Uint16(v))
	case 1:
		return uint64(v[0])
	}
	if len(v) > 8 {
		v = v[len(v)-8:]
	}
	var x uint64
	for _, b := range v {
		x = x<<8 | uint64(b)
	}
	return x
}

// ntpToUnixNs converts an NTP timestamp (seconds since 1900, 32-bit fraction).
func ntpToUnixNs(v uint64) int64 {
	const ntpEpochOffset = 2208988800
	sec := int64(v>>32) - ntpEpochOffset
	frac := int64(((v & 0xffffffff) * 1e9) >> 32)
	return sec*1e9 + frac
}

// dataSet decodes one data set (or options data set) with template id.
func (f *flowDecoder) dataSet(c *msgCtx, id uint16, set []byte, b *Batch) error {
	t := f.lookupTemplate(c, id, b)
	if t == nil || f.expired(t, c.now) {
		if t = f.assumedTemplate(c, id, set); t == nil {
			f.m.unknownTemplate[c.si].Inc()
			b.Header.Skipped++
			return nil
		}
		f.m.assumedTemplate[c.si].Inc()
	}
	if t.options {
		return f.optionsSet(c, t, set, b)
	}
	if t.probe {
		return f.probeSet(c, t, set, b)
	}
	rate, known := f.samplingRate(c)
	// minLen > 0 (validated), so every pass consumes at least one byte;
	// fewer than minLen bytes left are padding.
	for len(set) >= t.minLen {
		var r *Record
		full := len(b.Records) >= f.cfg.MaxRecords
		// a direction not kept (OVS: every egress record by default):
		// measured, not decoded (dirOff < minLen <= len(set))
		dirSkip := !full && t.dirOff >= 0 && !f.keepDir[set[t.dirOff]&1]
		if !full && !dirSkip {
			r = b.AddRecord()
		}
		n, dir, ok := fillRecord(c, t, set, r)
		if !ok {
			if r != nil {
				b.Records = b.Records[:len(b.Records)-1]
			}
			return f.fail(c.si, errRecordTruncated, "data set %d: record overruns the set", id)
		}
		set = set[n:]
		b.Header.DataRecords++
		if r == nil && dirSkip {
			c.nDirSkipped++
			b.Header.Skipped++
			continue
		}
		if r == nil {
			f.m.errors[c.si][errRecordsLimit].Inc()
			b.Header.Skipped++
			continue
		}
		if dir >= 0 && !f.keepDir[dir] {
			b.Records = b.Records[:len(b.Records)-1]
			c.nDirSkipped++
			b.Header.Skipped++
			continue
		}
		if !f.cfg.TrustDropped {
			r.DroppedPackets, r.DroppedBytes = 0, 0
		}
		if r.SamplingRate == 0 {
			r.SamplingRate = rate
			if !known {
				c.nRateUnknown++
			}
		}
		b.Header.Samples++
		c.nRecords++
	}
	return nil
}

// optionsSet reads options data records; sampling options set the rate of
// this exporter and domain, the rest is skipped.
func (f *flowDecoder) optionsSet(c *msgCtx, t *flowTemplate, set []byte, b *Batch) error {
	for len(set) >= t.minLen {
		var interval, space uint64
		hasInterval, hasSpace := false, false
		pos := 0
		for i := range t.fields {
			fl := &t.fields[i]
			l := int(fl.length)
			if fl.length == flowVarLen {
				var ok bool
				if l, pos, ok = flowReadVarLen(set, pos); !ok {
					return f.fail(c.si, errRecordTruncated, "options set %d: record overruns the set", t.id)
				}
			}
			if l > len(set)-pos {
				return f.fail(c.si, errRecordTruncated, "options set %d: record overruns the set", t.id)
			}
			switch fl.kind {
			case fkSamplingInterval, fkSamplingPacketInterval:
				interval, hasInterval = flowUint(set[pos:pos+l]), true
			case fkSamplingPacketSpace:
				space, hasSpace = flowUint(set[pos:pos+l]), true
			}
			pos += l
		}
		set = set[pos:]
		b.Header.DataRecords++
		c.nOptions++
		if hasInterval && interval > 0 {
			rate := interval
			if hasSpace {
				// samplingPacketInterval packets taken out of every
				// interval+space.
				rate = (interval + space) / interval
			}
			if rate >= 1 && rate <= 1<<32-1 {
				c.d.optRate.Store(uint32(rate))
				c.rateCached = false
			}
		}
	}
	return nil
}

func flowReadVarLen(p []byte, pos int) (l, next int, ok bool) {
	if pos >= len(p) {
		return 0, pos, false
	}
	l = int(p[pos])
	pos++
	if l == 255 {
		if len(p)-pos < 2 {
			return 0, pos, false
		}
		l = int(binary.BigEndian.Uint16(p[pos:]))
		pos += 2
	}
	return l, pos, true
}

// recState collects, for one record, the fields that are combined after
// the walk.
type recState struct {
	c                    *msgCtx
	dir                  int
	octets, l2octets     uint64
	hasOctets, hasL2     bool
	vlan, dot1q, dot1qC  uint16
	hasDot1q, hasDot1qC  bool
	ipVersion            uint8
	start, end           int64
	tunType              uint8
	tunKey, l2seg        uint64
	hasTunKey, hasL2Seg  bool
	sampInt, sampSpace   uint64
	hasSampInt, hasSpace bool
	frame                []byte
	frameSize            uint64
}

// apply stores one field value (v has the length the template promised for
// fixed kinds).
func (st *recState) apply(kind fieldKind, v []byte, r *Record) {
	switch kind {
	case fkOctets:
		st.octets, st.hasOctets = flowUint(v), true
	case fkPackets:
		r.Packets = flowUint(v)
	case fkL2Octets:
		st.l2octets, st.hasL2 = flowUint(v), true
	case fkDroppedOctets:
		r.DroppedBytes = flowUint(v)
	case fkDroppedPackets:
		r.DroppedPackets = flowUint(v)
	case fkProto:
		r.Proto = v[0]
	case fkTOS:
		r.TOS = v[0]
	case fkTCPFlags:
		r.TCPFlags = v[len(v)-1]
	case fkSrcPort:
		r.SrcPort = binary.BigEndian.Uint16(v)
		r.Flags |= FlagL4
	case fkDstPort:
		r.DstPort = binary.BigEndian.Uint16(v)
		r.Flags |= FlagL4
	case fkSrcIPv4:
		r.SrcIP = netip.AddrFrom4([4]byte(v))
	case fkDstIPv4:
		r.DstIP = netip.AddrFrom4([4]byte(v))
	case fkSrcIPv6:
		r.SrcIP = netip.AddrFrom16([16]byte(v))
	case fkDstIPv6:
		r.DstIP = netip.AddrFrom16([16]byte(v))
	case fkInIf:
		r.InIf = uint32(flowUint(v))
	case fkOutIf:
		r.OutIf = uint32(flowUint(v))
	case fkSrcMAC:
		r.SrcMAC = [6]byte(v)
	case fkDstMAC:
		r.DstMAC = [6]byte(v)
	case fkVlanID:
		st.vlan = binary.BigEndian.Uint16(v) & 0x0fff
	case fkDot1qVlan:
		st.dot1q, st.hasDot1q = binary.BigEndian.Uint16(v)&0x0fff, true
	case fkDot1qCustomerVlan:
		st.dot1qC, st.hasDot1qC = binary.BigEndian.Uint16(v)&0x0fff, true
	case fkEtherType:
		r.EtherType = binary.BigEndian.Uint16(v)
	case fkTTL:
		r.TTL = v[0]
		r.Flags |= FlagHasTTL
	case fkIPVersion:
		st.ipVersion = v[0]
	case fkICMPTypeCode:
		r.ICMPType, r.ICMPCode = v[0], v[1]
	case fkICMPType:
		r.ICMPType = v[0]
	case fkICMPCode:
		r.ICMPCode = v[0]
	case fkEndReason:
		r.EndReason = v[0]
	case fkStartSec:
		st.start = int64(binary.BigEndian.Uint32(v)) * 1e9
	case fkEndSec:
		st.end = int64(binary.BigEndian.Uint32(v)) * 1e9
	case fkStartMs:
		st.start = int64(binary.BigEndian.Uint64(v)) * 1e6
	case fkEndMs:
		st.end = int64(binary.BigEndian.Uint64(v)) * 1e6
	case fkStartNTP:
		st.start = ntpToUnixNs(binary.BigEndian.Uint64(v))
	case fkEndNTP:
		st.end = ntpToUnixNs(binary.BigEndian.Uint64(v))
	case fkStartDeltaUs:
		// relative to the export time of the message header
		st.start = st.c.exportNs - int64(binary.BigEndian.Uint32(v))*1e3
	case fkEndDeltaUs:
		st.end = st.c.exportNs - int64(binary.BigEndian.Uint32(v))*1e3
	case fkStartSysUp:
		// NetFlow v9: sysUptime ms of the first packet; the header
		// pairs sysUptime with unix seconds.
		st.start = st.c.exportNs - int64(int32(st.c.sysUptime-binary.BigEndian.Uint32(v)))*1e6
	case fkEndSysUp:
		st.end = st.c.exportNs - int64(int32(st.c.sysUptime-binary.BigEndian.Uint32(v)))*1e6
	case fkSamplingInterval, fkSamplingPacketInterval:
		st.sampInt, st.hasSampInt = flowUint(v), true
	case fkSamplingPacketSpace:
		st.sampSpace, st.hasSpace = flowUint(v), true
	case fkL2SegmentID:
		st.l2seg, st.hasL2Seg = binary.BigEndian.Uint64(v), true
	case fkTunType:
		st.tunType = v[0]
	case fkTunKey:
		st.tunKey, st.hasTunKey = flowUint(v), true
	case fkTunSrc4:
		r.OuterSrcIP = netip.AddrFrom4([4]byte(v))
	case fkTunDst4:
		r.OuterDstIP = netip.AddrFrom4([4]byte(v))
	case fkDirection:
		st.dir = int(v[0] & 1)
	case fkFrameSection:
		st.frame = v
	case fkFrameSize:
		st.frameSize = flowUint(v)
	}
}

// recordLen measures one record without decoding it.
func recordLen(t *flowTemplate, p []byte) (int, bool) {
	if !t.variable {
		return t.minLen, len(p) >= t.minLen
	}
	pos := 0
	for i := range t.segs {
		sg := &t.segs[i]
		if int(sg.fixed) > len(p)-pos {
			return 0, false
		}
		pos += int(sg.fixed)
		if sg.hasVar {
			l, next, ok := flowReadVarLen(p, pos)
			if !ok || l > len(p)-next {
				return 0, false
			}
			pos = next + l
		}
	}
	return pos, true
}

// fillRecord decodes one data record at the start of p into r (only measures
// it when r is nil) and returns its length and flowDirection (-1 if absent).
// It walks the template's segments: a run of fixed-length fields, of which
// only the mapped ones are read at their known offsets, then at most one
// variable-length field.
func fillRecord(c *msgCtx, t *flowTemplate, p []byte, r *Record) (int, int, bool) {
	if r == nil {
		n, ok := recordLen(t, p)
		return n, -1, ok
	}
	st := recState{c: c, dir: -1}
	pos := 0
	for i := range t.segs {
		sg := &t.segs[i]
		fixed := int(sg.fixed)
		if fixed > len(p)-pos {
			return 0, -1, false
		}
		seg := p[pos : pos+fixed]
		for _, op := range t.ops[sg.first:sg.last] {
			st.apply(op.kind, seg[op.off:op.off+op.length], r)
		}
		pos += fixed
		if sg.hasVar {
			l, next, ok := flowReadVarLen(p, pos)
			if !ok || l > len(p)-next {
				return 0, -1, false
			}
			if sg.varKind != fkIgnore {
				st.apply(sg.varKind, p[next:next+l], r)
			}
			pos = next + l
		}
	}
	dir := st.dir
	r.Source = c.src
	r.Exporter = c.exporter
	r.Agent = c.exporter
	r.ObsDomain = c.domain
	r.Received = c.received
	// Bytes are Ethernet frame bytes without FCS: layer2OctetDeltaCount
	// when the exporter sends it (OVS does), else the IP octets
	// (octetDeltaCount) plus a 14-byte Ethernet header per packet.
	// A packet report (PSAMP style: dataLinkFrameSize and no counters) is
	// one packet of that size.
	switch {
	case st.hasL2:
		r.Bytes = st.l2octets
	case st.hasOctets:
		r.Bytes = st.octets + 14*r.Packets
	case st.frameSize > 0:
		r.Bytes = st.frameSize
		if r.Packets == 0 {
			r.Packets = 1
		}
	}
	switch {
	case st.hasDot1qC:
		r.VLAN, r.OuterVLAN = st.dot1qC, st.dot1q
	case st.hasDot1q:
		r.VLAN = st.dot1q
	default:
		r.VLAN = st.vlan
	}
	if len(st.frame) > 0 && r.Flags&FlagL3 == 0 {
		// No flow key fields: take them from the sampled st.frame.
		ParseHeader(st.frame, r)
	}
	if r.SrcIP.IsValid() || r.DstIP.IsValid() {
		r.Flags |= FlagL3
		if r.EtherType == 0 {
			if r.SrcIP.Is4() || r.DstIP.Is4() {
				r.EtherType = 0x0800
			} else {
				r.EtherType = 0x86dd
			}
		}
	} else if r.EtherType == 0 {
		switch st.ipVersion {
		case 4:
			r.EtherType = 0x0800
		case 6:
			r.EtherType = 0x86dd
		}
	}
	r.FlowStart, r.FlowEnd = st.start, st.end
	if st.hasTunKey || st.tunType != 0 {
		switch st.tunType {
		case 1:
			r.Tunnel = TunnelVXLAN
		case 7:
			r.Tunnel = TunnelGeneve
		}
		r.VNI = uint32(st.tunKey)
	} else if st.hasL2Seg {
		// layer2SegmentId: top byte is the segment type (1 = VXLAN), the
		// low 24 bits the VNI.
		if st.l2seg>>56 == 1 {
			r.Tunnel = TunnelVXLAN
		}
		r.VNI = uint32(st.l2seg & 0xffffff)
	}
	if st.hasSampInt && st.sampInt > 0 {
		rate := st.sampInt
		if st.hasSpace {
			rate = (st.sampInt + st.sampSpace) / st.sampInt
		}
		if rate >= 1 && rate <= 1<<32-1 {
			r.SamplingRate = uint32(rate)
		}
	}
	return pos, dir, true
}
