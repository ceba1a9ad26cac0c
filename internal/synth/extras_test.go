package synth

import (
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
)

// TestExtrasDecode: the latency probe's IPFIX records and hsflowd's host
// structures the demo sends decode with vmflow's decoder (both sFlow
// paths) to exactly the generator's truth: per pair the attempts by
// outcome and the RTT sums of both taps, each record from the hypervisor
// of the tap it names; per hypervisor and VM the last poll's CPU time,
// memory, disk and vNIC counters, the vNIC's equal to the VM's switch
// port traffic; the busy VM near 100% of its vCPUs, the others below.
func TestExtrasDecode(t *testing.T) {
	cfg := testConfig()
	c, err := Build(cfg)
	require.NoError(t, err)
	cap := &capture{}
	start := time.Unix(1_800_000_000, 0)
	g := New(c, cfg, cap, start)
	end := runFor(g, start, 8*time.Second)
	st := g.Stats()
	require.Positive(t, st.ProbeRecords)
	require.Positive(t, st.HostSamples)
	t.Logf("%d probe records, %d hsflowd samples in 8 s", st.ProbeRecords, st.HostSamples)

	type lat struct {
		attempts, est, refused, timedOut uint64
		clientSum, serverSum             uint64
		clientN, serverN                 uint64
	}
	vmAt := map[netip.Addr]*VM{}
	for i := range c.VMs {
		vm := &c.VMs[i]
		vmAt[vm.IP] = vm
	}
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast=%v", fast), func(t *testing.T) {
			dc := decoder.DefaultConfig()
			dc.SFlow.FastPath = fast
			dc.Flow.AssumeOVSTemplates = false
			d, err := decoder.New(dc, nil)
			require.NoError(t, err)
			got := map[[2]netip.Addr]*lat{}
			hostSamples := 0
			last := map[[2]uint32]decoder.HostCounters{} // (host, source id) → latest
			var b decoder.Batch
			for i, dg := range cap.d {
				src := decoder.SourceSFlow
				if dg.p == IPFIX {
					src = decoder.SourceIPFIX
				}
				from := netip.AddrPortFrom(c.Hosts[dg.host].Addr, 50000)
				require.NoError(t, d.Decode(src, from, dg.b, 1, &b), "datagram %d", i)
				for _, m := range b.Measurements {
					assert.Equal(t, probeDomain0+uint32(dg.host+1), m.ObsDomain)
					k := [2]netip.Addr{m.SrcIP, m.DstIP}
					l := got[k]
					if l == nil {
						l = &lat{}
						got[k] = l
					}
					tap := vmAt[m.SrcIP]
					if m.Side == decoder.ProbeSideServer {
						tap = vmAt[m.DstIP]
						l.serverN++
						l.serverSum += uint64(m.RTT)
					} else {
						l.clientN++
						l.clientSum += uint64(m.RTT)
						l.attempts++
						switch m.Outcome {
						case decoder.ProbeOutcomeEstablished:
							l.est++
						case decoder.ProbeOutcomeRefused:
							l.refused++
						case decoder.ProbeOutcomeTimedOut:
							l.timedOut++
						}
					}
					require.NotNil(t, tap)
					assert.Equal(t, int(tap.Host), dg.host, "the record comes from the tap's hypervisor")
					assert.Equal(t, tap.IfIndex, m.IfIndex)
					assert.Equal(t, decoder.ProbeEventHandshake, m.Event)
				}
				for _, h := range b.Hosts {
					hostSamples++
					assert.Equal(t, uint32(hsflowdSubAgent), h.SubAgent)
					last[[2]uint32{uint32(dg.host), h.SourceID}] = h
				}
			}
			assert.Equal(t, int(st.HostSamples), hostSamples)

			want := map[[2]netip.Addr]*lat{}
			var slow, refused, timedOut int
			var rtts []float64
			for _, tr := range g.LatencyTruth() {
				want[[2]netip.Addr{tr.SrcIP, tr.DstIP}] = &lat{attempts: tr.Attempts, est: tr.Established, refused: tr.Refused,
					timedOut: tr.TimedOut, clientSum: tr.ClientRTTSumUs, serverSum: tr.ServerRTTSumUs,
					clientN: tr.ClientRecords, serverN: tr.ServerRecords}
				if tr.BaseUs > 2000 {
					slow++
				}
				refused += int(tr.Refused)
				timedOut += int(tr.TimedOut)
				if tr.Established > 0 {
					rtts = append(rtts, float64(tr.ClientRTTSumUs)/float64(tr.Attempts))
				}
			}
			assert.Equal(t, want, got, "probe records per pair")
			assert.Positive(t, slow, "slow pairs")
			assert.Positive(t, refused, "refused connections")
			assert.Positive(t, timedOut, "unanswered connections")
			sort.Float64s(rtts)
			require.NotEmpty(t, rtts)
			assert.InDelta(t, 400, rtts[len(rtts)/2], 250, "median pair's mean handshake, µs")

			// hsflowd: the last poll of every hypervisor and VM
			for hi, hv := range g.HostTruth() {
				h, ok := last[[2]uint32{uint32(hi), 2<<24 | 1}]
				require.True(t, ok, "hypervisor %s's own sample", hv.Hostname)
				assert.Equal(t, hv.Hostname, h.HostName())
				assert.Equal(t, hv.CPU.User, h.CPU.User)
				assert.Equal(t, hv.CPU.Idle, h.CPU.Idle)
				assert.Equal(t, hv.Mem.Total, h.Memory.Total)
				assert.Equal(t, hv.Mem.Free, h.Memory.Free)
				assert.EqualValues(t, len(hv.VMs), h.Node.Domains)
				assert.Less(t, h.Memory.Free, h.Memory.Total)
				for j, vm := range hv.VMs {
					s, ok := last[[2]uint32{uint32(hi), 3<<24 | vm.DSIndex}]
					require.True(t, ok, "VM %s's sample", vm.Name)
					assert.True(t, s.IsVM())
					assert.Equal(t, vm.Name, s.HostName())
					assert.Equal(t, vm.UUID, s.UUID)
					cv := &c.VMs[c.Hosts[hi].VMs[j]]
					assert.Equal(t, uuidBytes(cv.UUID), s.UUID, "the inventory's UUID")
					require.Positive(t, s.NumMACs)
					assert.Equal(t, cv.MAC, s.MACs[0].MAC)
					assert.Equal(t, vm.CPUTimeMs, s.VCPU.CPUTimeMs)
					assert.Equal(t, vm.VCPUs, s.VCPU.VCPUs)
					assert.Equal(t, vm.Memory, s.VMemory.Memory)
					assert.Equal(t, vm.Disk.RdReq, s.VDiskIO.RdReq)
					assert.Equal(t, vm.Disk.WrBytes, s.VDiskIO.WrBytes)
					assert.Equal(t, vm.Net.BytesIn, s.VNetIO.BytesIn)
					assert.Equal(t, vm.Net.BytesOut, s.VNetIO.BytesOut)
					// CPU over the run: the busy VM near 100% of its vCPUs
					share := float64(vm.CPUTimeMs) / (float64(vm.VCPUs) * float64(end.Sub(start).Milliseconds()))
					if int(c.Hosts[hi].VMs[j]) == c.BusyVM() {
						assert.InDelta(t, 0.98, share, 0.05, "busy VM %s", vm.Name)
					} else {
						assert.Less(t, share, 0.9, "VM %s", vm.Name)
					}
				}
			}
		})
	}
	// most VMs talk, so their vNICs count traffic
	talking, all := 0, 0
	for _, hv := range g.HostTruth() {
		for _, vm := range hv.VMs {
			all++
			if vm.Net.BytesOut > 0 && vm.Net.BytesIn > 0 {
				talking++
			}
		}
	}
	assert.Greater(t, talking, all*3/4, "VMs with vNIC traffic both ways")
}
