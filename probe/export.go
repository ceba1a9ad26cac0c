package probe

import (
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/vmflow/vmflow/decoder"
)

// IPFIX export of the measurements (RFC 7011): template 256 for IPv4
// endpoints, 257 for IPv6, both fixed-length.
const (
	TemplateIPv4 = 256
	TemplateIPv6 = 257

	maxMessage = 1400 // stays under a 1500-byte MTU with IP/UDP headers
)

type field struct {
	ie     uint16
	length uint16
	pen    uint32
}

func templateFields(v6 bool) []field {
	src, dst, alen, icmp := uint16(8), uint16(12), uint16(4), uint16(32)
	if v6 {
		src, dst, alen, icmp = 27, 28, 16, 139
	}
	p := decoder.ProbePEN
	return []field{
		{decoder.IEObservationTimeMicroseconds, 8, 0},
		{56, 6, 0}, {80, 6, 0},
		{src, alen, 0}, {dst, alen, 0},
		{7, 2, 0}, {11, 2, 0}, {4, 1, 0},
		{decoder.IEIngressInterface, 4, 0},
		{icmp, 2, 0},
		{decoder.IEProbeEvent, 1, p}, {decoder.IEProbeSide, 1, p}, {decoder.IEProbeOutcome, 1, p},
		{decoder.IEProbeRTTMicroseconds, 4, p}, {decoder.IEProbeSYNRetransmissions, 1, p},
		{decoder.IEProbeAckMicroseconds, 4, p},
	}
}

func recordLen(v6 bool) int {
	n := 0
	for _, f := range templateFields(v6) {
		n += int(f.length)
	}
	return n
}

// maxRecordLen is the IPv6 record's length.
var maxRecordLen = recordLen(true)

// TemplateSet returns the template set announcing both templates.
func TemplateSet() []byte {
	b := []byte{0, 2, 0, 0}
	for i, v6 := range []bool{false, true} {
		fs := templateFields(v6)
		b = binary.BigEndian.AppendUint16(b, uint16(TemplateIPv4+i))
		b = binary.BigEndian.AppendUint16(b, uint16(len(fs)))
		for _, f := range fs {
			if f.pen != 0 {
				b = binary.BigEndian.AppendUint16(b, f.ie|0x8000)
				b = binary.BigEndian.AppendUint16(b, f.length)
				b = binary.BigEndian.AppendUint32(b, f.pen)
				continue
			}
			b = binary.BigEndian.AppendUint16(b, f.ie)
			b = binary.BigEndian.AppendUint16(b, f.length)
		}
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// AppendRecord appends ev's data record (of template TemplateIPv6 when
// either address is IPv6, else TemplateIPv4) and reports which.
func AppendRecord(b []byte, ev *Event) ([]byte, bool) {
	v6 := !ev.Src.Is4() || !ev.Dst.Is4()
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Time/1000))
	b = append(b, ev.SrcMAC[:]...)
	b = append(b, ev.DstMAC[:]...)
	if v6 {
		s, d := ev.Src.As16(), ev.Dst.As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	} else {
		s, d := ev.Src.As4(), ev.Dst.As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, ev.SPort)
	b = binary.BigEndian.AppendUint16(b, ev.DPort)
	b = append(b, ev.Proto)
	b = binary.BigEndian.AppendUint32(b, ev.IfIndex)
	b = append(b, ev.ICMPType, ev.ICMPCode)
	b = append(b, ev.Kind, ev.Side, ev.Outcome)
	b = binary.BigEndian.AppendUint32(b, ev.RTT)
	b = append(b, ev.Retries)
	b = binary.BigEndian.AppendUint32(b, ev.AckRTT)
	return b, v6
}

// exporter batches records into IPFIX messages and sends them over UDP.
type exporter struct {
	mu       sync.Mutex
	conn     net.Conn
	domain   uint32
	m        *metrics
	tmpl     []byte
	tmplDue  time.Time
	tmplEach time.Duration
	sets     [2][]byte // records of template 256, 257
	nrec     [2]int
	seq      uint32
	msg      []byte
	now      func() time.Time
}

func newExporter(conn net.Conn, domain uint32, tmplEach time.Duration, m *metrics) *exporter {
	e := &exporter{conn: conn, domain: domain, m: m, tmpl: TemplateSet(), tmplEach: tmplEach, now: time.Now,
		msg: make([]byte, 0, 2*maxMessage)}
	for i := range e.sets {
		e.sets[i] = make([]byte, 0, maxMessage)
	}
	return e
}

// add queues one record, sending a message when it would grow too large.
func (e *exporter) add(ev *Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.size()+maxRecordLen > maxMessage {
		e.flushLocked()
	}
	var v6 bool
	i := len(e.sets[0])
	e.sets[0], v6 = AppendRecord(e.sets[0], ev)
	if v6 { // move it to the IPv6 set
		e.sets[1] = append(e.sets[1], e.sets[0][i:]...)
		e.sets[0] = e.sets[0][:i]
		e.nrec[1]++
		return
	}
	e.nrec[0]++
}

func (e *exporter) size() int {
	n := 16 + 8 + len(e.sets[0]) + len(e.sets[1])
	if !e.now().Before(e.tmplDue) {
		n += len(e.tmpl)
	}
	return n
}

func (e *exporter) flush() {
	e.mu.Lock()
	e.flushLocked()
	e.mu.Unlock()
}

func (e *exporter) flushLocked() {
	now := e.now()
	sendTmpl := !now.Before(e.tmplDue)
	if e.nrec[0]+e.nrec[1] == 0 && !sendTmpl {
		return
	}
	m := e.msg[:0]
	m = append(m, 0, 10, 0, 0)
	m = binary.BigEndian.AppendUint32(m, uint32(now.Unix()))
	m = binary.BigEndian.AppendUint32(m, e.seq)
	m = binary.BigEndian.AppendUint32(m, e.domain)
	if sendTmpl {
		m = append(m, e.tmpl...)
	}
	for i := range e.sets {
		if e.nrec[i] == 0 {
			continue
		}
		m = binary.BigEndian.AppendUint16(m, uint16(TemplateIPv4+i))
		m = binary.BigEndian.AppendUint16(m, uint16(4+len(e.sets[i])))
		m = append(m, e.sets[i]...)
	}
	binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
	n := e.nrec[0] + e.nrec[1]
	e.msg = m
	if _, err := e.conn.Write(m); err != nil {
		e.m.expErrors.Inc()
	} else {
		e.m.expDgrams.Inc()
		e.m.expRecords.Add(float64(n))
		if sendTmpl {
			e.tmplDue = now.Add(e.tmplEach)
		}
	}
	e.seq += uint32(n)
	for i := range e.sets {
		e.sets[i] = e.sets[i][:0]
		e.nrec[i] = 0
	}
}
