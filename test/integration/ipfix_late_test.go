package integration

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// TestIPFIXCollectorStartedAfterOVS: OVS's IPFIX export is configured and
// sends its templates while vmflow is not listening yet; OVS repeats them
// only every 10 minutes. vmflow, started afterwards, must still report
// every pair from IPFIX within 2% of the truth (by decoding with OVS's own
// templates, vmflow's built-in copy), not skip ten minutes of records.
func TestIPFIXCollectorStartedAfterOVS(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{Hosts: []ovslab.HostOptions{{Name: "hv1", VMs: 4}}})
	hv := lab.Host("hv1")

	// A port nobody listens on yet.
	pc, err := net.ListenPacket("udp", ":0")
	require.NoError(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, pc.Close())

	require.NoError(t, lab.EnableIPFIX(hv, ovslab.IPFIXOptions{CollectorPort: port, Sampling: 1, CacheActiveTimeout: 2}))
	// Traffic so that OVS exports, templates first, into the void.
	_, err = lab.Ping(lab.VM("vm1"), lab.VM("vm3"), 3, 100*time.Millisecond)
	require.NoError(t, err)
	time.Sleep(4 * time.Second) // active timeout 2 s, then the export

	a := startVMFlow(t, writeInventory(t, lab), e2eWindow,
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=:"+strconv.Itoa(port))
	time.Sleep(3 * time.Second) // leftovers of the ping
	before := pairs(t, a, "ipfix")

	truth := oneHostTraffic(t, lab)
	waitSettled(t, a, e2eWindow)

	assert.Zero(t, metricSum(t, a, `vmflow_decoder_flow_template_events_total{event="added",source="ipfix"}`),
		"vmflow received no template from OVS (the test's premise)")
	assert.Positive(t, metricSum(t, a, "vmflow_decoder_flow_assumed_template_total"))
	assert.Zero(t, metricSum(t, a, "vmflow_decoder_flow_unknown_template_total"), "data sets skipped")

	ipfix := pairs(t, a, "ipfix")
	for _, p := range truth.Pairs() {
		tr := truth[p]
		got, ok := ipfix[p]
		if !assert.True(t, ok, "IPFIX: pair %s (truth %d bytes) missing", p, tr.BridgedBytes) {
			continue
		}
		got.Bytes -= before[p].Bytes
		assert.True(t, within(got.Bytes, float64(tr.BridgedBytes), 0.02),
			"IPFIX: pair %s bytes %.0f, truth %d", p, got.Bytes, tr.BridgedBytes)
		t.Logf("IPFIX %-10s bytes %12.0f truth %12d (%+.3f%%)", p, got.Bytes, tr.BridgedBytes, 100*(got.Bytes/float64(tr.BridgedBytes)-1))
	}
	for k := range ipfix {
		_, ok := truth[k]
		ping := (k.Src == "vm1" && k.Dst == "vm3") || (k.Src == "vm3" && k.Dst == "vm1")
		assert.True(t, ok || ping, "IPFIX: pair %s reported but did not talk", k)
	}
	if t.Failed() {
		logIngest(t, a)
	}
}
