package synth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/probe"
)

type captured struct {
	p    Proto
	host int
	b    []byte
}

// capture keeps copies of every datagram.
type capture struct{ d []captured }

func (c *capture) Send(p Proto, host int, b []byte) {
	c.d = append(c.d, captured{p, host, append([]byte(nil), b...)})
}
func (c *capture) Flush() {}

// discard drops datagrams (benchmarks).
type discard struct{ n, bytes int }

func (d *discard) Send(p Proto, host int, b []byte) { d.n++; d.bytes += len(b) }
func (d *discard) Flush()                           {}

func testConfig() Config {
	c := DemoConfig()
	c.SFlowTarget, c.IPFIXTarget = "capture", "capture"
	c.ScanEvery, c.ScanFor = 3*time.Second, 2*time.Second
	c.BurstEvery, c.BurstFor = 2*time.Second, time.Second
	c.NewPairEvery = time.Second
	c.CounterInterval, c.IPFIXInterval = 2*time.Second, time.Second
	return c
}

// runFor advances a generator on a simulated clock in 10 ms steps.
func runFor(g *Generator, start time.Time, d time.Duration) time.Time {
	t := start
	for t.Sub(start) < d {
		t = t.Add(10 * time.Millisecond)
		g.Advance(t)
	}
	g.Finish(t)
	return t
}

func TestBuildAndInventory(t *testing.T) {
	cfg := DemoConfig()
	c, err := Build(cfg)
	require.NoError(t, err)
	assert.Len(t, c.Hosts, cfg.Hosts)
	assert.Len(t, c.VMs, cfg.VMs)
	assert.Len(t, c.Tenants, cfg.Tenants)
	active := 0
	kinds := map[uint8]int{}
	ext := 0
	cross := 0
	for _, p := range c.pairs {
		if p.active {
			active++
			kinds[p.kind]++
			if p.src < 0 || p.dst < 0 {
				ext++
			} else if c.VMs[p.src].Tenant != c.VMs[p.dst].Tenant {
				cross++
			}
		}
	}
	assert.GreaterOrEqual(t, active, cfg.Pairs)
	assert.LessOrEqual(t, active, cfg.Pairs+1)
	assert.NotEmpty(t, c.reserve, "pairs kept for 'new pair' events")
	assert.Positive(t, ext, "pairs with external addresses")
	assert.Positive(t, cross, "cross-tenant pairs")
	for _, k := range []uint8{kindSYNOnly, kindRefused, kindRST, kindUDPClosed, kindUnreach} {
		assert.Positive(t, kinds[k], "pairs of kind %s", kindNames[k])
	}
	// heavy tail: the top 5% of pairs carry a large share of the weight
	var ws []float64
	total := 0.0
	for _, p := range c.pairs {
		if p.active {
			ws = append(ws, p.weight)
			total += p.weight
		}
	}
	top := 0.0
	for range len(ws) / 20 {
		mi := 0
		for i := range ws {
			if ws[i] > ws[mi] {
				mi = i
			}
		}
		top += ws[mi]
		ws[mi] = 0
	}
	assert.Greater(t, top/total, 0.3, "top 5%% of pairs carry %.0f%% of the weight", 100*top/total)

	// the inventory is what vmflow's static source accepts, and matches
	var buf bytes.Buffer
	require.NoError(t, c.WriteInventory(&buf))
	snap, err := enrich.ParseInventory(buf.Bytes(), "synth.yaml")
	require.NoError(t, err)
	require.Len(t, snap.VMs, cfg.VMs)
	require.Len(t, snap.Hosts, cfg.Hosts)
	vm := snap.VMs[7]
	want := c.VMs[7]
	assert.Equal(t, want.Name, vm.Name)
	assert.Equal(t, c.Hosts[want.Host].Name, vm.Host)
	assert.Equal(t, c.Tenants[want.Tenant].ID, vm.Tenant)
	require.Len(t, vm.Interfaces, 1)
	assert.Equal(t, want.MAC, [6]byte(vm.Interfaces[0].MAC))
	assert.Equal(t, want.Tap, vm.Interfaces[0].Tap)

	// deterministic
	c2, err := Build(cfg)
	require.NoError(t, err)
	var buf2 bytes.Buffer
	require.NoError(t, c2.WriteInventory(&buf2))
	assert.Equal(t, buf.String(), buf2.String())
}

type flowKey struct {
	agent    netip.Addr
	src, dst netip.Addr
}

type flowSum struct {
	samples, bytes uint64
}

// TestDatagramsDecode: every datagram decodes with vmflow's decoder (fast
// path and its goflow2 path) and with goflow2 directly, to exactly the
// generator's truth: per pair and bridge the sFlow samples and their frame
// bytes, per pair the IPFIX packets and bytes; sequence numbers are gap-free.
func TestDatagramsDecode(t *testing.T) {
	cfg := testConfig()
	c, err := Build(cfg)
	require.NoError(t, err)
	cap := &capture{}
	start := time.Unix(1_800_000_000, 0)
	g := New(c, cfg, cap, start)
	runFor(g, start, 8*time.Second)
	st := g.Stats()
	require.NotEmpty(t, cap.d)
	assert.Positive(t, st.Scans)
	assert.Positive(t, st.Bursts)
	assert.Positive(t, st.NewPairs)
	t.Logf("stats %+v, %d datagrams", st, len(cap.d))

	hostOf := map[netip.Addr]string{}
	for _, h := range c.Hosts {
		hostOf[h.Addr] = h.Name
	}
	// truth per (bridge, src, dst)
	wantSF := map[flowKey]flowSum{}
	wantIP := map[[2]netip.Addr][2]uint64{}
	addrOf := map[string]netip.Addr{}
	for _, h := range c.Hosts {
		addrOf[h.Name] = h.Addr
	}
	kinds := map[string]int{}
	for _, p := range g.Truth() {
		kinds[p.Kind]++
		k := flowKey{addrOf[p.SrcHost], p.SrcIP, p.DstIP}
		s := wantSF[k]
		s.samples += p.SFlowSamples
		s.bytes += p.SampledBytes
		wantSF[k] = s
		if p.DupSamples > 0 {
			require.NotEmpty(t, p.DupHost)
			k := flowKey{addrOf[p.DupHost], p.SrcIP, p.DstIP}
			s := wantSF[k]
			s.samples += p.DupSamples
			s.bytes += p.SampledBytes
			wantSF[k] = s
		}
		if p.IPFIX {
			ik := [2]netip.Addr{p.SrcIP, p.DstIP}
			v := wantIP[ik]
			wantIP[ik] = [2]uint64{v[0] + p.IPFIXPackets, v[1] + p.IPFIXBytes}
			// IPFIX carries the very packets the sFlow samples stand for
			assert.Equal(t, p.SFlowPackets, p.IPFIXPackets, "%s→%s", p.Src, p.Dst)
			assert.Equal(t, p.SFlowBytes, p.IPFIXBytes, "%s→%s", p.Src, p.Dst)
		}
	}
	for _, k := range []string{"scan", "rst", "syn-only", "unreachable"} {
		assert.Positive(t, kinds[k], "pairs of kind %s in the truth", k)
	}

	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("vmflow fast=%v", fast), func(t *testing.T) {
			dc := decoder.DefaultConfig()
			dc.SFlow.FastPath = fast
			dc.Flow.AssumeOVSTemplates = false
			d, err := decoder.New(dc, nil)
			require.NoError(t, err)
			gotSF := map[flowKey]flowSum{}
			gotIP := map[[2]netip.Addr][2]uint64{}
			counters, discards := 0, 0
			lastPort := map[[2]uint32]decoder.Counters{}
			icmpErr, syn, rst := 0, 0, 0
			var b decoder.Batch
			type agentKey struct {
				a netip.Addr
				n uint32 // sub-agent or observation domain
			}
			seq := map[agentKey]uint32{}
			ipSeq := map[agentKey]uint32{}
			for i, dg := range cap.d {
				from := netip.AddrPortFrom(c.Hosts[dg.host].Addr, 50000)
				src := decoder.SourceSFlow
				if dg.p == IPFIX {
					src = decoder.SourceIPFIX
				}
				require.NoError(t, d.Decode(src, from, dg.b, 1, &b), "datagram %d (%s)", i, dg.p)
				if dg.p == SFlow {
					assert.Equal(t, c.Hosts[dg.host].Addr, b.Header.Agent)
					k := agentKey{b.Header.Agent, b.Header.SubAgent}
					assert.Equal(t, seq[k]+1, b.Header.Sequence, "sFlow sequence of %v", k)
					seq[k] = b.Header.Sequence
				} else {
					k := agentKey{from.Addr(), b.Header.ObsDomain}
					assert.Equal(t, ipSeq[k], b.Header.Sequence, "IPFIX sequence of %v", k)
					ipSeq[k] += uint32(b.Header.DataRecords)
					assert.Contains(t, []uint32{uint32(dg.host + 1), probeDomain0 + uint32(dg.host+1)}, b.Header.ObsDomain)
				}
				for _, r := range b.Records {
					if r.Proto == 1 && r.ICMPType == 3 {
						icmpErr++
					}
					if r.TCPFlags == 0x02 {
						syn++
					}
					if r.TCPFlags&0x04 != 0 {
						rst++
					}
					if r.Source == decoder.SourceSFlow {
						require.Equal(t, cfg.SamplingRate, r.SamplingRate)
						k := flowKey{r.Agent, r.SrcIP, r.DstIP}
						s := gotSF[k]
						s.samples++
						s.bytes += r.Bytes
						gotSF[k] = s
					} else {
						k := [2]netip.Addr{r.SrcIP, r.DstIP}
						v := gotIP[k]
						gotIP[k] = [2]uint64{v[0] + r.Packets, v[1] + r.Bytes}
					}
				}
				for _, cn := range b.Counters {
					if b.Header.SubAgent == hsflowdSubAgent {
						continue // hsflowd's: TestExtrasDecode
					}
					counters++
					pk := [2]uint32{uint32(dg.host), cn.IfIndex}
					prev := lastPort[pk]
					assert.GreaterOrEqual(t, cn.InOctets, prev.InOctets, "port counters only grow")
					assert.GreaterOrEqual(t, cn.OutDiscard, prev.OutDiscard, "port counters only grow")
					lastPort[pk] = cn
					if cn.OutDiscard > 0 {
						discards++
					}
					assert.True(t, cn.HasIf && cn.HasOFPort)
					assert.True(t, strings.HasPrefix(cn.Name(), "vnet"), cn.Name())
				}
			}
			assert.Equal(t, wantSF, gotSF, "sFlow samples and bytes per bridge and pair")
			assert.Equal(t, wantIP, gotIP, "IPFIX packets and bytes per pair")
			assert.Equal(t, int(st.CounterSamples), counters)
			assert.Positive(t, discards, "ports with discards")
			assert.Less(t, discards, counters/2, "discards now and then")
			// a port's octets are its VM's traffic: at most what the VM sent by the end
			for i := range c.VMs {
				vm := &c.VMs[i]
				cn, ok := lastPort[[2]uint32{uint32(vm.Host), vm.IfIndex}]
				require.True(t, ok, "VM %s's port polled", vm.Name)
				assert.LessOrEqual(t, cn.InOctets, vm.inBytes)
				assert.LessOrEqual(t, cn.OutOctets, vm.outBytes)
			}
			assert.Positive(t, icmpErr, "ICMP unreachables")
			assert.Positive(t, syn, "bare SYNs")
			assert.Positive(t, rst, "RSTs")
		})
	}

	t.Run("goflow2", func(t *testing.T) {
		gotSF := map[flowKey]flowSum{}
		gotIP := map[[2]netip.Addr][2]uint64{}
		counters := 0
		ts := map[netip.Addr]netflow.NetFlowTemplateSystem{}
		for i, dg := range cap.d {
			if dg.p == SFlow {
				var p sflow.Packet
				require.NoError(t, sflow.DecodeMessageVersion(bytes.NewBuffer(dg.b), &p), "datagram %d", i)
				if p.SubAgentId == hsflowdSubAgent {
					continue // hsflowd's host structures (goflow2 leaves them raw)
				}
				agent := netip.AddrFrom4([4]byte(p.AgentIP))
				require.Equal(t, int(p.SamplesCount), len(p.Samples))
				for _, s := range p.Samples {
					switch s := s.(type) {
					case sflow.FlowSample:
						require.Len(t, s.Records, 2)
						h, ok := s.Records[0].Data.(sflow.SampledHeader)
						require.True(t, ok)
						_, ok = s.Records[1].Data.(sflow.ExtendedSwitch)
						require.True(t, ok)
						pk := gopacket.NewPacket(h.HeaderData[:h.OriginalLength], layers.LayerTypeEthernet, gopacket.Default)
						ip4, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
						require.True(t, ok, "sampled header has IPv4")
						src, _ := netip.AddrFromSlice(ip4.SrcIP)
						dst, _ := netip.AddrFromSlice(ip4.DstIP)
						k := flowKey{agent, src, dst}
						v := gotSF[k]
						v.samples++
						v.bytes += uint64(h.FrameLength - h.Stripped)
						gotSF[k] = v
						if ip4.Protocol == layers.IPProtocolICMPv4 {
							ic, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
							require.True(t, ok, "gopacket finds ICMP in the header")
							assert.Equal(t, uint8(layers.ICMPv4TypeDestinationUnreachable), ic.TypeCode.Type())
						} else {
							assert.NotNil(t, pk.TransportLayer(), "gopacket finds TCP/UDP in the header")
						}
					case sflow.CounterSample:
						counters++
						require.Len(t, s.Records, 4)
						_, ok := s.Records[0].Data.(sflow.IfCounters)
						require.True(t, ok)
						_, ok = s.Records[1].Data.(sflow.EthernetCounters)
						require.True(t, ok)
					default:
						t.Fatalf("unexpected sample %T", s)
					}
				}
				continue
			}
			from := c.Hosts[dg.host].Addr
			if ts[from] == nil {
				ts[from] = netflow.CreateTemplateSystem()
			}
			var nf9 netflow.NFv9Packet
			var ipfix netflow.IPFIXPacket
			require.NoError(t, netflow.DecodeMessageVersion(bytes.NewBuffer(dg.b), ts[from], &nf9, &ipfix), "IPFIX %d", i)
			for _, s := range ipfix.FlowSets {
				ds, ok := s.(netflow.DataFlowSet)
				if !ok || ds.FlowSetHeader.Id == probe.TemplateIPv4 {
					continue // the probe's measurements: TestExtrasDecode
				}
				for _, rec := range ds.Records {
					var src, dst netip.Addr
					var pk, l2 uint64
					for _, v := range rec.Values {
						b := v.Value.([]byte)
						switch v.Type {
						case 8:
							src, _ = netip.AddrFromSlice(b)
						case 12:
							dst, _ = netip.AddrFromSlice(b)
						case 2:
							pk = binary.BigEndian.Uint64(b)
						case 352:
							l2 = binary.BigEndian.Uint64(b)
						}
					}
					k := [2]netip.Addr{src, dst}
					v := gotIP[k]
					gotIP[k] = [2]uint64{v[0] + pk, v[1] + l2}
				}
			}
		}
		assert.Equal(t, wantSF, gotSF, "goflow2: sFlow samples and bytes per bridge and pair")
		assert.Equal(t, wantIP, gotIP, "goflow2: IPFIX packets and bytes per pair")
		assert.Equal(t, int(st.CounterSamples), counters)
	})
}

// TestSamplingUnbiased: over many samples, the packets the samples stand
// for average N per sample (the estimate N × samples is unbiased).
func TestSamplingUnbiased(t *testing.T) {
	r := newRNG(7)
	const n = 200000
	for _, N := range []uint32{1, 2, 64, 1024} {
		lnq := 0.0
		if N > 1 {
			lnq = math.Log(1 - 1/float64(N))
		}
		var sum, sq float64
		for range n {
			g := float64(r.geometric(N, lnq))
			sum += g
			sq += g * g
		}
		mean := sum / n
		v := sq/n - mean*mean
		se := 4 * math.Sqrt(float64(N)*float64(N-1)/n)
		assert.InDelta(t, float64(N), mean, se+1e-9, "N=%d mean", N)
		if N > 1 {
			assert.InEpsilon(t, float64(N)*float64(N-1), v, 0.05, "N=%d variance", N)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DemoConfig().Validate())
	require.NoError(t, ScaleConfig().Validate())
	// the scale benchmarks' offered load is OVS's alone
	assert.Zero(t, ScaleConfig().ProbeRate)
	assert.False(t, ScaleConfig().HostStats)
	for name, mod := range map[string]func(*Config){
		"hosts":    func(c *Config) { c.Hosts = 0 },
		"vms":      func(c *Config) { c.VMs = 3 },
		"sampling": func(c *Config) { c.SamplingRate = 0 },
		"share":    func(c *Config) { c.IPFIXShare = 2 },
		"header":   func(c *Config) { c.HeaderBytes = 10 },
		"addr":     func(c *Config) { c.AddrBase = netip.Addr{} },
		"probe":    func(c *Config) { c.ProbeRate = -1 },
	} {
		c := DemoConfig()
		mod(&c)
		assert.Error(t, c.Validate(), name)
	}
	c := DemoConfig()
	c.Hosts, c.VMs, c.AddrBase = 2000, 4000, netip.MustParseAddr("127.255.255.0")
	_, err := Build(c)
	assert.ErrorContains(t, err, "127.0.0.0/8")
}
