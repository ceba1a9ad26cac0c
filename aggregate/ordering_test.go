package aggregate

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
)

// TestIPFIXTemplateThenDataBurst sends, from several exporters at once,
// OVS's real IPFIX stream as OVS does: the template message immediately
// followed by the data that uses it. The collector runs several sockets
// and workers. Every data record must be decoded: none may be skipped as
// "unknown template" because a worker decoded the data before another one
// installed the template (an exporter's datagrams are decoded in arrival
// order).
func TestIPFIXTemplateThenDataBurst(t *testing.T) {
	msgs := ovsCapture(t, "ovs-ipfix1.pcapng", 4739)

	// What one exporter's stream holds, decoded in order by one decoder.
	refReg := prometheus.NewRegistry()
	ref, err := decoder.New(decoder.DefaultConfig(), refReg)
	require.NoError(t, err)
	var b decoder.Batch
	wantRecords := 0
	from := netip.MustParseAddrPort("192.0.2.1:1")
	for _, m := range msgs {
		require.NoError(t, ref.Decode(decoder.SourceIPFIX, from, m, time.Now().UnixNano(), &b))
		wantRecords += len(b.Records)
	}
	require.Greater(t, wantRecords, 20)
	wantUnknown := metricValue(t, refReg, "vmflow_decoder_flow_unknown_template_total")

	const exporters = 8
	for round := 0; round < 3; round++ {
		reg := prometheus.NewRegistry()
		dec, err := decoder.New(decoder.DefaultConfig(), reg)
		require.NoError(t, err)
		a, _, _ := newTestAgg(t, DefaultConfig(), nil)
		p := NewPipeline(dec, nil, a, prometheus.NewRegistry())
		cfg := collector.DefaultConfig()
		lc := collector.DefaultListenerConfig("127.0.0.1:0")
		lc.Sockets, lc.Workers = 2, 4
		lc.ReadBuffer = 8 << 20
		cfg.SFlow.Listen, cfg.NetFlow9.Listen = "", ""
		cfg.IPFIX = lc
		c, err := collector.New(cfg, p, prometheus.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, c.Start(context.Background()))
		to := c.Addrs()[collector.ProtoIPFIX][0].(*net.UDPAddr)

		var wg sync.WaitGroup
		for e := 0; e < exporters; e++ {
			// distinct exporter addresses (all of 127/8 is local)
			conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 1, byte(10+e))}, to)
			require.NoError(t, err)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				for _, m := range msgs {
					_, _ = conn.Write(m)
				}
			}()
		}
		wg.Wait()
		total := uint64(exporters * len(msgs))
		require.Eventually(t, func() bool {
			st := c.Stats()[collector.ProtoIPFIX]
			return st.Handled+st.DroppedQueueFull+st.SocketDrops >= total
		}, 10*time.Second, time.Millisecond)
		c.Stop()
		st := c.Stats()[collector.ProtoIPFIX]
		require.Equal(t, total, st.Handled, "round %d: every datagram handled: %+v", round, st)

		unknown := metricValue(t, reg, "vmflow_decoder_flow_unknown_template_total")
		records := metricValue(t, reg, "vmflow_decoder_flow_records_total")
		assert.Equal(t, exporters*wantUnknown, unknown, "round %d: data sets skipped as unknown template", round)
		assert.Equal(t, float64(exporters*wantRecords), records, "round %d: records decoded", round)
	}
}
