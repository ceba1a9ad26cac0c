package blast

import "encoding/binary"

// IPFIX replay support: which messages carry templates (sent first, once
// per socket), how many data records each message holds (what its
// successor's sequence number must count) and where the header fields
// that are rewritten sit.

// IPFIXHeader is the fixed header of an IPFIX message (RFC 7011 3.1).
type IPFIXHeader struct {
	Length     int
	ExportTime uint32 // unix seconds
	Sequence   uint32 // data records sent before this message, per domain
	Domain     uint32 // observation domain id
}

// Offsets of the IPFIX header fields the sender rewrites.
const (
	ipfixExportTimeOffset = 4
	ipfixSeqOffset        = 8
)

// ParseIPFIXHeader reads an IPFIX message header: version 10, a length that
// fits the datagram.
func ParseIPFIXHeader(b []byte) (IPFIXHeader, bool) {
	if len(b) < 16 || binary.BigEndian.Uint16(b) != 10 {
		return IPFIXHeader{}, false
	}
	h := IPFIXHeader{
		Length:     int(binary.BigEndian.Uint16(b[2:])),
		ExportTime: binary.BigEndian.Uint32(b[4:]),
		Sequence:   binary.BigEndian.Uint32(b[8:]),
		Domain:     binary.BigEndian.Uint32(b[12:]),
	}
	if h.Length < 16 || h.Length > len(b) {
		return IPFIXHeader{}, false
	}
	return h, true
}

// IPFIXMessage is what the sender needs to know of one IPFIX message.
type IPFIXMessage struct {
	Header IPFIXHeader
	// Setup: the message carries a template or options template set, or
	// options data (exporter statistics, sampling): it is sent once per
	// socket before the flow data.
	Setup bool
	// Records counts the data records (flow and options) the sequence
	// number of the next message must count; FlowRecords the flow records
	// only.
	Records, FlowRecords int
}

type ipfixTmplKey struct {
	domain uint32
	id     uint16
}

type ipfixTmpl struct {
	options bool
	lens    []uint16 // field lengths; 0xffff: variable length
}

// AnalyzeIPFIX walks payloads in order, learning templates as an exporter's
// collector would, and describes each message; ok is false for a payload
// that is not a well-formed IPFIX message. Records of a data set whose
// template was not seen before it are not counted.
func AnalyzeIPFIX(payloads [][]byte) ([]IPFIXMessage, bool) {
	tmpls := map[ipfixTmplKey]ipfixTmpl{}
	out := make([]IPFIXMessage, len(payloads))
	for i, p := range payloads {
		h, ok := ParseIPFIXHeader(p)
		if !ok {
			return nil, false
		}
		m := IPFIXMessage{Header: h}
		body := p[16:h.Length]
		for len(body) > 0 {
			if len(body) < 4 {
				return nil, false
			}
			id := binary.BigEndian.Uint16(body)
			slen := int(binary.BigEndian.Uint16(body[2:]))
			if slen < 4 || slen > len(body) {
				return nil, false
			}
			set := body[4:slen]
			body = body[slen:]
			switch {
			case id == 2 || id == 3:
				m.Setup = true
				if !readTemplates(tmpls, h.Domain, set, id == 3) {
					return nil, false
				}
			case id >= 256:
				t, known := tmpls[ipfixTmplKey{h.Domain, id}]
				if !known {
					continue
				}
				n := countRecords(t.lens, set)
				m.Records += n
				if t.options {
					m.Setup = m.Setup || n > 0
				} else {
					m.FlowRecords += n
				}
			}
		}
		out[i] = m
	}
	return out, true
}

func readTemplates(tmpls map[ipfixTmplKey]ipfixTmpl, domain uint32, set []byte, options bool) bool {
	for len(set) >= 4 {
		id := binary.BigEndian.Uint16(set)
		count := int(binary.BigEndian.Uint16(set[2:]))
		if id < 256 && count == 0 {
			return true // padding or a withdrawal of all
		}
		p := set[4:]
		if options {
			if len(p) < 2 {
				return false
			}
			p = p[2:]
		}
		t := ipfixTmpl{options: options, lens: make([]uint16, 0, count)}
		for range count {
			if len(p) < 4 {
				return false
			}
			ie, l := binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
			p = p[4:]
			if ie&0x8000 != 0 {
				if len(p) < 4 {
					return false
				}
				p = p[4:]
			}
			t.lens = append(t.lens, l)
		}
		if count == 0 {
			delete(tmpls, ipfixTmplKey{domain, id})
		} else {
			tmpls[ipfixTmplKey{domain, id}] = t
		}
		set = p
	}
	return true
}

// countRecords counts the complete records of a data set (what is left
// over is padding).
func countRecords(lens []uint16, set []byte) int {
	n := 0
	for {
		pos := 0
		for _, l := range lens {
			if l == 0xffff {
				if pos >= len(set) {
					return n
				}
				vl := int(set[pos])
				pos++
				if vl == 255 {
					if pos+2 > len(set) {
						return n
					}
					vl = int(binary.BigEndian.Uint16(set[pos:]))
					pos += 2
				}
				pos += vl
			} else {
				pos += int(l)
			}
			if pos > len(set) {
				return n
			}
		}
		if pos == 0 {
			return n // a template of zero-length fields: nothing to count
		}
		n++
		set = set[pos:]
	}
}
