package decoder

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ovsTemplateMsgs is the number of messages at the start of the capture that
// carry OVS's templates (the embedded ovstemplates/ovs-3.1.ipfix).
const ovsTemplateMsgs = 19

func TestBuiltinOVSTemplates(t *testing.T) {
	dgs := readCaptureUDP(t, fxIPFIXCapture, 4739)
	var embedded []byte
	for _, d := range dgs[:ovsTemplateMsgs] {
		embedded = append(embedded, d.Payload...)
	}
	require.Equal(t, embedded, ovsTemplateMessages, "the embedded file is the capture's template messages")

	// The built-in table holds exactly the templates the capture defines.
	f, _ := fxNewFlow(t, nil)
	fxDecodeCapture(t, f)
	want := map[uint16][]tmplField{}
	for k, d := range f.domains {
		for id, tm := range d.templates {
			if k.domain == 123 || tm.options {
				if _, dup := want[id]; !dup || !tm.options {
					want[id] = tm.fields
				}
			}
		}
	}
	got := map[uint16][]tmplField{}
	for id, tm := range builtinOVSTemplates() {
		got[id] = tm.fields
	}
	require.GreaterOrEqual(t, len(got), 48, "OVS 3.1 sends 48 data templates")
	assert.Empty(t, cmp.Diff(want, got, cmp.AllowUnexported(tmplField{})))
}

// fxRecordsOf decodes msgs in order with f and returns every record.
func fxRecordsOf(t *testing.T, f *flowDecoder, dgs []capturedDatagram) []Record {
	t.Helper()
	var out []Record
	var b Batch
	for i, d := range dgs {
		require.NoError(t, f.Decode(SourceIPFIX, d.From, d.Payload, d.Received, &b), "datagram %d", i)
		out = append(out, b.Records...)
	}
	return out
}

// A collector that starts after OVS sent its templates (OVS repeats them
// only every 10 minutes) still decodes OVS's data: the records are those a
// collector that saw the templates decodes, field by field.
func TestDataBeforeTemplateUsesOVSTemplates(t *testing.T) {
	dgs := readCaptureUDP(t, fxIPFIXCapture, 4739)
	ref, _ := fxNewFlow(t, nil)
	all := fxRecordsOf(t, ref, dgs)
	refUnknown := fxCount(ref.m.unknownTemplate[0])

	f, _ := fxNewFlow(t, nil)
	late := fxRecordsOf(t, f, dgs[ovsTemplateMsgs:])
	require.NotEmpty(t, late)
	assert.Equal(t, all, late, "records decoded with the built-in templates")
	assert.Equal(t, refUnknown, fxCount(f.m.unknownTemplate[0]), "no more sets skipped than with the templates")
	assert.Positive(t, fxCount(f.m.assumedTemplate[0]))
	assert.Equal(t, fxCount(ref.m.records[0]), fxCount(f.m.records[0]))

	// Off: every data set is skipped and counted.
	off, _ := fxNewFlow(t, func(c *FlowConfig) { c.AssumeOVSTemplates = false })
	assert.Empty(t, fxRecordsOf(t, off, dgs[ovsTemplateMsgs:]))
	assert.Zero(t, fxCount(off.m.assumedTemplate[0]))
	assert.Greater(t, fxCount(off.m.unknownTemplate[0]), refUnknown)

	// Once the exporter's own templates arrive they are used.
	for _, d := range dgs[:ovsTemplateMsgs] {
		var b Batch
		require.NoError(t, f.Decode(SourceIPFIX, d.From, d.Payload, d.Received, &b))
	}
	before := fxCount(f.m.assumedTemplate[0])
	fxRecordsOf(t, f, dgs[ovsTemplateMsgs:])
	assert.Equal(t, before, fxCount(f.m.assumedTemplate[0]), "the real templates are used once known")
}

// A data set that does not fit OVS's template of its id exactly is not
// guessed at: it is skipped and counted as unknown.
func TestAssumedTemplateMustFitExactly(t *testing.T) {
	dgs := readCaptureUDP(t, fxIPFIXCapture, 4739)
	// the first data message of the flow domain
	var msg []byte
	for _, d := range dgs[ovsTemplateMsgs:] {
		if binary.BigEndian.Uint32(d.Payload[12:]) == 123 {
			msg = d.Payload
			break
		}
	}
	require.NotNil(t, msg)
	setID := binary.BigEndian.Uint16(msg[16:])
	setLen := int(binary.BigEndian.Uint16(msg[18:]))
	require.GreaterOrEqual(t, setID, uint16(256))
	body := msg[20 : 16+setLen]

	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"trailing non-zero bytes", fxCat(body, []byte{1, 2, 3})},
		{"a record cut short", body[:len(body)-1]},
		{"another exporter's layout", fxBasicRecord("10.0.0.1", "10.0.0.2", 1, 2, 6, 0, 1, 100, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := fxNewFlow(t, nil)
			var b Batch
			require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 1, 123, fxSet(setID, tc.body)), 0, &b))
			assert.Empty(t, b.Records)
			assert.Equal(t, 1.0, fxCount(f.m.unknownTemplate[0]))
			assert.Zero(t, fxCount(f.m.assumedTemplate[0]))
		})
	}
	// The untouched set decodes.
	f, _ := fxNewFlow(t, nil)
	var b Batch
	require.NoError(t, f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 1, 123, fxSet(setID, body)), 0, &b))
	assert.NotEmpty(t, b.Records)
	assert.Equal(t, 1.0, fxCount(f.m.assumedTemplate[0]))
}
