package decoder

import (
	_ "embed"
	"encoding/binary"
	"net/netip"
	"sync"
)

// OVS's own templates, for data that arrives before its template.
//
// Open vSwitch sends its IPFIX templates when an exporter starts and then
// only every 600 seconds (IPFIX_TEMPLATE_INTERVAL in ofproto-dpif-ipfix.c,
// not configurable). A collector that starts, restarts or loses the
// template datagram would skip up to ten minutes of OVS's flow records as
// "unknown template". OVS's template set is fixed by its version: one
// template per (L2, L3, L4, tunnel) combination, ids 256 and up, the same on
// every bridge and observation domain. So when a data set's template is
// unknown, vmflow may decode it with the template OVS uses for that id, but
// only if the set's records fill it exactly (variable-length fields
// included; what is left is zero padding shorter than a record). A set that
// does not fit stays skipped as unknown. The exporter's real template, when
// it arrives, is always used instead.
//
// ovstemplates/ovs-3.1.ipfix holds the template messages (sets 2 and 3) of
// Open vSwitch 3.1 exactly as captured in testdata/ovs-lab-1 (the first 19
// messages of ovs-ipfix1.pcapng, concatenated; each message carries its
// own length).

//go:embed ovstemplates/ovs-3.1.ipfix
var ovsTemplateMessages []byte

var (
	ovsTemplatesOnce sync.Once
	ovsTemplates     map[uint16]*flowTemplate
)

// builtinOVSTemplates parses the embedded messages once, with the decoder's
// own template validation.
func builtinOVSTemplates() map[uint16]*flowTemplate {
	ovsTemplatesOnce.Do(func() {
		ovsTemplates = parseTemplateMessages(ovsTemplateMessages)
	})
	return ovsTemplates
}

func parseTemplateMessages(msgs []byte) map[uint16]*flowTemplate {
	cfg := DefaultFlowConfig()
	cfg.TemplateLifetime = 0
	cfg.AssumeOVSTemplates = false // (and no data here: no recursion)
	out := map[uint16]*flowTemplate{}
	f, err := newFlowDecoder(cfg, nil)
	if err != nil {
		return out // cannot happen with the defaults; no fallback then
	}
	from := netip.MustParseAddrPort("192.0.2.1:4739")
	var b Batch
	for len(msgs) >= ipfixHeaderLen {
		n := int(binary.BigEndian.Uint16(msgs[2:]))
		if n < ipfixHeaderLen || n > len(msgs) {
			break // tested: TestBuiltinOVSTemplates
		}
		_ = f.Decode(SourceIPFIX, from, msgs[:n], 0, &b)
		msgs = msgs[n:]
	}
	// Data templates first: should an options template (OVS's domain 0)
	// share an id, the data template wins.
	for _, options := range []bool{false, true} {
		for _, d := range f.domains {
			for id, t := range d.templates {
				if _, dup := out[id]; t.options == options && !dup {
					out[id] = t
				}
			}
		}
	}
	return out
}

// assumedTemplate returns OVS's template for id when it exactly fits set.
func (f *flowDecoder) assumedTemplate(c *msgCtx, id uint16, set []byte) *flowTemplate {
	if !f.cfg.AssumeOVSTemplates || c.version != 10 {
		return nil
	}
	t := builtinOVSTemplates()[id]
	if t == nil || !fitsExactly(t, set) {
		return nil
	}
	return t
}

// fitsExactly reports whether set is one or more records of t followed by
// zero padding shorter than a record.
func fitsExactly(t *flowTemplate, set []byte) bool {
	records := 0
	for len(set) >= t.minLen {
		n, ok := recordLen(t, set)
		if !ok || n <= 0 {
			return false
		}
		set = set[n:]
		records++
	}
	return records > 0 && flowAllZero(set)
}
