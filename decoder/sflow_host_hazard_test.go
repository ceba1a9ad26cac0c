package decoder

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sh "github.com/vmflow/vmflow/internal/sflowhost"
)

// hostHazard is a crafted hsflowd datagram shipped in testdata/hazards (sent
// by test/integration/hostile_test.go): the error it must give and the host
// kind whose malformed counter it raises.
type hostHazard struct {
	data []byte
	err  error
	kind string
}

// hostHazardDatagrams: counts and lengths of host records past their
// bounds, each in a VM sample after a valid host_descr.
func hostHazardDatagrams() map[string]hostHazard {
	vm := func(rec []byte) []byte {
		return sh.Datagram(testAgent, 0, 1, 1, sh.CounterSample(1, sh.ClassLogical, 7, sh.HostDescr("vm", hsVMUUID, 3, 2, ""), rec))
	}
	return map[string]hostHazard{
		// 0xffffffff adapters in a 12-byte record
		"sflow-host-adapters-huge-count": {vm(sh.Record(sh.FmtHostAdapters, sh.XDR(0xffffffff, 1, 0))), ErrTruncated, "host_adapters"},
		// one adapter announcing 0xffffffff MACs
		"sflow-host-adapters-huge-macs": {vm(sh.Record(sh.FmtHostAdapters, sh.XDR(1, 1, 0xffffffff))), ErrTruncated, "host_adapters"},
		// hostname length 0xffffffff (string<64>)
		"sflow-host-descr-huge-hostname": {vm(sh.Record(sh.FmtHostDescr, sh.Cat(sh.XDR(0xffffffff), hsHostUUID[:], sh.XDR(3, 2, 0)))), ErrMalformed, "host_descr"},
		// os_release of 32 bytes announced, 4 present
		"sflow-host-descr-release-past-end": {vm(sh.Record(sh.FmtHostDescr, sh.Cat(sh.Str("vm"), hsHostUUID[:], sh.XDR(3, 2, 32), []byte("6.1.")))), ErrTruncated, "host_descr"},
		// host_cpu of 64 bytes (68 needed)
		"sflow-host-cpu-short": {vm(sh.Record(sh.FmtHostCPU, make([]byte, 64))), ErrMalformed, "host_cpu"},
	}
}

// TestSFlowHostHazardFiles: each host hazard fails fast on both paths with
// its error and malformed counter, allocating little; the files in
// testdata/hazards match the generator (VMFLOW_WRITE_HAZARDS=1 rewrites).
func TestSFlowHostHazardFiles(t *testing.T) {
	dir := "../testdata/hazards"
	for name, h := range hostHazardDatagrams() {
		path := filepath.Join(dir, name+".bin")
		if os.Getenv("VMFLOW_WRITE_HAZARDS") == "1" {
			require.NoError(t, os.WriteFile(path, h.data, 0o644))
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "hazard file missing: run with VMFLOW_WRITE_HAZARDS=1")
		assert.Equal(t, h.data, got, name)
		for _, fast := range []bool{true, false} {
			d := newTestDecoder(t, fast)
			var b Batch
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := d.Decode(SourceSFlow, testExporter, got, 1, &b)
			runtime.ReadMemStats(&after)
			assert.True(t, errors.Is(err, h.err), "%s fast=%v: %v", name, fast, err)
			assert.Empty(t, b.Hosts, name)
			assert.Equal(t, 1.0, fxCount(d.m.host.malformed[hostKindOf(t, h.kind)]), "%s fast=%v", name, fast)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10), "%s fast=%v allocated too much", name, fast)
		}
	}
}
