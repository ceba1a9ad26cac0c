package decoder

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flowHazard is one crafted IPFIX or NetFlow v9 datagram shipped in
// testdata/hazards (sent by the end-to-end hostile test,
// test/integration/hostile_test.go) and what decoding it alone must give.
type flowHazard struct {
	src  Source
	data []byte
	// err: the datagram is malformed (a decode error of this reason);
	// otherwise it is accepted.
	err    bool
	reason errReason
}

// ipfixLengthBeyond is a well-formed IPFIX message (a template set and a
// data set) whose header claims 65535 bytes.
func ipfixLengthBeyond() []byte {
	m := fxIPFIX(1, 1, 1, fxSet(2, fxTmpl(true, 307, fxBasicFields...)),
		fxSet(307, fxBasicRecord("192.0.2.1", "192.0.2.2", 1, 2, 17, 0, 1, 100, 0, 0)))
	binary.BigEndian.PutUint16(m[2:], 0xffff)
	return m
}

// flowHazardDatagrams are the IPFIX and NetFlow v9 hazard files (without
// .bin). All use observation domain / source id 1.
func flowHazardDatagrams() map[string]flowHazard {
	return map[string]flowHazard{
		"ipfix-zero-field-template":    {src: SourceIPFIX, data: fxZeroFieldIPFIX()},
		"ipfix-all-varlen-template":    {src: SourceIPFIX, data: fxAllVarIPFIX()},
		"ipfix-huge-varlen":            {src: SourceIPFIX, data: fxHugeVarLenIPFIX(), err: true, reason: errRecordTruncated},
		"ipfix-huge-field-count":       {src: SourceIPFIX, data: fxHugeCountIPFIX(), err: true, reason: errTemplateMalformed},
		"ipfix-huge-scope-count":       {src: SourceIPFIX, data: fxHugeScopeIPFIX(), err: true, reason: errTemplateMalformed},
		"ipfix-length-beyond-datagram": {src: SourceIPFIX, data: ipfixLengthBeyond(), err: true, reason: errLength},
		"ipfix-65000-records":          {src: SourceIPFIX, data: fxTinyRecordsIPFIX()},
		"nf9-zero-field-template":      {src: SourceNetFlow9, data: fxZeroFieldNF9()},
		// a template announcing 65535 fields in a 12-byte set
		"nf9-huge-field-count": {src: SourceNetFlow9, err: true, reason: errTemplateMalformed,
			data: fxNF9(1, 1, 1, 1, fxSet(0, fxCat(fxU16(310), fxU16(0xffff), fxU32(0x00080004))))},
		// an options template with scope and option lengths of 65532 bytes
		// (32,766 fields) in a 14-byte set
		"nf9-huge-options-lengths": {src: SourceNetFlow9, err: true, reason: errTemplateMalformed,
			data: fxNF9(1, 1, 1, 1, fxSet(1, fxCat(fxU16(311), fxU16(0xfffc), fxU16(0xfffc), fxU32(0x00010004))))},
		// a valid template, then a data FlowSet claiming 65535 bytes
		"nf9-set-length-beyond": {src: SourceNetFlow9, err: true, reason: errSetLength,
			data: fxCat(fxNF9(1, 1, 1, 1, fxSet(0, fxTmpl(false, 312, fxField{8, 4, 0}))), fxU16(312), fxU16(0xffff), bytes.Repeat([]byte{10}, 8))},
	}
}

// TestFlowHazardFiles checks that testdata/hazards holds exactly what
// flowHazardDatagrams generates (VMFLOW_WRITE_HAZARDS=1 rewrites the
// files) and that each file, decoded alone by a fresh decoder, is rejected
// or accepted as its table entry says, within bounded allocation.
func TestFlowHazardFiles(t *testing.T) {
	dir := "../testdata/hazards"
	gen := flowHazardDatagrams()
	if os.Getenv("VMFLOW_WRITE_HAZARDS") == "1" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for name, h := range gen {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name+".bin"), h.data, 0o644))
		}
	}
	for name, h := range gen {
		got, err := os.ReadFile(filepath.Join(dir, name+".bin"))
		require.NoError(t, err, "hazard file missing: run with VMFLOW_WRITE_HAZARDS=1")
		require.Equal(t, h.data, got, name)
		f, _ := fxNewFlow(t, nil)
		var b Batch
		err = fxDecodeWithin(t, f, h.src, fxExpA, got, &b)
		si := 0
		if h.src == SourceNetFlow9 {
			si = 1
		}
		if h.err {
			require.Error(t, err, name)
			assert.Equal(t, 1.0, fxCount(f.m.errors[si][h.reason]), name)
		} else {
			require.NoError(t, err, name)
		}
	}
}
