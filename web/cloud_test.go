package web_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// cloud is a synthetic cloud written straight into the memory store (the
// demo generator, internal/synth, is another branch's; these tests move to
// it once it is merged): hosts, tenants, VMs in a real enrich inventory,
// and windows of pairs with a daily-looking level, per-pair noise, sFlow
// sampling variance and IPFIX for a share of the pairs, a burst and an
// external scanner.
type cloud struct {
	en      *enrich.Enricher
	mem     *store.Memory
	vms     []*enrich.VM
	start   time.Time // first window start
	end     time.Time // last window end
	window  time.Duration
	windows int
}

type cloudSpec struct {
	hosts, tenants, vms, peersPerVM int
	windows                         int
	window                          time.Duration
	seed                            uint64
}

func newCloud(t testing.TB, sp cloudSpec) *cloud {
	t.Helper()
	en, err := enrich.New(enrich.DefaultConfig(), nil)
	require.NoError(t, err)
	var vms []enrich.VM
	for i := 0; i < sp.vms; i++ {
		mac, _ := enrich.ParseMAC(fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff))
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		role := []string{"web", "app", "db", "cache", "queue"}[i%5]
		vms = append(vms, enrich.VM{
			Name: fmt.Sprintf("%s-%d", role, i), UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Host: fmt.Sprintf("hv%d", i%sp.hosts+1), Tenant: fmt.Sprintf("tenant-%c", 'a'+i%sp.tenants), State: "running",
			Labels: map[string]string{"role": role},
			Interfaces: []enrich.Interface{{MAC: mac, Tap: fmt.Sprintf("vnet%d", i), Bridge: "br-int",
				Addrs: []enrich.Addr{{IP: ip, Source: enrich.AddrStatic}}}},
		})
	}
	en.Publish(enrich.Snapshot{Source: "static", VMs: vms})
	c := &cloud{en: en, window: sp.window, windows: sp.windows}
	c.vms = append(c.vms, en.Index().VMs()...)
	require.Len(t, c.vms, sp.vms)
	mem := store.NewMemory(store.MemoryConfig{Retention: time.Duration(sp.windows+10) * sp.window, MaxPairs: 50_000_000}, nil)
	c.mem = mem

	rng := rand.New(rand.NewPCG(sp.seed, 7))
	type link struct {
		src, dst *enrich.VM
		level    float64 // bytes per second
		ipfix    bool
	}
	var links []link
	for i, v := range c.vms {
		for k := 0; k < sp.peersPerVM; k++ {
			d := c.vms[(i*7+k*13+1)%len(c.vms)]
			if d == v {
				continue
			}
			links = append(links, link{src: v, dst: d, level: 2e3 * math.Exp(rng.NormFloat64()*1.5), ipfix: k%3 == 0})
		}
	}
	scanner := netip.MustParseAddr("198.51.100.66")
	now := time.Now().Truncate(sp.window)
	c.end = now
	c.start = now.Add(-time.Duration(sp.windows) * sp.window)
	ep := func(v *enrich.VM) aggregate.Endpoint {
		ifc := v.Interfaces[0]
		return aggregate.Endpoint{VM: v.Name, UUID: v.UUID, Host: v.Host, Tenant: v.Tenant, IP: ifc.Addrs[0].IP.String(), MAC: enrich.FormatMAC(ifc.MAC)}
	}
	for w := 0; w < sp.windows; w++ {
		win := &aggregate.Window{Start: c.start.Add(time.Duration(w) * sp.window), End: c.start.Add(time.Duration(w+1) * sp.window)}
		day := 1 + 0.5*math.Sin(2*math.Pi*float64(w)/float64(max(sp.windows, 2)))
		secs := sp.window.Seconds()
		for li, l := range links {
			b := l.level * day * secs * (0.8 + 0.4*rng.Float64())
			if li == 0 && w >= sp.windows-3 {
				b *= 50 // a burst at the end
			}
			pk := math.Max(1, b/800)
			st := aggregate.Stats{Bytes: b, Packets: pk, Samples: uint64(math.Max(1, pk/64)), Flows: uint64(1 + li%4),
				SampledBytes: uint64(b / 64), SampledPackets: uint64(pk / 64)}
			if li%4 == 0 {
				st.UDPBytes, st.UDPPackets = b, pk
			} else {
				st.TCPBytes, st.TCPPackets = b, pk
				st.SYN, st.SYNACK, st.FIN = float64(st.Flows), float64(st.Flows), float64(st.Flows)
				// the reverse pair's answers (connection health): one SYN in
				// ten unanswered on every third TCP link, one refused
				if li%3 == 1 {
					st.SYN = 10 * float64(st.Flows)
					st.SYNACKIn, st.RSTIn = 9*float64(st.Flows), float64(st.Flows)
				} else {
					st.SYNACKIn = st.SYN
				}
			}
			port := []uint16{443, 5432, 6379, 8080, 5672}[li%5]
			st.TopPorts[0] = aggregate.PortCount{Proto: map[bool]uint8{true: 17, false: 6}[li%4 == 0], Port: port, Bytes: b}
			src := decoder.SourceSFlow
			if l.ipfix {
				src = decoder.SourceIPFIX
			} else {
				st.BytesVar = b * 1500 * 64
				st.PacketsVar = pk * 64
			}
			win.Pairs = append(win.Pairs, aggregate.Pair{
				Key: aggregate.PairKey{Src: aggregate.EndpointKey{VM: l.src.ID}, Dst: aggregate.EndpointKey{VM: l.dst.ID}, Source: src},
				Src: ep(l.src), Dst: ep(l.dst), Stats: st,
			})
		}
		if len(links) > 1 { // the probe measures the second link (a TCP one)
			l := links[1]
			lat := &aggregate.Latency{}
			for k := 0; k < 20; k++ {
				rtt := uint32(300 + 40*k + rng.IntN(200) + 30*(w%7))
				lat.Handshake.Add(rtt)
				lat.Guest.Add(rtt / 3)
				lat.Ack.Add(rtt - rtt/3)
			}
			lat.Echo.Add(uint32(150 + rng.IntN(50)))
			lat.Client = aggregate.ConnCounts{Attempts: 22, Established: 20, Refused: 1, TimedOut: 1, Unreachable: 1, SYNRetries: 3, FINClosed: 18, RSTClosed: 2, Echoes: 1}
			win.Pairs = append(win.Pairs, aggregate.Pair{
				Key: aggregate.PairKey{Src: aggregate.EndpointKey{VM: l.src.ID}, Dst: aggregate.EndpointKey{VM: l.dst.ID}, Source: decoder.SourceProbe},
				Src: ep(l.src), Dst: ep(l.dst), Stats: aggregate.Stats{Lat: lat},
			})
		}
		for i, v := range c.vms { // every VM's tap: switch port counters
			secs := sp.window.Seconds()
			in := uint64(1e5 * secs * (1 + float64(i%5)) * day)
			win.Ports = append(win.Ports, aggregate.PortStats{
				Key:  aggregate.PortKey{Agent: netip.AddrFrom4([4]byte{10, 1, 0, byte(1 + i%sp.hosts)}), IfIndex: uint32(100 + i)},
				Name: v.Interfaces[0].Tap, Host: v.Host, VM: v.Name, UUID: v.UUID, Tenant: v.Tenant, VMID: v.ID,
				IfSpeed: 10_000_000_000, IfStatus: 3, Seconds: secs, Samples: 1,
				InOctets: in, OutOctets: in / 2, InPackets: in / 800, OutPackets: in / 1600,
				InErrors: uint64(i % 3), OutDiscards: uint64(w % 2 * (i % 2)),
			})
		}
		if w == sp.windows/2 { // a scan from outside
			for k := 0; k < min(20, len(c.vms)); k++ {
				v := c.vms[k]
				st := aggregate.Stats{Bytes: 60, Packets: 1, Samples: 1, Flows: 1, SampledBytes: 60, SampledPackets: 1, TCPBytes: 60, TCPPackets: 1, SYN: 1}
				win.Pairs = append(win.Pairs, aggregate.Pair{
					Key: aggregate.PairKey{Src: aggregate.EndpointKey{IP: scanner}, Dst: aggregate.EndpointKey{VM: v.ID}, Source: decoder.SourceSFlow},
					Src: aggregate.Endpoint{IP: scanner.String()}, Dst: ep(v), Stats: st,
				})
			}
		}
		mem.Write(win)
	}
	return c
}
