package decoder_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/probe"
)

var probeFrom = netip.MustParseAddrPort("192.0.2.10:50000")

// probeMessage is an IPFIX message with the probe's templates and the
// given data sets (template id, raw records).
func probeMessage(withTemplate bool, sets ...[]byte) []byte {
	m := make([]byte, 16)
	binary.BigEndian.PutUint16(m, 10)
	binary.BigEndian.PutUint32(m[12:], 5)
	if withTemplate {
		m = append(m, probe.TemplateSet()...)
	}
	for _, s := range sets {
		m = append(m, s...)
	}
	binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
	return m
}

func dataSet(id uint16, recs []byte) []byte {
	s := binary.BigEndian.AppendUint16(nil, id)
	s = binary.BigEndian.AppendUint16(s, uint16(4+len(recs)))
	return append(s, recs...)
}

func sampleEvents() []probe.Event {
	return []probe.Event{
		{Time: 1_700_000_000_123_456_000, Kind: decoder.ProbeEventHandshake, Side: decoder.ProbeSideClient,
			Outcome: decoder.ProbeOutcomeEstablished, Retries: 1, RTT: 2345, AckRTT: 2100,
			SrcMAC: [6]byte{0x52, 0x54, 0, 0, 0, 1}, DstMAC: [6]byte{0x52, 0x54, 0, 0, 0, 2},
			Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SPort: 40000, DPort: 80, Proto: 6, IfIndex: 12},
		{Time: 1_700_000_000_000_000_000, Kind: decoder.ProbeEventEcho, Side: decoder.ProbeSideServer,
			Outcome: decoder.ProbeOutcomeEstablished, RTT: 77,
			Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), Proto: 58, IfIndex: 3},
	}
}

func TestProbeRecordsAreMeasurementsNotTraffic(t *testing.T) {
	d, err := decoder.New(decoder.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := sampleEvents()
	var v4, v6 []byte
	for i := range evs {
		var is6 bool
		var rec []byte
		rec, is6 = probe.AppendRecord(nil, &evs[i])
		if is6 {
			v6 = append(v6, rec...)
		} else {
			v4 = append(v4, rec...)
		}
	}
	msg := probeMessage(true, dataSet(probe.TemplateIPv4, v4), dataSet(probe.TemplateIPv6, v6))
	var b decoder.Batch
	if err := d.Decode(decoder.SourceIPFIX, probeFrom, msg, 42, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Records) != 0 {
		t.Fatalf("probe records decoded as traffic: %+v", b.Records)
	}
	if len(b.Measurements) != 2 || b.Header.DataRecords != 2 {
		t.Fatalf("measurements %d, data records %d", len(b.Measurements), b.Header.DataRecords)
	}
	m := b.Measurements[0]
	e := evs[0]
	if m.Time != e.Time || m.Event != e.Kind || m.Side != e.Side || m.Outcome != e.Outcome || m.Retries != 1 || m.RTT != 2345 || m.AckRTT != 2100 ||
		m.SrcIP != e.Src || m.DstIP != e.Dst || m.SrcPort != 40000 || m.DstPort != 80 || m.Proto != 6 || m.IfIndex != 12 ||
		m.SrcMAC != e.SrcMAC || m.DstMAC != e.DstMAC || m.Exporter != probeFrom.Addr() || m.ObsDomain != 5 || m.Received != 42 {
		t.Errorf("v4 measurement %+v from %+v", m, e)
	}
	if m := b.Measurements[1]; m.SrcIP != evs[1].Src || m.RTT != 77 || m.Event != decoder.ProbeEventEcho {
		t.Errorf("v6 measurement %+v", m)
	}
	// later messages: the template is known
	if err := d.Decode(decoder.SourceIPFIX, probeFrom, probeMessage(false, dataSet(probe.TemplateIPv4, v4)), 43, &b); err != nil || len(b.Measurements) != 1 {
		t.Fatalf("second message: %v, %d", err, len(b.Measurements))
	}
}

// FuzzProbeRecords: hostile data sets under the probe's templates (and
// hostile templates) never crash the decoder and never become traffic.
func FuzzProbeRecords(f *testing.F) {
	evs := sampleEvents()
	rec, _ := probe.AppendRecord(nil, &evs[0])
	f.Add(rec, uint16(probe.TemplateIPv4))
	rec6, _ := probe.AppendRecord(nil, &evs[1])
	f.Add(rec6, uint16(probe.TemplateIPv6))
	f.Add([]byte{0, 1, 2}, uint16(probe.TemplateIPv4))
	f.Add(append(rec, rec[:20]...), uint16(probe.TemplateIPv4))
	f.Fuzz(func(t *testing.T, recs []byte, id uint16) {
		d, err := decoder.New(decoder.DefaultConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var b decoder.Batch
		if len(recs) > 60000 {
			recs = recs[:60000]
		}
		if id < 256 {
			id = probe.TemplateIPv4
		}
		// as data under the probe's templates
		_ = d.Decode(decoder.SourceIPFIX, probeFrom, probeMessage(true, dataSet(id, recs)), 1, &b)
		if (id == probe.TemplateIPv4 || id == probe.TemplateIPv6) && len(b.Records) != 0 {
			t.Fatalf("probe-template data counted as traffic: %d records", len(b.Records))
		}
		for _, m := range b.Measurements {
			if !m.SrcIP.IsValid() || !m.DstIP.IsValid() || m.Event == 0 || m.Event > 4 {
				t.Fatalf("invalid measurement kept: %+v", m)
			}
		}
		// as a hostile message body after the probe's templates
		msg := probeMessage(true)
		msg = append(msg, recs...)
		binary.BigEndian.PutUint16(msg[2:], uint16(min(len(msg), 65535)))
		_ = d.Decode(decoder.SourceIPFIX, probeFrom, msg, 1, &b)
		for _, r := range b.Records {
			_ = r
		}
	})
}
