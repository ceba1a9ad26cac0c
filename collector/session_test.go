package collector

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flowFeed feeds IPFIX message metadata into an exporter table in arrival
// order, as the workers do after the handler.
type flowFeed struct {
	t       *exporterTable
	c       *exporterCache
	from    netip.AddrPort
	arrival uint64
	now     int64
}

func newFlowFeed() *flowFeed {
	t := newExporterTable(100)
	return &flowFeed{t: t, c: newExporterCache(t), from: netip.MustParseAddrPort("192.0.2.7:60536"), now: 1e18}
}

// msg is one IPFIX message: its domain, sequence and data records (-1: a
// data set whose template is unknown, so its records are not counted).
func (f *flowFeed) msg(domain, seq uint32, records int) {
	f.arrival++
	f.now++
	d := Datagram{Proto: ProtoIPFIX, From: f.from, Received: f.now}
	m := Meta{Version: 10, ObsDomain: domain, SeqKind: SeqRecords, Sequence: seq, Records: max(records, 0),
		RecordsUnknown: records < 0, Samples: max(records, 0)}
	f.c.record(&d, &m, false, f.arrival)
	f.c.flush()
}

func (f *flowFeed) exporters(t testing.TB) map[uint32]ExporterStatus {
	t.Helper()
	out := map[uint32]ExporterStatus{}
	for _, e := range f.t.snapshot() {
		out[e.ObsDomain] = e
	}
	return out
}

// ovsExporter numbers IPFIX messages the way Open vSwitch 3.1 does
// (ofproto-dpif-ipfix.c): one counter per exporting process, starting at 1,
// whatever the observation domain; template messages carry the counter
// without advancing it; every data message holds one record and advances
// it; with the templates (at start and every 600 s) comes an exporting
// process statistics message in observation domain 0.
type ovsExporter struct {
	f      *flowFeed
	domain uint32
	seq    uint32
}

func (o *ovsExporter) templates() {
	o.f.msg(o.domain, o.seq, 0) // templates of the flow domain
	o.f.msg(0, o.seq, 0)        // options template of domain 0
	o.f.msg(0, o.seq, 1)        // exporting process statistics
	o.seq++
}

func (o *ovsExporter) data(n int) {
	for range n {
		o.f.msg(o.domain, o.seq, 1)
		o.seq++
	}
}

func lossOf(e ExporterStatus) [4]uint64 {
	return [4]uint64{e.LostDatagrams, e.LostRecords, e.Reordered, e.Restarts}
}

// TestSharedCounterOVS: OVS's one counter over domains 101 and 0 used to
// show a lost record in domain 101 at start and after every template
// refresh, and domain 0 lost (or restarted over) everything domain 101
// sent in between. Neither lost anything.
func TestSharedCounterOVS(t *testing.T) {
	f := newFlowFeed()
	o := &ovsExporter{f: f, domain: 101, seq: 1}
	o.templates()
	o.data(500)
	o.templates()
	o.data(300)
	o.templates()
	o.data(10)

	ex := f.exporters(t)
	require.Len(t, ex, 2, "domain 0 is a real exporter of OVS's: %+v", ex)
	assert.Equal(t, [4]uint64{}, lossOf(ex[101]), "%+v", ex[101])
	assert.Equal(t, [4]uint64{}, lossOf(ex[0]), "%+v", ex[0])
	assert.Equal(t, uint64(3*2), ex[0].Datagrams)
	assert.Equal(t, uint64(3+810), ex[101].Datagrams)
	assert.Equal(t, o.seq-1, ex[101].LastSequence)
	assert.Equal(t, 0.0, f.t.lost(ProtoIPFIX))

	// A real loss in the shared stream is counted once, on the busy domain.
	o.seq += 3 // three data messages lost
	o.data(5)
	ex = f.exporters(t)
	assert.Equal(t, [4]uint64{3, 3, 0, 0}, lossOf(ex[101]))
	assert.Equal(t, [4]uint64{}, lossOf(ex[0]))
	assert.Equal(t, 3.0, f.t.lost(ProtoIPFIX))

	// So is the loss of a domain-0 message, and a late message is
	// reordering, not loss.
	o.f.msg(o.domain, o.seq, 0)
	o.seq++ // the statistics message is lost
	o.data(1)
	o.seq++
	o.data(1)                // the one before it comes late:
	o.f.msg(101, o.seq-2, 1) // not lost
	ex = f.exporters(t)
	assert.Equal(t, [4]uint64{4, 4, 1, 0}, lossOf(ex[101]))
	assert.Equal(t, [4]uint64{}, lossOf(ex[0]))
}

// TestIndependentDomainCounters: an exporter that follows RFC 7011 (one
// counter per observation domain, counting records) keeps per-domain loss;
// the session view must not hide or move it.
func TestIndependentDomainCounters(t *testing.T) {
	f := newFlowFeed()
	var seq [2]uint32
	for i := range 200 {
		for dom := range 2 {
			n := 1 + (i+dom)%5
			if (dom == 0 && i == 50) || (dom == 1 && (i == 70 || i == 120)) {
				seq[dom] += uint32(n) // this message is lost
				continue
			}
			f.msg(uint32(dom+1), seq[dom], n)
			seq[dom] += uint32(n)
		}
	}
	ex := f.exporters(t)
	require.Len(t, ex, 2)
	// domain 1 lost the message of i=50 (1+50%5 = 1 record), domain 2 those
	// of i=70 and i=120 (1+71%5 = 2 records each)
	assert.Equal(t, uint64(1), ex[1].LostRecords)
	assert.Equal(t, uint64(4), ex[2].LostRecords)
	// (lost datagrams are estimated: records / 3 records per message)
	assert.Equal(t, uint64(0), ex[1].LostDatagrams)
	assert.Equal(t, uint64(1), ex[2].LostDatagrams)
	assert.Zero(t, ex[1].Restarts+ex[2].Restarts+ex[1].Reordered+ex[2].Reordered)
}

// TestUnknownRecordCount: until the templates arrive, the decoder cannot
// count the records of a message, so the sequence of the next one is no
// evidence of loss; once the count is known again, loss is.
func TestUnknownRecordCount(t *testing.T) {
	f := newFlowFeed()
	seq := uint32(1000)
	for range 20 { // collector started after the exporter: templates unknown
		f.msg(5, seq, -1)
		seq += 3
	}
	f.msg(5, seq, 0) // the templates
	for range 20 {
		f.msg(5, seq, 3)
		seq += 3
	}
	ex := f.exporters(t)
	require.Len(t, ex, 1)
	assert.Equal(t, [4]uint64{}, lossOf(ex[5]), "%+v", ex[5])

	seq += 6 // two messages lost
	f.msg(5, seq, 3)
	ex = f.exporters(t)
	assert.Equal(t, uint64(6), ex[5].LostRecords)
	assert.Equal(t, uint64(2), ex[5].LostDatagrams)
}

// TestUnknownRecordCountLate: a message of unknown size handled after the
// next one (overtaken in the worker pool) covers the gap the next one left.
func TestUnknownRecordCountLate(t *testing.T) {
	var tr seqTracker
	tr.update(SeqRecords, 10, -1, 0, 1)
	tr.update(SeqRecords, 14, -1, 0, 3)
	tr.update(SeqRecords, 20, 2, 0, 4) // after one of unknown size: no loss
	assert.Zero(t, tr.lost)
	tr.update(SeqRecords, 30, 2, 0, 6) // a gap [22, 30)...
	assert.Equal(t, uint64(8), tr.lost)
	tr.update(SeqRecords, 25, -1, 0, 5) // ...whose end [25, 30) arrives late
	assert.Equal(t, uint64(3), tr.lost)
	assert.Zero(t, tr.reordered, "overtaken in the pool")
}

// TestSharedCounterExpiry: when the busy domain of a shared-counter session
// expires, its loss stays in the gauge once, and the remaining domain does
// not show it again.
func TestSharedCounterExpiry(t *testing.T) {
	f := newFlowFeed()
	o := &ovsExporter{f: f, domain: 101, seq: 1}
	o.templates()
	o.data(100)
	o.seq += 2 // lost
	o.data(100)
	o.templates()
	require.Equal(t, 2.0, f.t.lost(ProtoIPFIX))

	// domain 101 goes quiet; domain 0 keeps sending
	cutoff := f.now + 1
	o.f.msg(0, o.seq, 1)
	o.seq++
	require.Equal(t, 1, f.t.expire(cutoff))
	ex := f.exporters(t)
	require.Len(t, ex, 1)
	assert.Equal(t, [4]uint64{}, lossOf(ex[0]), "%+v", ex[0])
	assert.Equal(t, 2.0, f.t.lost(ProtoIPFIX))
}

// BenchmarkExporterRecordIPFIX is the per-datagram exporter update of an
// IPFIX exporter with a shared-counter session (OVS: domains 101 and 0):
// domain tracker plus session tracker. allocs/op must be 0.
func BenchmarkExporterRecordIPFIX(b *testing.B) {
	f := newFlowFeed()
	o := &ovsExporter{f: f, domain: 101, seq: 1}
	o.templates()
	o.data(100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o.data(1)
	}
	b.StopTimer()
	if ex := f.exporters(b); ex[101].LostRecords != 0 {
		b.Fatalf("%+v", ex)
	}
}
