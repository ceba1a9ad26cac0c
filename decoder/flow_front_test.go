package decoder

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fxGathered returns the value of the counter name{labels} in reg (0 if
// absent).
func fxGathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestDecoderFrontIPFIX goes through decoder.New/Decode (the public API) with
// the OVS capture and a malformed datagram, and reads the exported metrics.
func TestDecoderFrontIPFIX(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	dom := uint32(123)
	cfg.Flow.SamplingRates = []SamplingRateRule{{Exporter: "127.0.0.0/8", ObservationDomain: &dom, Rate: 1}}
	d, err := New(cfg, reg)
	require.NoError(t, err)
	var b Batch
	records := 0
	for _, dg := range readCaptureUDP(t, fxIPFIXCapture, 4739) {
		require.NoError(t, d.Decode(SourceIPFIX, dg.From, dg.Payload, dg.Received, &b))
		records += len(b.Records)
		for _, r := range b.Records {
			assert.Equal(t, uint32(1), r.SamplingRate)
		}
	}
	assert.Positive(t, records)
	ipfix := map[string]string{"source": "ipfix"}
	assert.Equal(t, float64(records), fxGathered(t, reg, "vmflow_decoder_flow_records_total", ipfix))
	assert.Equal(t, 0.0, fxGathered(t, reg, "vmflow_decoder_sampling_rate_unknown_total", ipfix), "rate configured for 127.0.0.0/8 domain 123")
	assert.Equal(t, 89.0, fxGathered(t, reg, "vmflow_decoder_flow_templates", nil))
	assert.Equal(t, 2.0, fxGathered(t, reg, "vmflow_decoder_flow_exporters", nil), "domains 123 and 0 of 127.0.0.1")

	err = d.Decode(SourceIPFIX, fxExpA, []byte{0, 10, 0, 40}, 0, &b)
	require.ErrorIs(t, err, ErrTruncated)
	assert.Equal(t, 1.0, fxGathered(t, reg, "vmflow_decoder_errors_total", map[string]string{"source": "ipfix", "reason": "truncated"}))
	assert.Equal(t, 1.0, fxGathered(t, reg, "vmflow_decoder_flow_errors_total", map[string]string{"source": "ipfix", "reason": "short"}))
}
