package synth

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// Proto is an export protocol.
type Proto uint8

const (
	SFlow Proto = iota
	IPFIX
)

func (p Proto) String() string {
	if p == IPFIX {
		return "ipfix"
	}
	return "sflow"
}

// Sink receives finished datagrams: b is only valid during the call.
type Sink interface {
	Send(p Proto, host int, b []byte)
	Flush()
}

// Stats counts what the generator produced.
type Stats struct {
	FlowSamples    uint64 `json:"flow_samples"`    // sFlow flow samples (including destination-side ones)
	CounterSamples uint64 `json:"counter_samples"` // sFlow counter samples
	SFlowDatagrams uint64 `json:"sflow_datagrams"`
	IPFIXRecords   uint64 `json:"ipfix_records"`
	IPFIXMessages  uint64 `json:"ipfix_messages"`
	Bytes          uint64 `json:"bytes"`
	Behind         uint64 `json:"behind"` // samples not generated because the generator fell behind its rate
	Scans          int    `json:"scans"`
	Bursts         int    `json:"bursts"`
	NewPairs       int    `json:"new_pairs"`
	ProbeRecords   uint64 `json:"probe_records"` // latency probe IPFIX records (in IPFIXMessages)
	HostSamples    uint64 `json:"host_samples"`  // hsflowd counter samples (in SFlowDatagrams)
}

type hostState struct {
	agent [4]byte

	sf       []byte
	sfN      uint32
	sfOpened int64
	sfSeq    uint32

	ip        []byte
	ipN       uint32 // records in the open message
	ipSetOff  int    // offset of the open data set, 0 = none
	ipSetID   uint16
	ipOpened  int64
	ipSeq     uint32 // data records sent before the open message
	ipNext    int64  // next export of the flow cache
	tmplNext  int64
	pairs     []int32 // pairs entering this host's bridge (IPFIX export)
	pollNext  int64
	pollIdx   int
	pollEvery int64

	uplinkSeq, uplinkPool uint32
	tunnelSeq, tunnelPool uint32
}

type flowAcc struct {
	pkts, bytes  uint64
	first, last  int64
	flags        uint8
	sport, dport uint16
}

type group struct {
	pairs []int32
	tab   alias
}

type stream struct {
	pair  int32 // burst: that pair; scan: the scanner VM (kind scan)
	scan  bool
	rate  float64
	until int64
	carry float64
}

// Generator produces the cloud's traffic as datagrams. It is not safe for
// concurrent use except Truth and Stats, which may be called at any time.
type Generator struct {
	cfg   Config
	c     *Cloud
	r     *rng
	sink  Sink
	start int64 // unix ns of the start
	last  int64 // last Advance
	lnq   float64
	// sflowOn, ipfixOn: a target is set for the protocol
	sflowOn, ipfixOn bool

	hosts  []hostState
	groups []group
	cum    []float64 // cumulative group rates (scratch)
	acc    []flowAcc
	carry  float64

	streams   []stream
	nextBurst int64
	nextScan  int64
	nextNew   int64
	scanPairs map[uint64]int32
	scanPort  uint16

	mu    sync.Mutex
	stats Stats
	pk    pkt

	// the probes and hsflowd (extras.go), with their own random source so
	// that the traffic of a seed stays the same with or without them
	r2   *rng
	pr   probeState
	hp   []hostProbe
	hs   []hostHs
	busy int
}

// New makes a generator for cloud c sending to sink, starting at now.
func New(c *Cloud, cfg Config, sink Sink, now time.Time) *Generator {
	g := &Generator{cfg: cfg, c: c, r: newRNG(cfg.Seed ^ 0x5eed), sink: sink,
		start: now.UnixNano(), last: now.UnixNano(), scanPairs: map[uint64]int32{},
		sflowOn: cfg.SFlowTarget != "", ipfixOn: cfg.IPFIXTarget != ""}
	if cfg.SamplingRate > 1 {
		g.lnq = math.Log(1 - 1/float64(cfg.SamplingRate))
	}
	g.acc = make([]flowAcc, c.nacc)
	g.hosts = make([]hostState, len(c.Hosts))
	for i := range g.hosts {
		h := &g.hosts[i]
		h.agent = c.Hosts[i].Addr.As4()
		h.sf = make([]byte, 0, cfg.MaxDatagram)
		h.ip = make([]byte, 0, cfg.MaxDatagram)
		off := int64(i) * int64(cfg.IPFIXInterval) / int64(len(g.hosts))
		h.ipNext = g.start + off + int64(cfg.IPFIXInterval)
		h.tmplNext = g.start
		if n := len(c.Hosts[i].VMs); n > 0 {
			h.pollEvery = int64(cfg.CounterInterval) / int64(n)
		}
		h.pollNext = g.start + int64(i)*int64(cfg.CounterInterval)/int64(len(g.hosts))/int64(max(1, len(c.Hosts[i].VMs)))
	}
	for i := range c.pairs {
		p := &c.pairs[i]
		if p.acc >= 0 {
			h := &g.hosts[p.host]
			h.pairs = append(h.pairs, int32(i))
		}
	}
	g.groups = make([]group, len(c.Tenants))
	g.cum = make([]float64, len(c.Tenants))
	for i := range c.pairs {
		if p := &c.pairs[i]; p.active {
			gr := &g.groups[p.group]
			gr.pairs = append(gr.pairs, int32(i))
		}
	}
	for i := range g.groups {
		g.rebuild(i)
	}
	g.nextBurst = g.schedule(cfg.BurstEvery)
	g.nextScan = g.schedule(cfg.ScanEvery)
	g.nextNew = g.schedule(cfg.NewPairEvery)
	// the first scan and the first burst come early, so the demo shows them
	if cfg.ScanEvery > 0 {
		g.nextScan = g.start + int64(min(cfg.ScanEvery, 8*time.Second))
	}
	if cfg.BurstEvery > 0 {
		g.nextBurst = g.start + int64(min(cfg.BurstEvery, 5*time.Second))
	}
	g.streams = make([]stream, 0, 16)
	g.r2, g.busy = newRNG(cfg.Seed^0xe47a), -1
	if cfg.ProbeRate > 0 && g.ipfixOn {
		g.initProbe()
	}
	if cfg.HostStats && g.sflowOn {
		g.busy = c.BusyVM()
		g.initHsflowd()
	}
	return g
}

func (g *Generator) schedule(every time.Duration) int64 {
	if every <= 0 {
		return math.MaxInt64
	}
	return g.last + int64(every)
}

func (g *Generator) rebuild(gi int) {
	gr := &g.groups[gi]
	w := 0.0
	for _, pi := range gr.pairs {
		w += g.c.pairs[pi].weight
	}
	g.c.Tenants[gi].weight = w
	gr.tab.build(gr.pairs, func(pi int32) float64 { return g.c.pairs[pi].weight })
}

// dayFactor is tenant t's rate multiplier at time now (mean 1 over a day).
func (g *Generator) dayFactor(t int, now int64) float64 {
	if g.cfg.DayPeriod <= 0 || g.cfg.DayAmplitude == 0 {
		return 1
	}
	x := float64(now-g.start) / float64(g.cfg.DayPeriod) * 2 * math.Pi
	return 1 + g.cfg.DayAmplitude*math.Sin(x+g.c.Tenants[t].phase)
}

// Advance generates the traffic from the previous call up to now, and the
// counter samples, IPFIX exports and flushes due by then. A gap longer than
// 250 ms is not caught up (counted in Stats.Behind).
func (g *Generator) Advance(now time.Time) {
	t := now.UnixNano()
	dt := t - g.last
	if dt <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.events(t)
	// the steady traffic: tenants' rates now, then samples due
	total := 0.0
	for i := range g.groups {
		if len(g.groups[i].pairs) > 0 {
			total += g.c.Tenants[i].weight * g.dayFactor(i, t)
		}
		g.cum[i] = total
	}
	var allW float64
	for i := range g.c.Tenants {
		allW += g.c.Tenants[i].weight
	}
	span := min(dt, int64(250*time.Millisecond))
	if total > 0 && allW > 0 {
		rate := g.cfg.SampleRate * total / allW
		g.carry += rate * float64(span) / 1e9
		if dt > span {
			g.stats.Behind += uint64(rate * float64(dt-span) / 1e9)
		}
		n := int(g.carry)
		g.carry -= float64(n)
		for range n {
			x := g.r.float() * total
			lo, hi := 0, len(g.cum)-1 // first group whose cumulative rate exceeds x
			for lo < hi {
				m := (lo + hi) / 2
				if g.cum[m] <= x {
					lo = m + 1
				} else {
					hi = m
				}
			}
			gi := lo
			g.sample(g.groups[gi].tab.pick(g.r), t, 0)
		}
	}
	// bursts and scans
	for i := range g.streams {
		s := &g.streams[i]
		s.carry += s.rate * float64(span) / 1e9
		n := int(s.carry)
		s.carry -= float64(n)
		for range n {
			if s.scan {
				g.scanProbe(s.pair, t)
			} else {
				g.sample(s.pair, t, 0)
			}
		}
	}
	if g.hp != nil {
		g.handshakes(t, span)
	}
	g.periodic(t)
	g.extrasPeriodic(t)
	g.last = t
	g.sink.Flush()
}

// events starts and ends bursts, scans and new pairs.
func (g *Generator) events(t int64) {
	live := g.streams[:0]
	for _, s := range g.streams {
		if s.until > t {
			live = append(live, s)
		}
	}
	g.streams = live
	if t >= g.nextBurst && len(g.streams) < cap(g.streams) {
		g.nextBurst = t + int64(g.cfg.BurstEvery)
		gi := g.r.intn(len(g.groups))
		if gr := &g.groups[gi]; len(gr.pairs) > 0 {
			pi := gr.pairs[g.r.intn(len(gr.pairs))]
			if g.c.pairs[pi].kind == kindNormal {
				g.streams = append(g.streams, stream{pair: pi, rate: g.cfg.BurstFactor * g.cfg.SampleRate, until: t + int64(g.cfg.BurstFor)})
				g.stats.Bursts++
			}
		}
	}
	if t >= g.nextScan && len(g.streams) < cap(g.streams) {
		g.nextScan = t + int64(g.cfg.ScanEvery)
		v := int32(g.r.intn(len(g.c.VMs)))
		g.scanPort = uint16(40000 + g.r.intn(20000))
		g.streams = append(g.streams, stream{pair: v, scan: true, rate: g.cfg.ScanRate, until: t + int64(g.cfg.ScanFor)})
		g.stats.Scans++
	}
	if t >= g.nextNew {
		g.nextNew = t + int64(g.cfg.NewPairEvery)
		if len(g.c.reserve) > 0 {
			pi := g.c.reserve[0]
			g.c.reserve = g.c.reserve[1:]
			p := &g.c.pairs[pi]
			p.active = true
			// a new pair talks noticeably
			p.weight = max(p.weight, 20)
			gr := &g.groups[p.group]
			gr.pairs = append(gr.pairs, pi)
			g.rebuild(int(p.group))
			g.stats.NewPairs++
		}
	}
}

// sample generates one sampled packet of pair pi at time t: the sFlow flow
// sample at the pair's bridge (and the destination's), the truth, the port
// counters and the IPFIX flow cache. dport overrides the destination port
// (scans).
func (g *Generator) sample(pi int32, t int64, dport uint16) {
	c := g.c
	p := &c.pairs[pi]
	r := g.r
	k := uint8(0)
	if p.flows > 1 {
		k = uint8(r.intn(int(p.flows)))
	}
	size := int(p.small)
	if r.u32() < p.largeP {
		size = 1514
	}
	skip := r.geometric(g.cfg.SamplingRate, g.lnq)
	pk := &g.pk
	*pk = pkt{srcMAC: c.endpointMAC(p.src), dstMAC: c.endpointMAC(p.dst), srcIP: c.endpointIP(p.src), dstIP: c.endpointIP(p.dst),
		size: size, proto: p.proto, ttl: 64}
	eph := p.ephBase + uint16(k)
	if p.client {
		pk.sport, pk.dport = eph, p.svcPort
	} else {
		pk.sport, pk.dport = p.svcPort, eph
	}
	switch p.kind {
	case kindNormal:
		if p.proto == 6 {
			x := r.u32() >> 26 // 0..63
			switch {
			case x == 0 && p.client:
				pk.flags = 0x02
			case x == 0:
				pk.flags = 0x12
			case x == 1:
				pk.flags = 0x11
			case size > 100:
				pk.flags = 0x18
			default:
				pk.flags = 0x10
			}
		}
	case kindSYNOnly, kindRefused:
		pk.flags = 0x02
	case kindRST:
		pk.flags = 0x14
	case kindScan:
		pk.flags, pk.sport, pk.dport = 0x02, g.scanPort, dport
	case kindUnreach:
		pk.icmpType, pk.icmpCode = 3, 3
		pk.innerSrc, pk.innerDst, pk.innerProto = pk.dstIP, pk.srcIP, 17
		pk.innerSport, pk.innerDport = eph, p.svcPort
		pk.sport, pk.dport = 0, 0
	}
	if p.src < 0 {
		pk.ttl = 52
	}
	// sFlow at the bridge the packet enters first
	h := &g.hosts[p.host]
	var seq *uint32
	var pool *uint32
	switch {
	case p.src >= 0:
		vm := &c.VMs[p.src]
		seq, pool = &vm.flowSeq, &vm.flowPool
	default:
		seq, pool = &h.uplinkSeq, &h.uplinkPool
	}
	*seq++
	*pool += uint32(skip)
	g.putSample(p.host, *seq, p.inIf, *pool, p.inIf, p.outIf, t)
	p.sfSamples++
	p.sfPkts += skip
	p.sfBytes += skip * uint64(size)
	p.sfSampled += uint64(size)
	if p.src >= 0 {
		vm := &c.VMs[p.src]
		vm.inPkts += skip
		vm.inBytes += skip * uint64(size)
	}
	if p.dst >= 0 {
		vm := &c.VMs[p.dst]
		vm.outPkts += skip
		vm.outBytes += skip * uint64(size)
	}
	if p.dupHost >= 0 && g.cfg.DestinationSamples {
		dh := &g.hosts[p.dupHost]
		dh.tunnelSeq++
		dh.tunnelPool += uint32(skip)
		g.putSample(p.dupHost, dh.tunnelSeq, ifTunnel, dh.tunnelPool, ifTunnel, c.VMs[p.dst].IfIndex, t)
		p.dupSamples++
	}
	if p.acc >= 0 && g.ipfixOn {
		a := &g.acc[int(p.acc)+int(k)]
		if p.kind == kindScan {
			a = &g.acc[int(p.acc)+int(dport%maxFlows)]
		}
		if a.pkts == 0 {
			a.first = t
		}
		a.last = t
		a.pkts += skip
		a.bytes += skip * uint64(size)
		a.flags |= pk.flags
		a.sport, a.dport = pk.sport, pk.dport
	}
}

// putSample appends g.pk as a flow sample to host hi's datagram.
func (g *Generator) putSample(hi int32, seq, sourceID, pool, in, out uint32, t int64) {
	h := &g.hosts[hi]
	need := flowSampleLen(min(g.pk.size, g.cfg.HeaderBytes))
	g.sfRoom(h, int(hi), need, t)
	n := len(h.sf)
	h.sf = h.sf[:n+need]
	putFlowSample(h.sf[n:], seq, sourceID, g.cfg.SamplingRate, pool, in, out, &g.pk, g.cfg.HeaderBytes)
	h.sfN++
	g.stats.FlowSamples++
}

// sfRoom makes room for need bytes in h's open sFlow datagram.
func (g *Generator) sfRoom(h *hostState, hi, need int, t int64) {
	if len(h.sf) > 0 && len(h.sf)+need > g.cfg.MaxDatagram {
		g.sfSend(h, hi, t)
	}
	if len(h.sf) == 0 {
		h.sf = sfOpen(h.sf, h.agent)
		h.sfOpened = t
	}
}

func (g *Generator) sfSend(h *hostState, hi int, t int64) {
	if h.sfN == 0 || !g.sflowOn {
		h.sf = h.sf[:0]
		h.sfN = 0
		return
	}
	h.sfSeq++
	sfClose(h.sf, h.sfSeq, uint32((t-g.start)/1e6)+1000, h.sfN)
	g.sink.Send(SFlow, hi, h.sf)
	g.stats.SFlowDatagrams++
	g.stats.Bytes += uint64(len(h.sf))
	h.sf = h.sf[:0]
	h.sfN = 0
}

// scanProbe is one sampled probe of VM v's scan: a SYN to a neighbour (or
// an unused address of its subnet) on a random port; closed ports of
// VMs answer with RST.
func (g *Generator) scanProbe(v int32, t int64) {
	c := g.c
	vm := &c.VMs[v]
	tn := &c.Tenants[vm.Tenant]
	var dst int32
	if g.r.intn(4) == 0 {
		a := c.darkAddr(vm.Tenant, g.r.intn(64))
		dst = c.extIndex(a)
	} else {
		dst = tn.First + int32(g.r.intn(int(tn.N)))
		if dst == v {
			return
		}
	}
	port := uint16(1 + g.r.intn(1024))
	pi := g.dynPair(v, dst, kindScan)
	g.sample(pi, t, port)
	if dst >= 0 && g.r.intn(3) == 0 {
		ri := g.dynPair(dst, v, kindRST)
		rp := &c.pairs[ri]
		rp.svcPort, rp.ephBase = port, g.scanPort
		g.sample(ri, t, 0)
	}
}

// extIndex returns the external endpoint for address a, adding it.
func (c *Cloud) extIndex(a [4]byte) int32 {
	for i := len(c.ext) - 1; i >= 0 && i >= len(c.ext)-4096; i-- {
		if c.ext[i] == a {
			return extBase - int32(i)
		}
	}
	c.ext = append(c.ext, a)
	return extBase - int32(len(c.ext)-1)
}

// dynPair returns the pair src → dst made by a scan, adding it.
func (g *Generator) dynPair(src, dst int32, kind uint8) int32 {
	key := uint64(uint32(src))<<32 | uint64(uint32(dst))
	if pi, ok := g.scanPairs[key]; ok {
		return pi
	}
	c := g.c
	p := pair{src: src, dst: dst, small: 60, flows: 1, proto: 6, kind: kind, client: kind == kindScan, active: true}
	c.placePair(&p)
	p.acc = -1
	if c.Hosts[p.host].IPFIX {
		p.acc = int32(len(g.acc))
		g.acc = append(g.acc, make([]flowAcc, maxFlows)...)
	}
	c.pairs = append(c.pairs, p)
	pi := int32(len(c.pairs) - 1)
	if p.acc >= 0 {
		g.hosts[p.host].pairs = append(g.hosts[p.host].pairs, pi)
	}
	g.scanPairs[key] = pi
	return pi
}

// periodic: counter polling, IPFIX exports and templates, flushes.
func (g *Generator) periodic(t int64) {
	for hi := range g.hosts {
		h := &g.hosts[hi]
		if h.pollEvery > 0 {
			vms := g.c.Hosts[hi].VMs
			for n := 0; h.pollNext <= t && n < len(vms); n++ {
				g.poll(h, hi, vms[h.pollIdx], t)
				h.pollIdx = (h.pollIdx + 1) % len(vms)
				h.pollNext += h.pollEvery
			}
			if h.pollNext <= t {
				h.pollNext = t + h.pollEvery
			}
		}
		if g.c.Hosts[hi].IPFIX && g.ipfixOn {
			if t >= h.tmplNext {
				g.ipfixTemplates(h, hi, t)
				h.tmplNext = t + int64(g.cfg.TemplateInterval)
			}
			if t >= h.ipNext {
				g.ipfixExport(h, hi, t)
				h.ipNext += int64(g.cfg.IPFIXInterval)
				if h.ipNext <= t {
					h.ipNext = t + int64(g.cfg.IPFIXInterval)
				}
			}
		}
		if h.sfN > 0 && t-h.sfOpened >= int64(g.cfg.FlushInterval) {
			g.sfSend(h, hi, t)
		}
	}
}

func (g *Generator) poll(h *hostState, hi int, v int32, t int64) {
	vm := &g.c.VMs[v]
	pc := portCounters{ifIndex: vm.IfIndex, inOctets: vm.inBytes, outOctets: vm.outBytes,
		inPkts: vm.inPkts, outPkts: vm.outPkts, dpid: g.c.Hosts[hi].DPID, ofPort: vm.OFPort, name: vm.Tap}
	// now and then a port drops a few frames (a guest slow to drain its
	// tap queue): 1 poll in 40
	if g.r2.intn(40) == 0 {
		vm.outDrops += uint32(1 + g.r2.intn(40))
	}
	pc.outDiscards = vm.outDrops
	if vm.Errors {
		pc.inErrors = uint32(vm.inPkts / 20000)
		pc.inDiscards = uint32(vm.outPkts / 5000)
		pc.outDiscards += uint32(vm.outPkts / 8000)
	}
	need := counterSampleLen(vm.Tap)
	g.sfRoom(h, hi, need, t)
	n := len(h.sf)
	h.sf = h.sf[:n+need]
	vm.cntSeq++
	putCounterSample(h.sf[n:], vm.cntSeq, &pc)
	h.sfN++
	g.stats.CounterSamples++
}

func (g *Generator) ipfixTemplates(h *hostState, hi int, t int64) {
	g.ipfixSend(h, hi, t)
	b := appendTemplateSet(ipfixOpen(h.ip))
	ipfixClose(b, uint32(t/1e9), h.ipSeq, g.domain(hi))
	g.sink.Send(IPFIX, hi, b)
	g.stats.IPFIXMessages++
	g.stats.Bytes += uint64(len(b))
	h.ip = h.ip[:0]
}

// domain is the observation domain of host hi's bridge.
func (g *Generator) domain(hi int) uint32 { return uint32(hi + 1) }

// ipfixExport exports and clears the flow cache of host hi.
func (g *Generator) ipfixExport(h *hostState, hi int, t int64) {
	c := g.c
	for _, pi := range h.pairs {
		p := &c.pairs[pi]
		for k := 0; k < maxFlows; k++ {
			a := &g.acc[int(p.acc)+k]
			if a.pkts == 0 {
				continue
			}
			rec := flowRec{obsPoint: 1, srcMAC: c.endpointMAC(p.src), dstMAC: c.endpointMAC(p.dst),
				in: p.inIf, out: p.outIf, srcIP: c.endpointIP(p.src), dstIP: c.endpointIP(p.dst),
				proto: p.proto, ttl: 64, sport: a.sport, dport: a.dport, tcpFlags: a.flags,
				startUs: uint32(min((t-a.first)/1000, math.MaxUint32)), endUs: uint32(min((t-a.last)/1000, math.MaxUint32)),
				endReason: 2, packets: a.pkts, l2Octets: a.bytes}
			id, rl := uint16(tmplL4), recLenL4
			if p.proto == 1 {
				id, rl = tmplICMP, recLenICMP
				rec.icmpTypeCode = 3<<8 | 3
			}
			g.ipfixRoom(h, hi, id, rl, t)
			n := len(h.ip)
			h.ip = h.ip[:n+rl]
			putFlowRecord(h.ip[n:], &rec)
			h.ipN++
			g.stats.IPFIXRecords++
			p.ipPkts += a.pkts
			p.ipBytes += a.bytes
			*a = flowAcc{}
		}
	}
	g.ipfixSend(h, hi, t)
}

// ipfixRoom makes room for one record of template id in h's open message.
func (g *Generator) ipfixRoom(h *hostState, hi int, id uint16, rl int, t int64) {
	if len(h.ip) > 0 && len(h.ip)+rl+4 > g.cfg.MaxDatagram {
		g.ipfixSend(h, hi, t)
	}
	if len(h.ip) == 0 {
		h.ip = ipfixOpen(h.ip)
		h.ipOpened = t
		h.ipSetOff = 0
	}
	if h.ipSetOff == 0 || h.ipSetID != id {
		g.ipfixEndSet(h)
		if len(h.ip)+4+rl > g.cfg.MaxDatagram {
			g.ipfixSend(h, hi, t)
			h.ip = ipfixOpen(h.ip)
		}
		h.ipSetOff = len(h.ip)
		h.ipSetID = id
		h.ip = be.AppendUint16(h.ip, id)
		h.ip = be.AppendUint16(h.ip, 0)
	}
}

func (g *Generator) ipfixEndSet(h *hostState) {
	if h.ipSetOff > 0 {
		be.PutUint16(h.ip[h.ipSetOff+2:], uint16(len(h.ip)-h.ipSetOff))
		h.ipSetOff = 0
	}
}

func (g *Generator) ipfixSend(h *hostState, hi int, t int64) {
	if h.ipN == 0 {
		h.ip = h.ip[:0]
		h.ipSetOff = 0
		return
	}
	g.ipfixEndSet(h)
	ipfixClose(h.ip, uint32(t/1e9), h.ipSeq, g.domain(hi))
	g.sink.Send(IPFIX, hi, h.ip)
	g.stats.IPFIXMessages++
	g.stats.Bytes += uint64(len(h.ip))
	h.ipSeq += h.ipN
	h.ipN = 0
	h.ip = h.ip[:0]
}

// Finish exports everything still open (IPFIX flow caches, partial
// datagrams) at now, so the truth equals what was sent.
func (g *Generator) Finish(now time.Time) {
	t := now.UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	for hi := range g.hosts {
		h := &g.hosts[hi]
		if g.c.Hosts[hi].IPFIX && g.ipfixOn {
			g.ipfixExport(h, hi, t)
		}
		g.sfSend(h, hi, t)
	}
	for hi := range g.hp {
		g.probeSend(hi, t)
	}
	g.sink.Flush()
}

// Stats returns what was generated so far.
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// PairTruth is what one directed pair sent. Src and Dst are VM names or
// "ip:ADDR" for external and unused addresses (the API's naming).
type PairTruth struct {
	Src, Dst     string
	SrcHost      string // hypervisor whose bridge counts it (vmflow's count-once rule)
	Tenant       string
	SFlowSamples uint64 // flow samples at that bridge
	SFlowPackets uint64 // packets those samples stand for (the truth sFlow estimates)
	SFlowBytes   uint64
	SampledBytes uint64 // frame bytes of the samples themselves
	SrcIP, DstIP netip.Addr
	DupHost      string // where DupSamples were taken (\"\" if none)
	DupSamples   uint64 // samples at the destination's bridge (not to be counted)
	IPFIX        bool   // its bridge exports IPFIX
	IPFIXPackets uint64 // packets and bytes exported in IPFIX records
	IPFIXBytes   uint64
	Kind         string
}

var kindNames = []string{"normal", "syn-only", "refused", "rst", "udp-closed", "unreachable", "scan"}

// Truth returns every directed pair that sent anything (a scan's probes to
// a peer that also talks to the scanner normally add to that pair).
func (g *Generator) Truth() []PairTruth {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.c
	var out []PairTruth
	at := map[uint64]int{}
	for i := range c.pairs {
		p := &c.pairs[i]
		if p.sfSamples == 0 && p.ipPkts == 0 {
			continue
		}
		key := uint64(uint32(p.src))<<32 | uint64(uint32(p.dst))
		if j, ok := at[key]; ok {
			o := &out[j]
			o.SFlowSamples += p.sfSamples
			o.SFlowPackets += p.sfPkts
			o.SFlowBytes += p.sfBytes
			o.SampledBytes += p.sfSampled
			o.DupSamples += p.dupSamples
			o.IPFIXPackets += p.ipPkts
			o.IPFIXBytes += p.ipBytes
			o.Kind += "+" + kindNames[p.kind]
			continue
		}
		dup := ""
		if p.dupHost >= 0 && g.cfg.DestinationSamples {
			dup = c.Hosts[p.dupHost].Name
		}
		at[key] = len(out)
		out = append(out, PairTruth{
			SrcIP: netip.AddrFrom4(c.endpointIP(p.src)), DstIP: netip.AddrFrom4(c.endpointIP(p.dst)),
			DupHost: dup, SampledBytes: p.sfSampled,
			Src: c.endpointName(p.src), Dst: c.endpointName(p.dst), SrcHost: c.Hosts[p.host].Name,
			Tenant:       c.Tenants[p.group].ID,
			SFlowSamples: p.sfSamples, SFlowPackets: p.sfPkts, SFlowBytes: p.sfBytes, DupSamples: p.dupSamples,
			IPFIX: p.acc >= 0 && g.ipfixOn, IPFIXPackets: p.ipPkts, IPFIXBytes: p.ipBytes, Kind: kindNames[p.kind],
		})
	}
	return out
}
