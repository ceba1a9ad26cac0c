package decoder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/netsampler/goflow2/v2/decoders/sflow"
)

// guardGoflow2 walks the sample headers the way goflow2's DecodeMessage does
// and rejects, before goflow2 sees the datagram, any sample whose record count
// exceeds MaxRecords (goflow2 v2.2.6 allocates an expanded flow sample's
// record slice from the announced count without a cap) and a sample count
// above MaxSamples. Anything else odd is left for goflow2 to reject.
func (d *sflowDecoder) guardGoflow2(data []byte) error {
	if len(data) < 8 || sfU32(data) != 5 {
		return nil
	}
	p := data[8:]
	switch sfU32(data[4:]) {
	case 1:
		if len(p) < 4 {
			return nil
		}
		p = p[4:]
	case 2:
		if len(p) < 16 {
			return nil
		}
		p = p[16:]
	default:
		return nil
	}
	if len(p) < 16 {
		return nil
	}
	n := sfU32(p[12:])
	if n > uint32(d.cfg.MaxSamples) {
		return fmt.Errorf("%d samples (max %d): %w", n, d.cfg.MaxSamples, ErrTooManySamples)
	}
	p = p[16:]
	for i := 0; i < int(n) && len(p) >= 8; i++ {
		format, slen := sfU32(p), sfU32(p[4:])
		p = p[8:]
		if uint64(slen) > uint64(len(p)) {
			break
		}
		body := p[:slen]
		p = p[slen:]
		off := -1
		switch format {
		case sflowFlowSample:
			off = 28
		case sflowCounterSample:
			off = 8
		case sflowExpandedFlowSample:
			off = 40
		case sflowExpandedCounterSample:
			off = 12
		case sflowDropSample:
			off = 28
		}
		if off < 0 || len(body) < off+4 {
			continue
		}
		if r := sfU32(body[off:]); r > uint32(d.cfg.MaxRecords) {
			return fmt.Errorf("sample %d (format %d): %d records (max %d): %w", i, format, r, d.cfg.MaxRecords, ErrTooManyRecords)
		}
	}
	return nil
}

// goflow2Err maps a goflow2 decode error to our error kinds.
func goflow2Err(p *sflow.Packet, err error) error {
	switch {
	case p.Version != 0 && p.Version != 5:
		return fmt.Errorf("goflow2: %w: %w", ErrBadVersion, err)
	case p.IPVersion != 0 && p.IPVersion != 1 && p.IPVersion != 2:
		return fmt.Errorf("goflow2: %w: %w", ErrBadAddress, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("goflow2: %w: %w", ErrTruncated, err)
	}
	return fmt.Errorf("goflow2: %w: %w", ErrMalformed, err)
}

// decodeGoflow2 decodes with goflow2's decoders/sflow (after guardGoflow2),
// then maps its types to Records/Counters through the same accumulators as
// the fast path. It allocates (goflow2 does).
func (d *sflowDecoder) decodeGoflow2(from netip.AddrPort, data []byte, received int64, b *Batch, st *sflowStats) error {
	b.Header.Source = SourceSFlow
	b.Header.Exporter = from
	if err := d.guardGoflow2(data); err != nil {
		return err
	}
	var p sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(data), &p); err != nil {
		return goflow2Err(&p, err)
	}
	var m sflowMeta
	m.exporter = from.Addr()
	m.received = received
	m.subAgent = p.SubAgentId
	switch len(p.AgentIP) {
	case 4:
		m.agent = netip.AddrFrom4([4]byte(p.AgentIP))
	case 16:
		m.agent = netip.AddrFrom16([16]byte(p.AgentIP))
	}
	b.Header.Version = uint16(p.Version)
	b.Header.Agent = m.agent
	b.Header.SubAgent = m.subAgent
	b.Header.Sequence = p.SequenceNumber
	b.Header.Uptime = p.Uptime
	m.uptime = p.Uptime
	b.Header.Samples = int(p.SamplesCount)
	for i, s := range p.Samples {
		var err error
		switch s := s.(type) {
		case nil:
			// goflow2 stopped early and silently (a sample length runs
			// past the datagram, or announced samples are missing): the
			// fast path's ErrTruncated, never a silent partial accept.
			return fmt.Errorf("sample %d of %d: missing or overrunning the datagram: %w", i, len(p.Samples), ErrTruncated)
		case sflow.FlowSample:
			st.samples[sampleFlow]++
			err = mapFlowSample(s.SamplingRate, ifIndexCompact(s.Input), ifIndexCompact(s.Output), s.Records, &m, b, st)
		case sflow.ExpandedFlowSample:
			st.samples[sampleExpandedFlow]++
			err = mapFlowSample(s.SamplingRate, ifIndexExpanded(s.InputIfFormat, s.InputIfValue),
				ifIndexExpanded(s.OutputIfFormat, s.OutputIfValue), s.Records, &m, b, st)
		case sflow.CounterSample:
			if s.Header.Format == sflowExpandedCounterSample {
				st.samples[sampleExpandedCounter]++
			} else {
				st.samples[sampleCounter]++
			}
			err = mapCounterSample(&s, &m, b, st)
		case sflow.DropSample:
			st.samples[sampleDrop]++
			for j := range s.Records {
				if s.Records[j].Data == nil {
					err = fmt.Errorf("record %d of %d: missing or overrunning the sample: %w", j, len(s.Records), ErrTruncated)
					break
				}
			}
			if err == nil {
				st.skipped[skipDropSample]++
			}
		}
		if err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return nil
}

func mapFlowSample(rate, inIf, outIf uint32, recs []sflow.FlowRecord, m *sflowMeta, b *Batch, st *sflowStats) error {
	var a flowAcc
	for j := range recs {
		rec := &recs[j]
		switch v := rec.Data.(type) {
		case nil: // goflow2 stopped early (a record runs past the sample, or records are missing)
			return fmt.Errorf("record %d of %d: missing or overrunning the sample: %w", j, len(recs), ErrTruncated)
		case sflow.SampledHeader:
			hdr := v.HeaderData // goflow2 keeps the XDR padding: cut to header_length
			if int64(v.OriginalLength) <= int64(len(hdr)) {
				hdr = hdr[:v.OriginalLength]
			}
			a.setHeader(v.Protocol, v.FrameLength, v.Stripped, hdr, st)
		case sflow.SampledIPv4:
			s := goflow2SampledIP(&v.SampledIPBase, v.Tos)
			a.setSampledIP(&a.ip4, &s, recSampledIPv4, st)
		case sflow.SampledIPv6:
			s := goflow2SampledIP(&v.SampledIPBase, v.Priority)
			a.setSampledIP(&a.ip6, &s, recSampledIPv6, st)
		case sflow.ExtendedSwitch:
			a.setSwitch(v.SrcVlan, st)
		case sflow.RawRecord:
			if err := a.addRecord(rec.Header.DataFormat, v.Data, st); err != nil {
				return fmt.Errorf("record %d: %w", j, err)
			}
		default: // sampled Ethernet, router, gateway, queue, ACL, function: unused
			st.skipped[skipFlowRecord]++
		}
	}
	startFlowRecord(b, m, rate, inIf, outIf)
	finishFlowRecord(b, &a, st)
	return nil
}

func goflow2SampledIP(v *sflow.SampledIPBase, tos uint32) sampledIP {
	s := sampledIP{ok: true, length: v.Length, proto: v.Protocol, sport: v.SrcPort, dport: v.DstPort, tcpFlags: v.TcpFlags, tos: tos}
	s.src, _ = netip.AddrFromSlice(v.SrcIP)
	s.dst, _ = netip.AddrFromSlice(v.DstIP)
	return s
}

func mapCounterSample(s *sflow.CounterSample, m *sflowMeta, b *Batch, st *sflowStats) error {
	c := startCounters(b, m, s.Header.SampleSequenceNumber, s.Header.SourceIdType, s.Header.SourceIdValue)
	var seen counterSeen
	hs := hostSample{b: b, m: m, srcType: s.Header.SourceIdType, srcIndex: s.Header.SourceIdValue} // sflow_host.go
	for j := range s.Records {
		rec := &s.Records[j]
		switch v := rec.Data.(type) {
		case nil: // goflow2 stopped early (a record runs past the sample, or records are missing)
			hs.drop()
			dropLastCounters(b)
			return fmt.Errorf("record %d of %d: missing or overrunning the sample: %w", j, len(s.Records), ErrTruncated)
		case sflow.IfCounters:
			if !seen.first(seenIf, st) {
				continue
			}
			st.records[recIfCounters]++
			c.setIf(&ifCounters{
				index: v.IfIndex, typ: v.IfType, speed: v.IfSpeed, direction: v.IfDirection, status: v.IfStatus,
				inOctets: v.IfInOctets, inUcast: v.IfInUcastPkts, inMcast: v.IfInMulticastPkts,
				inBcast: v.IfInBroadcastPkts, inDiscard: v.IfInDiscards, inErrors: v.IfInErrors,
				inUnknown: v.IfInUnknownProtos, outOctets: v.IfOutOctets, outUcast: v.IfOutUcastPkts,
				outMcast: v.IfOutMulticastPkts, outBcast: v.IfOutBroadcastPkts, outDiscard: v.IfOutDiscards,
				outErrors: v.IfOutErrors, promiscuous: v.IfPromiscuousMode,
			})
		case sflow.EthernetCounters:
			if seen.first(seenEth, st) {
				st.records[recEthCounters]++
			}
		case sflow.RawRecord:
			if err := hs.counterRecord(c, &seen, rec.Header.DataFormat, v.Data, st); err != nil {
				hs.drop()
				dropLastCounters(b)
				return fmt.Errorf("record %d: %w", j, err)
			}
		default:
			st.skipped[skipCounterRecord]++
		}
	}
	return nil
}
