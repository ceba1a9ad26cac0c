package synth

import (
	"encoding/hex"
	"math"
	"net/netip"
	"strings"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/internal/sflowhost"
	"github.com/vmflow/vmflow/probe"
)

// The demo's other inputs, beside OVS's sFlow and IPFIX: the latency
// probe's IPFIX records (`vmflow probe` on every hypervisor, encoded by
// probe.AppendRecord) and hsflowd's sFlow host structures (encoded by
// internal/sflowhost), both consistent with the generated traffic: a VM's
// virt_net_io is its switch port's counters seen from the guest, handshakes
// are timed on the TCP pairs that talk, refused and unanswered connection
// attempts are the refused and SYN-only pairs.

const (
	hsflowdSubAgent = 1    // hsflowd's sub-agent id beside OVS's 0 on the same agent address
	probeDomain0    = 1000 // probe observation domain of host i: probeDomain0 + i + 1
	probeRecordMax  = 64   // bytes: more than one IPv4 probe record
)

// probeState is the probes' model: the pairs they time and the truth.
type probeState struct {
	pairs []int32   // TCP client pairs between two VMs
	base  []float64 // each pair's typical SYN → SYN-ACK in µs
	truth []LatencyTruth
	carry float64
	tmpl  []byte
	ev    probe.Event
}

// hostProbe is one hypervisor's probe export.
type hostProbe struct {
	b        []byte
	n        uint32
	setOff   int
	seq      uint32
	opened   int64
	tmplNext int64
}

// hostHs is one hypervisor's hsflowd: what it reports, and its state.
type hostHs struct {
	hv     sflowhost.Hypervisor
	b      []byte
	seq    uint32 // datagrams
	polls  uint32
	next   int64
	last   int64   // previous poll
	busy   float64 // ms of CPU time, all CPUs
	idle   float64
	cpuMs  []float64 // per VM, exact
	diskRd []float64 // per VM read requests
	diskWr []float64
}

// LatencyTruth is what the probes measured on one directed pair (client →
// server): attempts by outcome at the client's tap, and the sums of the
// RTTs both taps exported.
type LatencyTruth struct {
	Src, Dst                       string
	SrcIP, DstIP                   netip.Addr
	Attempts, Established          uint64
	Refused, TimedOut              uint64
	ClientRTTSumUs, ServerRTTSumUs uint64
	ClientRecords, ServerRecords   uint64
	BaseUs                         float64 // the pair's typical round trip
}

// flavor is VM i's size (the inventory's vcpus and memory_kib).
func (c *Cloud) flavor(i int) (name string, vcpus int, memKiB uint64) {
	fl := flavors[i%len(flavors)]
	if c.VMs[i].Role == "db" {
		fl = flavors[2]
	}
	return fl.name, fl.vcpus, fl.mem
}

// BusyVM is the VM whose CPU the demo pins near 100% (the vm-cpu-high
// rule's subject): the first batch VM, else the first VM.
func (c *Cloud) BusyVM() int {
	for i := range c.VMs {
		if c.VMs[i].Role == "batch" {
			return i
		}
	}
	return 0
}

func uuidBytes(s string) (u [16]byte) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err == nil && len(b) == 16 {
		copy(u[:], b)
	}
	return u
}

func (g *Generator) initProbe() {
	c := g.c
	ps := &g.pr
	for i := range c.pairs {
		p := &c.pairs[i]
		if p.proto != 6 || !p.client || p.src < 0 || p.dst < 0 {
			continue
		}
		if p.kind != kindNormal && p.kind != kindSYNOnly && p.kind != kindRefused {
			continue
		}
		base := 150 + 350*g.r2.float()
		if g.r2.intn(20) == 0 { // a slow pair: a congested path or a busy server
			base = 3000 + 5000*g.r2.float()
		}
		ps.pairs = append(ps.pairs, int32(i))
		ps.base = append(ps.base, base)
		ps.truth = append(ps.truth, LatencyTruth{Src: c.VMs[p.src].Name, Dst: c.VMs[p.dst].Name,
			SrcIP: c.VMs[p.src].IP, DstIP: c.VMs[p.dst].IP, BaseUs: base})
	}
	ps.tmpl = probe.TemplateSet()
	g.hp = make([]hostProbe, len(c.Hosts))
	for i := range g.hp {
		g.hp[i].b = make([]byte, 0, g.cfg.MaxDatagram)
		g.hp[i].tmplNext = g.start
	}
}

// handshakes times the connection attempts due in span ns.
func (g *Generator) handshakes(t, span int64) {
	ps := &g.pr
	if len(ps.pairs) == 0 {
		return
	}
	ps.carry += g.cfg.ProbeRate * float64(span) / 1e9
	n := int(ps.carry)
	ps.carry -= float64(n)
	for range n {
		g.handshake(g.r2.intn(len(ps.pairs)), t)
	}
}

// handshake is one connection attempt on probe pair i: the client tap's
// record and, when the server answered, the server tap's.
func (g *Generator) handshake(i int, t int64) {
	c, ps, r := g.c, &g.pr, g.r2
	p := &c.pairs[ps.pairs[i]]
	if !p.active {
		return
	}
	tr := &ps.truth[i]
	cv, sv := &c.VMs[p.src], &c.VMs[p.dst]
	k := uint16(0)
	if p.flows > 1 {
		k = uint16(r.intn(int(p.flows)))
	}
	ps.ev = probe.Event{Time: t, Kind: decoder.ProbeEventHandshake, SrcMAC: cv.MAC, DstMAC: sv.MAC,
		Src: cv.IP, Dst: sv.IP, SPort: p.ephBase + k, DPort: p.svcPort, Proto: 6}
	ev := &ps.ev
	rtt, guest := 0.0, 0.0
	switch p.kind {
	case kindSYNOnly:
		ev.Outcome, ev.Retries = decoder.ProbeOutcomeTimedOut, 2
		tr.TimedOut++
	case kindRefused:
		guest = 15 + 20*r.float()
		rtt = ps.base[i]*0.6 + guest
		ev.Outcome = decoder.ProbeOutcomeRefused
		tr.Refused++
	default:
		rtt = ps.base[i] * (0.8 + 0.4*r.float())
		if r.intn(100) == 0 { // a busy moment on the path or in the server: the tail
			rtt *= 2 + 2*r.float()
		}
		guest = rtt * (0.1 + 0.1*r.float())
		ev.Outcome = decoder.ProbeOutcomeEstablished
		tr.Established++
	}
	tr.Attempts++
	ev.Side, ev.IfIndex, ev.RTT = decoder.ProbeSideClient, cv.IfIndex, uint32(rtt)
	g.probeRecord(int(cv.Host), t)
	tr.ClientRecords++
	tr.ClientRTTSumUs += uint64(ev.RTT)
	if ev.Outcome != decoder.ProbeOutcomeTimedOut {
		ev.Side, ev.IfIndex, ev.RTT = decoder.ProbeSideServer, sv.IfIndex, uint32(guest)
		g.probeRecord(int(sv.Host), t)
		tr.ServerRecords++
		tr.ServerRTTSumUs += uint64(ev.RTT)
	}
}

// probeRecord appends g.pr.ev to host hi's probe message.
func (g *Generator) probeRecord(hi int, t int64) {
	h := &g.hp[hi]
	if len(h.b) > 0 && len(h.b)+probeRecordMax > g.cfg.MaxDatagram {
		g.probeSend(hi, t)
	}
	if len(h.b) == 0 {
		h.b = ipfixOpen(h.b)
		h.opened = t
		if t >= h.tmplNext {
			h.b = append(h.b, g.pr.tmpl...)
			h.tmplNext = t + int64(g.cfg.TemplateInterval)
		}
		h.setOff = len(h.b)
		h.b = be.AppendUint16(h.b, probe.TemplateIPv4)
		h.b = be.AppendUint16(h.b, 0)
	}
	h.b, _ = probe.AppendRecord(h.b, &g.pr.ev)
	h.n++
	g.stats.ProbeRecords++
}

func (g *Generator) probeSend(hi int, t int64) {
	h := &g.hp[hi]
	if h.n == 0 {
		h.b = h.b[:0]
		return
	}
	be.PutUint16(h.b[h.setOff+2:], uint16(len(h.b)-h.setOff))
	ipfixClose(h.b, uint32(t/1e9), h.seq, probeDomain0+uint32(hi)+1)
	g.sink.Send(IPFIX, hi, h.b)
	g.stats.IPFIXMessages++
	g.stats.Bytes += uint64(len(h.b))
	h.seq += h.n
	h.n = 0
	h.b = h.b[:0]
}

func (g *Generator) initHsflowd() {
	c := g.c
	g.hs = make([]hostHs, len(c.Hosts))
	for hi := range c.Hosts {
		ch := &c.Hosts[hi]
		h := &g.hs[hi]
		h.hv = sflowhost.Hypervisor{Agent: ch.Addr, SubAgent: hsflowdSubAgent, Hostname: ch.Name,
			UUID:    uuidBytes(uuidOf(g.cfg.Seed^0x4057, uint64(hi))),
			CPU:     sflowhost.HostCPU{CPUNum: 32, CPUSpeed: 2400, ProcTotal: 600, Ext: true},
			NodeMHz: 2400, NodeCPUs: 32, NodeMem: 256 << 30,
			VMs: make([]sflowhost.VM, len(ch.VMs))}
		h.hv.Mem.Total = h.hv.NodeMem
		h.hv.Mem.SwapTotal, h.hv.Mem.SwapFree = 8<<30, 8<<30
		used := uint64(8 << 30) // the host's own
		for j, v := range ch.VMs {
			vm := &c.VMs[v]
			_, vcpus, mem := c.flavor(int(v))
			used += mem << 10
			h.hv.VMs[j] = sflowhost.VM{Name: vm.Name, UUID: uuidBytes(vm.UUID), MAC: vm.MAC, IfIndex: vm.IfIndex,
				DSIndex: 65536 + uint32(j) + 1, State: 1, VCPUs: uint32(vcpus), Memory: mem << 10, MaxMemory: mem << 10,
				Disk: sflowhost.VirtDiskIO{Capacity: 40 << 30, Allocation: (8 + uint64(g.r2.intn(16))) << 30}}
		}
		// the page cache and buffers are used memory that counts as available
		h.hv.Mem.Cached, h.hv.Mem.Buffers = 24<<30, 2<<30
		used += h.hv.Mem.Cached + h.hv.Mem.Buffers
		h.hv.Mem.Free = h.hv.Mem.Total - min(used, h.hv.Mem.Total)
		h.hv.NodeMemFree = h.hv.Mem.Free
		h.cpuMs = make([]float64, len(ch.VMs))
		h.diskRd = make([]float64, len(ch.VMs))
		h.diskWr = make([]float64, len(ch.VMs))
		h.b = make([]byte, 0, g.cfg.MaxDatagram)
		// the first poll within a second of the start: resources show at once
		h.next = g.start + int64(hi)*int64(min(g.cfg.CounterInterval, 1e9))/int64(len(c.Hosts))
		h.last = h.next - int64(g.cfg.CounterInterval)
	}
}

// vmLoad is VM v's CPU use now as a share of its vCPUs: a per-VM level on
// its tenant's day, the busy VM pinned near 100%.
func (g *Generator) vmLoad(v int32, t int64) float64 {
	if int(v) == g.busy {
		return 0.97 + 0.02*g.r2.float()
	}
	level := 0.05 + 0.45*float64(uint32(v)*2654435761>>24)/256
	return min(0.95, level*g.dayFactor(int(g.c.VMs[v].Tenant), t)*(0.9+0.2*g.r2.float()))
}

// hsPoll is host hi's hsflowd poll at t: counters advanced by what the VMs
// did since the previous poll, then its datagrams (the host's sample and
// the VMs', as many per datagram as fit).
func (g *Generator) hsPoll(hi int, t int64) {
	c := g.c
	h := &g.hs[hi]
	dtMs := float64(t-h.last) / 1e6
	h.last = t
	h.polls++
	var vmBusy float64
	for j, v := range c.Hosts[hi].VMs {
		vm := &c.VMs[v]
		s := &h.hv.VMs[j]
		u := g.vmLoad(v, t)
		h.cpuMs[j] += u * float64(s.VCPUs) * dtMs
		vmBusy += u * float64(s.VCPUs) * dtMs
		s.CPUTimeMs = uint32(uint64(h.cpuMs[j]))
		day := g.dayFactor(int(vm.Tenant), t)
		h.diskRd[j] += 40 * day * dtMs / 1000
		h.diskWr[j] += 25 * day * dtMs / 1000
		s.Disk.RdReq, s.Disk.WrReq = uint32(uint64(h.diskRd[j])), uint32(uint64(h.diskWr[j]))
		s.Disk.RdBytes, s.Disk.WrBytes = uint64(h.diskRd[j])*16384, uint64(h.diskWr[j])*8192
		s.Disk.Allocation = min(s.Disk.Capacity, s.Disk.Allocation+s.Disk.WrBytes/1024)
		s.Disk.Available = s.Disk.Capacity - s.Disk.Allocation
		// the guest's view of its port: it received what the switch sent it
		s.Net = sflowhost.NetIO{BytesIn: vm.outBytes, PktsIn: uint32(vm.outPkts), BytesOut: vm.inBytes, PktsOut: uint32(vm.inPkts)}
		s.Net.DropsIn = vm.outDrops // what the switch port discarded towards it
		if vm.Errors {
			s.Net.DropsIn += uint32(vm.outPkts / 8000)
		}
	}
	total := 32 * dtMs
	busy := min(total, vmBusy*1.05+0.02*total) // the VMs, their emulation, the host's own
	h.busy += busy
	h.idle += total - busy
	cpu := &h.hv.CPU
	cpu.User, cpu.System = uint32(uint64(h.busy*0.75)), uint32(uint64(h.busy*0.25))
	cpu.Guest = uint32(uint64(h.busy * 0.7))
	cpu.Idle = uint32(uint64(h.idle))
	cpu.Uptime = uint32((t-g.start)/1e9) + 86400
	cpu.LoadOne = float32(busy / dtMs)
	cpu.LoadFive, cpu.LoadFifteen = cpu.LoadOne, cpu.LoadOne
	cpu.ProcRun = uint32(math.Ceil(busy / dtMs))

	lim := g.cfg.MaxDatagram
	open := func() {
		h.seq++
		h.b = sflowhost.AppendHeader(h.b[:0], h.hv.Agent, h.hv.SubAgent, h.seq, uint32((t-g.start)/1e6)+1000)
	}
	open()
	h.b = h.hv.AppendHostSample(h.b, h.polls)
	n := uint32(1)
	for j := range h.hv.VMs {
		if len(h.b)+h.hv.VMSampleLen(j) > lim {
			g.hsSend(hi, n)
			open()
			n = 0
		}
		h.b = h.hv.AppendVMSample(h.b, h.polls, j)
		n++
	}
	g.hsSend(hi, n)
}

func (g *Generator) hsSend(hi int, n uint32) {
	h := &g.hs[hi]
	sflowhost.SetSampleCount(h.b, n)
	g.sink.Send(SFlow, hi, h.b)
	g.stats.SFlowDatagrams++
	g.stats.HostSamples += uint64(n)
	g.stats.Bytes += uint64(len(h.b))
}

// extrasPeriodic: hsflowd polls and probe flushes due at t.
func (g *Generator) extrasPeriodic(t int64) {
	for hi := range g.hs {
		if h := &g.hs[hi]; t >= h.next {
			g.hsPoll(hi, t)
			h.next += int64(g.cfg.CounterInterval)
			if h.next <= t {
				h.next = t + int64(g.cfg.CounterInterval)
			}
		}
	}
	for hi := range g.hp {
		if h := &g.hp[hi]; h.n > 0 && t-h.opened >= int64(g.cfg.FlushInterval) {
			g.probeSend(hi, t)
		}
	}
}

// LatencyTruth returns what the probes measured, per pair that had an
// attempt.
func (g *Generator) LatencyTruth() []LatencyTruth {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []LatencyTruth
	for _, tr := range g.pr.truth {
		if tr.Attempts > 0 {
			out = append(out, tr)
		}
	}
	return out
}

// HostTruth returns what each hypervisor's hsflowd reported last (copies).
func (g *Generator) HostTruth() []sflowhost.Hypervisor {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]sflowhost.Hypervisor, len(g.hs))
	for i := range g.hs {
		out[i] = g.hs[i].hv
		out[i].VMs = append([]sflowhost.VM(nil), g.hs[i].hv.VMs...)
	}
	return out
}
