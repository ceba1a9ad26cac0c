package decoder

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// Measurement is one record of a vmflow probe (see probe_ies.go): a timed
// TCP handshake, a connection close, an ICMP echo or an ICMP error seen at
// a VM's tap. It is a measurement, never traffic: it carries no bytes or
// packets and the aggregator never adds it to a pair's traffic.
type Measurement struct {
	Exporter  netip.Addr
	ObsDomain uint32
	Received  int64 // unix ns when the datagram arrived
	Time      int64 // unix ns of the first packet (observationTimeMicroseconds)

	Event   uint8  // ProbeEvent*
	Side    uint8  // ProbeSide*
	Outcome uint8  // ProbeOutcome*
	Retries uint8  // SYN retransmissions
	RTT     uint32 // µs (0 when not answered)
	AckRTT  uint32 // µs, SYN-ACK → ACK at the server's tap (0 not measured)

	SrcMAC, DstMAC   [6]byte
	SrcIP, DstIP     netip.Addr // initiator, responder
	SrcPort, DstPort uint16
	Proto            uint8
	IfIndex          uint32 // the tap's ifindex on the probe's host
	ICMPType         uint8
	ICMPCode         uint8
}

// isProbeTemplate: a data template with any element of ProbePEN.
func isProbeTemplate(t *flowTemplate) bool {
	for i := range t.fields {
		if t.fields[i].pen == ProbePEN {
			return true
		}
	}
	return false
}

type probeMetrics struct {
	records prometheus.Counter
	invalid prometheus.Counter
}

func (m *probeMetrics) init(reg prometheus.Registerer) error {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	if m.records, err = registerOrReuse(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vmflow_decoder_probe_records_total",
		Help: "vmflow probe measurement records decoded (IPFIX, enterprise 32473): measurements, never traffic.",
	})); err != nil {
		return fmt.Errorf("decoder probe metrics: %w", err)
	}
	if m.invalid, err = registerOrReuse(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vmflow_decoder_probe_invalid_total",
		Help: "vmflow probe records skipped: unknown event, side or outcome, or no addresses.",
	})); err != nil {
		return fmt.Errorf("decoder probe metrics: %w", err)
	}
	return nil
}

// probeSet decodes the data set of a probe template into b.Measurements.
// Elements it does not know, or of a length it does not expect, are
// skipped; a record whose event, side or outcome is unknown, or that has
// no addresses, is counted invalid and dropped.
func (f *flowDecoder) probeSet(c *msgCtx, t *flowTemplate, set []byte, b *Batch) error {
	for len(set) >= t.minLen {
		var m Measurement
		var v4s, v4d [4]byte
		var v6s, v6d [16]byte
		has4, has6 := 0, 0
		pos := 0
		for i := range t.fields {
			fl := &t.fields[i]
			l := int(fl.length)
			if fl.length == flowVarLen {
				var ok bool
				if l, pos, ok = flowReadVarLen(set, pos); !ok {
					return f.fail(c.si, errRecordTruncated, "probe set %d: record overruns the set", t.id)
				}
			}
			if l > len(set)-pos {
				return f.fail(c.si, errRecordTruncated, "probe set %d: record overruns the set", t.id)
			}
			v := set[pos : pos+l]
			pos += l
			if fl.pen == ProbePEN {
				if l < 1 || l > 8 {
					continue
				}
				x := flowUint(v)
				switch fl.ie {
				case IEProbeEvent:
					m.Event = uint8(min(x, 255))
				case IEProbeSide:
					m.Side = uint8(min(x, 255))
				case IEProbeOutcome:
					m.Outcome = uint8(min(x, 255))
				case IEProbeRTTMicroseconds:
					m.RTT = uint32(min(x, 0xffffffff))
				case IEProbeSYNRetransmissions:
					m.Retries = uint8(min(x, 255))
				case IEProbeAckMicroseconds:
					m.AckRTT = uint32(min(x, 0xffffffff))
				}
				continue
			}
			if fl.pen != 0 {
				continue
			}
			switch {
			case fl.ie == IEObservationTimeMicroseconds && l == 8:
				us := binary.BigEndian.Uint64(v)
				if us < 1<<53 {
					m.Time = int64(us) * 1000
				}
			case fl.ie == 56 && l == 6:
				copy(m.SrcMAC[:], v)
			case fl.ie == 80 && l == 6:
				copy(m.DstMAC[:], v)
			case fl.ie == 8 && l == 4:
				v4s = [4]byte(v)
				has4 |= 1
			case fl.ie == 12 && l == 4:
				v4d = [4]byte(v)
				has4 |= 2
			case fl.ie == 27 && l == 16:
				v6s = [16]byte(v)
				has6 |= 1
			case fl.ie == 28 && l == 16:
				v6d = [16]byte(v)
				has6 |= 2
			case fl.ie == 7 && l == 2:
				m.SrcPort = binary.BigEndian.Uint16(v)
			case fl.ie == 11 && l == 2:
				m.DstPort = binary.BigEndian.Uint16(v)
			case fl.ie == 4 && l == 1:
				m.Proto = v[0]
			case fl.ie == IEIngressInterface && l >= 1 && l <= 4:
				m.IfIndex = uint32(flowUint(v))
			case (fl.ie == 32 || fl.ie == 139) && l == 2:
				m.ICMPType, m.ICMPCode = v[0], v[1]
			}
		}
		set = set[pos:]
		b.Header.DataRecords++
		switch {
		case has4 == 3:
			m.SrcIP, m.DstIP = netip.AddrFrom4(v4s), netip.AddrFrom4(v4d)
		case has6 == 3:
			m.SrcIP, m.DstIP = netip.AddrFrom16(v6s).Unmap(), netip.AddrFrom16(v6d).Unmap()
		}
		if !validMeasurement(&m) {
			f.pm.invalid.Inc()
			b.Header.Skipped++
			continue
		}
		if len(b.Measurements) >= f.cfg.MaxRecords {
			f.m.errors[c.si][errRecordsLimit].Inc()
			b.Header.Skipped++
			continue
		}
		m.Exporter, m.ObsDomain, m.Received = c.exporter, c.domain, c.received
		b.Measurements = append(b.Measurements, m)
		b.Header.Samples++
		f.pm.records.Inc()
	}
	return nil
}

func validMeasurement(m *Measurement) bool {
	if !m.SrcIP.IsValid() || !m.DstIP.IsValid() {
		return false
	}
	if m.Side != ProbeSideClient && m.Side != ProbeSideServer {
		return false
	}
	switch m.Event {
	case ProbeEventHandshake:
		return (m.Outcome >= ProbeOutcomeEstablished && m.Outcome <= ProbeOutcomeTimedOut) ||
			m.Outcome == ProbeOutcomeUnreachable
	case ProbeEventClose:
		return m.Outcome == ProbeOutcomeFIN || m.Outcome == ProbeOutcomeRST
	case ProbeEventEcho:
		return m.Outcome == ProbeOutcomeEstablished || m.Outcome == ProbeOutcomeTimedOut
	case ProbeEventICMPError:
		return true
	}
	return false
}
