package integration

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// ovsStats reads `ovs-vsctl get interface TAP statistics` (a map such as
// {collisions=0, rx_bytes=1234, ...}).
func ovsStats(t *testing.T, lab *ovslab.Lab, h *ovslab.Host, tap string) map[string]uint64 {
	t.Helper()
	out, err := lab.Vsctl(h, "get", "interface", tap, "statistics")
	require.NoError(t, err)
	m := map[string]uint64{}
	s := strings.Trim(strings.TrimSpace(string(out)), "{}")
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "%s in %s", kv, out)
		m[k] = n
	}
	require.Contains(t, m, "rx_bytes", "statistics of %s: %s", tap, out)
	return m
}

func subStats(a, b map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

// apiPort is the part of a Port of GET /api/v1/vms/{name} the test reads.
type apiPort struct {
	Name          string  `json:"name"`
	Host          string  `json:"host"`
	VM            string  `json:"vm"`
	Seconds       float64 `json:"seconds"`
	Samples       uint32  `json:"samples"`
	Resets        uint32  `json:"resets"`
	InOctets      uint64  `json:"in_octets"`
	OutOctets     uint64  `json:"out_octets"`
	InPackets     uint64  `json:"in_packets"`
	OutPackets    uint64  `json:"out_packets"`
	InErrors      uint64  `json:"in_errors"`
	OutErrors     uint64  `json:"out_errors"`
	InDiscards    uint64  `json:"in_discards"`
	OutDiscards   uint64  `json:"out_discards"`
	InBPS         float64 `json:"in_bps"`
	OutBPS        float64 `json:"out_bps"`
	OutDiscardsPS float64 `json:"out_discards_ps"`
}

func vmPorts(t *testing.T, a *app.App, vm string, from, to time.Time) []apiPort {
	t.Helper()
	var out struct {
		Ports []apiPort `json:"ports"`
	}
	getJSON(t, a, "/api/v1/vms/"+vm, url.Values{
		"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}, &out)
	return out.Ports
}

// TestPortCountersMatchOVS (issue 9, point 3): with real OVS sFlow counter
// polling (1 s), a VM's port octets, packets, errors and discards in the
// API over an interval are exactly what `ovs-vsctl get interface TAP
// statistics` moved by over the same interval, and its octet rate while
// traffic flows matches.
//
// The interval starts and ends with the ports quiet (every counter still),
// so the API's sum of per-window deltas over any range covering it must
// equal the statistics' difference exactly. Discards: vm2's interface is
// taken down and vm1 pings it: the switch still sends the frames to vnet2,
// whose peer is down, and they are dropped (tx_dropped, sFlow
// ifOutDiscards).
func TestPortCountersMatchOVS(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{})
	hv := lab.Hosts()[0]
	vm1, vm2, vm3 := lab.VM("vm1"), lab.VM("vm2"), lab.VM("vm3")
	const window = 2 * time.Second
	a := startVMFlow(t, writeInventory(t, lab), window)
	require.NoError(t, lab.EnableSFlow(hv, ovslab.SFlowOptions{CollectorPort: a.ListenPort(collector.ProtoSFlow), Sampling: 64, Polling: 1}))

	// OVS writes interface statistics to its database every 5 s
	// (other_config:stats-update-interval, 5000 ms at least): quiet ports
	// for longer than that, then read the baseline.
	quiet := func() {
		time.Sleep(6500 * time.Millisecond)
	}
	// Warm up: vmflow must have a baseline sample of every port first.
	quiet()
	t0 := time.Now()
	s0 := map[string]map[string]uint64{}
	for _, v := range []*ovslab.VM{vm1, vm2, vm3} {
		s0[v.Name] = ovsStats(t, lab, hv, v.HostVeth)
	}

	// Traffic: UDP vm1 -> vm3 at 20 Mbit/s for 6 s (rate check), then 40
	// pings vm1 -> vm2 with vm2's interface down (discards at vnet2).
	udp, err := lab.IperfUDP(vm1, vm3, ovslab.IperfOptions{Duration: 6 * time.Second, Bitrate: "20M", Length: 1000, Port: 5301})
	require.NoError(t, err)
	tMid := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = lab.Exec(ctx, vm2, "ip", "link", "set", vm2.Dev, "down")
	require.NoError(t, err)
	out, _ := lab.Exec(ctx, vm1, "ping", "-n", "-q", "-c", "40", "-i", "0.05", "-W", "1", vm2.IP.String())
	t.Logf("ping to the down vm2: %s", strings.TrimSpace(string(out)))
	_, err = lab.Exec(ctx, vm2, "ip", "link", "set", vm2.Dev, "up")
	require.NoError(t, err)

	quiet()
	// One more window for the last counter samples to be in a closed window.
	time.Sleep(2 * window)
	t1 := time.Now()
	delta := map[string]map[string]uint64{}
	for _, v := range []*ovslab.VM{vm1, vm2, vm3} {
		delta[v.Name] = subStats(ovsStats(t, lab, hv, v.HostVeth), s0[v.Name])
		t.Logf("ovs-vsctl statistics %s (%s) moved: %v", v.HostVeth, v.Name, delta[v.Name])
	}
	t.Logf("iperf3 UDP: %d datagrams, %d lost", udp.Packets, udp.LostPackets)

	for _, v := range []*ovslab.VM{vm1, vm2, vm3} {
		ps := vmPorts(t, a, v.Name, t0.Add(-time.Second), t1)
		require.Len(t, ps, 1, "%s: one port", v.Name)
		p := ps[0]
		d := delta[v.Name]
		t.Logf("API %s port %s: %+v", v.Name, p.Name, p)
		assert.Equal(t, v.HostVeth, p.Name)
		assert.Equal(t, hv.Name, p.Host)
		assert.Zero(t, p.Resets, v.Name)
		assert.Equal(t, d["rx_bytes"], p.InOctets, "%s in_octets = rx_bytes", v.Name)
		assert.Equal(t, d["tx_bytes"], p.OutOctets, "%s out_octets = tx_bytes", v.Name)
		assert.Equal(t, d["rx_packets"], p.InPackets, "%s in_packets = rx_packets", v.Name)
		assert.Equal(t, d["tx_packets"], p.OutPackets, "%s out_packets = tx_packets", v.Name)
		assert.Equal(t, d["rx_errors"], p.InErrors, "%s in_errors = rx_errors", v.Name)
		assert.Equal(t, d["tx_errors"], p.OutErrors, "%s out_errors = tx_errors", v.Name)
		assert.Equal(t, d["rx_dropped"], p.InDiscards, "%s in_discards = rx_dropped", v.Name)
		assert.Equal(t, d["tx_dropped"], p.OutDiscards, "%s out_discards = tx_dropped", v.Name)
		// The range's windows (aligned to 2 s) hold the deltas of the samples
		// received in them, each reaching back one polling interval (1 s).
		rng := t1.Sub(t0.Add(-time.Second)).Seconds()
		assert.InDelta(t, rng, p.Seconds, window.Seconds()+1+0.5, "%s: the samples cover the range (within a window and a polling interval)", v.Name)
	}
	assert.Greater(t, delta["vm1"]["rx_bytes"], udp.Packets*1042, "vm1 sent the UDP datagrams")
	assert.GreaterOrEqual(t, delta["vm2"]["tx_dropped"], uint64(40), "the pings to the down vm2 were discarded at vnet2")

	// Rates: the per-window in_bps of vm1's port, integrated over the 2 s
	// windows, give back what ovs-vsctl counted over the interval, within
	// one polling interval's worth of traffic at the peak window rate (the
	// covered time of each window is its own samples' spacing, about 2 s).
	var ser struct {
		Points []struct {
			Time time.Time `json:"time"`
			Port *struct {
				InBPS   float64 `json:"in_bps"`
				Seconds float64 `json:"seconds"`
			} `json:"port"`
		} `json:"points"`
	}
	getJSON(t, a, "/api/v1/vms/vm1/series", url.Values{
		"from": {t0.Add(-time.Second).UTC().Format(time.RFC3339Nano)}, "to": {t1.UTC().Format(time.RFC3339Nano)}}, &ser)
	var integral, peak float64
	for _, pt := range ser.Points {
		if pt.Port == nil {
			continue
		}
		t.Logf("series %s in_bps %.0f over %.3f s", pt.Time.Format("15:04:05.000"), pt.Port.InBPS, pt.Port.Seconds)
		integral += pt.Port.InBPS / 8 * window.Seconds()
		peak = max(peak, pt.Port.InBPS)
	}
	total := float64(delta["vm1"]["rx_bytes"])
	t.Logf("integrated window rates %.0f bytes, ovs-vsctl rx_bytes %.0f, peak %.0f bit/s, iperf3 mean %.0f bit/s",
		integral, total, peak, float64(udp.Packets*1042*8)/6)
	assert.InDelta(t, total, integral, peak/8*1.0, "within one polling interval (1 s) at the peak rate")
	assert.Greater(t, peak, float64(udp.Packets*1042*8)/6*0.8, "the peak window carries the UDP rate")
	_ = tMid
	logIngest(t, a)
}
