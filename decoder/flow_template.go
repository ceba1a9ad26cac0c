package decoder

import (
	"encoding/binary"
	"sync/atomic"
)

// flowVarLen is the field length that marks an IPFIX variable-length field.
const flowVarLen = 0xffff

// tmplField is one field of a validated template.
type tmplField struct {
	ie     uint16 // information element id (enterprise bit cleared)
	length uint16 // flowVarLen for variable length
	pen    uint32 // enterprise number, 0 for IANA elements
	kind   fieldKind
}

// flowTemplate is a validated (options) template. It is immutable once
// published except lastSeen.
type flowTemplate struct {
	id      uint16
	options bool
	scope   uint16 // options templates: scope field count (first fields)
	fields  []tmplField
	// minLen is the smallest record: fixed lengths plus one length byte per
	// variable-length field. Always > 0.
	minLen   int
	variable bool // has variable-length fields; otherwise minLen is the record length
	probe    bool // a vmflow probe template: records are Measurements (probe_decode.go)
	lastSeen atomic.Int64
	// segs and ops are the field table the record decoder walks: a
	// segment is a run of fixed-length fields followed by at most one
	// variable-length field; ops lists the mapped fixed fields of all
	// segments with their offsets in their segment.
	segs []tmplSeg
	ops  []tmplOp
	// dirOff is the offset of the record's only flowDirection field when
	// it is at a fixed offset (before any variable-length field), else -1:
	// a record of a direction not kept is then only measured, not decoded.
	dirOff int
}

type tmplSeg struct {
	fixed       int32 // bytes of fixed-length fields
	first, last int32 // this segment's mapped fields: ops[first:last]
	hasVar      bool  // a variable-length field follows
	varKind     fieldKind
}

type tmplOp struct {
	off, length int32
	kind        fieldKind
}

func buildSegments(t *flowTemplate) {
	seg := tmplSeg{}
	t.dirOff = -1
	dirs := 0
	for _, fl := range t.fields {
		if fl.kind == fkDirection {
			if dirs++; len(t.segs) == 0 {
				t.dirOff = int(seg.fixed)
			}
		}
		if fl.length == flowVarLen {
			seg.hasVar, seg.varKind = true, fl.kind
			seg.last = int32(len(t.ops))
			t.segs = append(t.segs, seg)
			seg = tmplSeg{first: int32(len(t.ops))}
			continue
		}
		if fl.kind != fkIgnore {
			t.ops = append(t.ops, tmplOp{off: seg.fixed, length: int32(fl.length), kind: fl.kind})
		}
		seg.fixed += int32(fl.length)
	}
	if seg.fixed > 0 || len(t.segs) == 0 {
		seg.last = int32(len(t.ops))
		t.segs = append(t.segs, seg)
	}
	if dirs != 1 {
		t.dirOff = -1
	}
}

// templateSet parses a template set (options: an options template set) and
// updates the scope's templates. A structurally broken set is an error; a
// well-formed template that fails validation is rejected and counted, and the
// rest of the set is still read.
func (f *flowDecoder) templateSet(c *msgCtx, set []byte, options bool) error {
	ipfix := c.version == 10
	for len(set) >= 4 {
		id := binary.BigEndian.Uint16(set)
		count := int(binary.BigEndian.Uint16(set[2:]))
		if id == 0 && count == 0 {
			if flowAllZero(set) {
				return nil // padding
			}
		}
		hdr, scope := 4, 0
		switch {
		case ipfix && count == 0:
			// RFC 7011 8.1: a template record with no fields withdraws.
			f.withdraw(c, id, options)
			set = set[4:]
			continue
		case ipfix && options:
			if len(set) < 6 {
				return f.fail(c.si, errTemplateMalformed, "options template %d: truncated header", id)
			}
			hdr, scope = 6, int(binary.BigEndian.Uint16(set[4:]))
		case !ipfix && options:
			if len(set) < 6 {
				if flowAllZero(set) {
					return nil
				}
				return f.fail(c.si, errTemplateMalformed, "options template %d: truncated header", id)
			}
			scopeLen := int(binary.BigEndian.Uint16(set[2:]))
			optLen := int(binary.BigEndian.Uint16(set[4:]))
			if scopeLen%4 != 0 || optLen%4 != 0 {
				return f.fail(c.si, errTemplateMalformed, "options template %d: scope length %d / option length %d not multiples of 4", id, scopeLen, optLen)
			}
			hdr, scope, count = 6, scopeLen/4, (scopeLen+optLen)/4
		}
		n, minLen, variable, badLen, ok := scanFields(set[hdr:], count, ipfix)
		if !ok {
			return f.fail(c.si, errTemplateMalformed, "template %d: %d fields overrun the set", id, count)
		}
		fields := set[hdr : hdr+n]
		set = set[hdr+n:]
		switch {
		case id < 256:
			f.reject(c, rejBadID, id, false)
		case count == 0:
			f.reject(c, rejNoFields, id, true)
		case count > f.cfg.MaxTemplateFields:
			f.reject(c, rejTooManyFields, id, true)
		case scope > count:
			f.reject(c, rejBadScope, id, true)
		case badLen || (variable && !ipfix):
			f.reject(c, rejBadFieldLength, id, true)
		case minLen == 0:
			f.reject(c, rejZeroLength, id, true)
		default:
			f.addTemplate(c, id, options, scope, count, fields, minLen, variable)
		}
	}
	return nil
}

// scanFields walks count field specifiers without storing them: the bytes
// they take, the minimum record length, whether any is variable length, and
// whether a length is unusable (a NetFlow v9 variable length).
func scanFields(p []byte, count int, ipfix bool) (n, minLen int, variable, badLen, ok bool) {
	for i := 0; i < count; i++ {
		if len(p)-n < 4 {
			return n, minLen, variable, badLen, false
		}
		typ := binary.BigEndian.Uint16(p[n:])
		l := binary.BigEndian.Uint16(p[n+2:])
		n += 4
		if ipfix && typ&0x8000 != 0 {
			if len(p)-n < 4 {
				return n, minLen, variable, badLen, false
			}
			n += 4
		}
		if l == flowVarLen {
			if !ipfix {
				badLen = true
			}
			variable = true
			minLen++
		} else {
			minLen += int(l)
		}
	}
	return n, minLen, variable, badLen, true
}

// reject counts a rejected template and forgets an earlier template of the
// same id, whose data the exporter no longer means.
func (f *flowDecoder) reject(c *msgCtx, r rejectReason, id uint16, forget bool) {
	f.m.rejected[c.si][r].Inc()
	if forget && c.d != nil {
		c.d.mu.Lock()
		if _, ok := c.d.templates[id]; ok {
			delete(c.d.templates, id)
			c.d.gen.Add(1)
			f.total.Add(-1)
			f.m.templates[c.si][evWithdrawn].Inc()
		}
		c.d.mu.Unlock()
	}
}

// withdraw handles an IPFIX template withdrawal: id 2 (template set) or 3
// (options template set) withdraws all templates of that kind.
func (f *flowDecoder) withdraw(c *msgCtx, id uint16, options bool) {
	all := (id == 2 && !options) || (id == 3 && options)
	if id < 256 && !all {
		f.m.rejected[c.si][rejBadID].Inc()
		return
	}
	d := c.d
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !all {
		if _, ok := d.templates[id]; ok {
			delete(d.templates, id)
			d.gen.Add(1)
			f.total.Add(-1)
			f.m.templates[c.si][evWithdrawn].Inc()
		}
		return
	}
	for tid, t := range d.templates {
		if t.options == options {
			delete(d.templates, tid)
			d.gen.Add(1)
			f.total.Add(-1)
			f.m.templates[c.si][evWithdrawn].Inc()
		}
	}
}

// addTemplate stores a validated template. Re-sending an identical template
// only refreshes its age and allocates nothing.
func (f *flowDecoder) addTemplate(c *msgCtx, id uint16, options bool, scope, count int, fields []byte, minLen int, variable bool) {
	var d *flowDomain
	for range 2 {
		if d = f.domainForTemplates(c); d == nil {
			f.m.rejected[c.si][rejExporterLimit].Inc()
			return
		}
		d.mu.Lock()
		if !d.dead {
			break
		}
		// swept meanwhile: take (or make) the live scope
		d.mu.Unlock()
		c.d, d = nil, nil
	}
	if d == nil {
		f.m.rejected[c.si][rejExporterLimit].Inc()
		return
	}
	defer d.mu.Unlock()
	old := d.templates[id]
	if old != nil && old.same(options, scope, count, fields, c.version == 10) {
		old.lastSeen.Store(c.now)
		f.m.templates[c.si][evRefreshed].Inc()
		return
	}
	if old == nil {
		// reserve a slot in the global budget (atomic: scopes lock apart)
		if len(d.templates) >= f.cfg.MaxTemplates || f.total.Add(1) > int64(f.cfg.MaxTemplatesTotal) {
			if len(d.templates) < f.cfg.MaxTemplates {
				f.total.Add(-1)
			}
			f.m.rejected[c.si][rejTemplateLimit].Inc()
			return
		}
	}
	t := &flowTemplate{
		id: id, options: options, scope: uint16(scope),
		fields: make([]tmplField, count), minLen: minLen, variable: variable,
	}
	p := 0
	for i := range t.fields {
		fl := &t.fields[i]
		fl.ie = binary.BigEndian.Uint16(fields[p:])
		fl.length = binary.BigEndian.Uint16(fields[p+2:])
		p += 4
		if c.version == 10 && fl.ie&0x8000 != 0 {
			fl.ie &^= 0x8000
			fl.pen = binary.BigEndian.Uint32(fields[p:])
			p += 4
		}
		switch {
		case !options:
			fl.kind = kindOf(fl.ie, fl.pen, fl.length, c.version)
		case i >= scope:
			fl.kind = optionKindOf(fl.ie, fl.pen, fl.length)
		}
	}
	buildSegments(t)
	t.probe = !options && isProbeTemplate(t)
	t.lastSeen.Store(c.now)
	d.templates[id] = t
	d.gen.Add(1)
	if old != nil {
		f.m.templates[c.si][evReplaced].Inc()
	} else {
		f.m.templates[c.si][evAdded].Inc()
	}
}

// same reports whether the wire field specifiers describe t.
func (t *flowTemplate) same(options bool, scope, count int, fields []byte, ipfix bool) bool {
	if t.options != options || int(t.scope) != scope || len(t.fields) != count {
		return false
	}
	p := 0
	for i := range t.fields {
		fl := &t.fields[i]
		ie := binary.BigEndian.Uint16(fields[p:])
		l := binary.BigEndian.Uint16(fields[p+2:])
		p += 4
		var pen uint32
		if ipfix && ie&0x8000 != 0 {
			ie &^= 0x8000
			pen = binary.BigEndian.Uint32(fields[p:])
			p += 4
		}
		if ie != fl.ie || l != fl.length || pen != fl.pen {
			return false
		}
	}
	return true
}
