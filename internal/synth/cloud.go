// Package synth is a synthetic cloud: hypervisors, VMs in tenants, a
// matching static inventory, and traffic between them that it exports as
// real sFlow v5 and IPFIX datagrams over UDP — one exporter identity per
// hypervisor — while keeping the ground truth of what it sent. `vmflow demo`
// feeds it into an in-process vmflow; `vmflow synth` sends it to a separate
// one, scaled up for the scale benchmarks.
//
// The traffic model: conversations (client → server on the server's service
// port, and the replies) within a tenant, across tenants and with external
// addresses, each a pair of directed VM pairs with a heavy-tailed (Pareto)
// weight, so a few elephants carry most bytes and most pairs are mice. The
// rate of each tenant follows a sinusoid (a "day" compressed to minutes),
// with bursts on a random pair, port scans (one VM probing many peers and
// ports with SYNs, mostly unanswered, some refused with RST), new pairs now
// and then, failing connections (SYNs without SYN-ACK, SYNs answered with
// RST) and UDP to closed ports answered with ICMP port unreachable.
//
// Sampling is simulated exactly: each flow sample of a pair stands for a
// geometric number of packets (mean N for 1-in-N), and that number is what
// the truth counts, so vmflow's estimate N × samples has exactly the
// variance its 95% interval assumes. IPFIX (1-in-1) carries the same
// packets, exported per flow every IPFIX interval: exact.
package synth

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
)

// Host is one hypervisor with one bridge.
type Host struct {
	Name   string
	Addr   netip.Addr // sFlow agent address and IPFIX source address
	Bridge string
	DPID   uint64
	IPFIX  bool    // also exports IPFIX
	VMs    []int32 // indices into Cloud.VMs
}

// VM is one virtual machine with one interface.
type VM struct {
	Name    string
	UUID    string
	Tenant  int32
	Host    int32
	Role    string
	MAC     [6]byte
	IP      netip.Addr
	Tap     string
	IfIndex uint32 // the tap's ifIndex on its host (sFlow data source)
	OFPort  uint32
	Errors  bool // its port shows errors and discards

	ip4 [4]byte
	// truth of the port counters (switch side: in = sent by the VM)
	inPkts, inBytes, outPkts, outBytes uint64
	flowSeq, flowPool                  uint32
	cntSeq                             uint32
	outDrops                           uint32 // occasional discards towards the VM
}

// Tenant is one project.
type Tenant struct {
	ID     string
	Name   string
	Subnet netip.Prefix
	First  int32 // first VM index
	N      int32 // VMs

	weight float64 // sum of its active pairs' weights
	phase  float64 // day-pattern phase
}

// Endpoint kinds of a pair side.
const (
	extBase = -1 // endpoint e < 0 is external address Cloud.ext[extBase-e]
)

// Pair kinds.
const (
	kindNormal    uint8 = iota
	kindSYNOnly         // connection attempts nobody answers
	kindRefused         // SYNs answered by a kindRST pair
	kindRST             // RST|ACK replies
	kindUDPClosed       // UDP to a closed port, answered by kindUnreach
	kindUnreach         // ICMP port unreachable replies
	kindScan            // probes of a port scan (a port per probe)
)

// pair is one directed pair (src → dst) and its truth.
type pair struct {
	src, dst int32 // VM index, or external (< 0)
	host     int32 // hypervisor whose bridge the packets enter first
	dupHost  int32 // hypervisor where they enter again (remote VM), or -1
	group    int32 // tenant whose rate pattern it follows
	inIf     uint32
	outIf    uint32
	weight   float64
	largeP   uint32 // P(full-size frame) × 2^32
	small    uint16 // frame size of the other packets
	svcPort  uint16
	ephBase  uint16
	flows    uint8
	proto    uint8
	kind     uint8
	client   bool // src is the client: sport ephemeral, dport the service
	active   bool
	acc      int32 // first IPFIX accumulator, or -1

	sfSamples, sfPkts, sfBytes uint64
	sfSampled                  uint64 // frame bytes of the samples
	dupSamples                 uint64
	ipPkts, ipBytes            uint64
}

// Cloud is the generated model.
type Cloud struct {
	Hosts   []Host
	VMs     []VM
	Tenants []Tenant

	ext     [][4]byte // external and dark addresses
	pairs   []pair
	reserve []int32 // pairs that start talking later (NewPairEvery)
	nacc    int     // IPFIX flow accumulators needed
}

var tenantNames = []string{"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka",
	"tyrell", "cyberdyne", "soylent", "aperture", "vandelay", "oscorp", "massive", "pied-piper"}

var tenantTitles = map[string]string{"acme": "ACME Corp", "globex": "Globex Corporation", "initech": "Initech",
	"umbrella": "Umbrella Corp", "hooli": "Hooli", "stark": "Stark Industries", "wayne": "Wayne Enterprises",
	"wonka": "Wonka Industries", "tyrell": "Tyrell Corp", "cyberdyne": "Cyberdyne Systems", "soylent": "Soylent",
	"aperture": "Aperture Science", "vandelay": "Vandelay Industries", "oscorp": "Oscorp", "massive": "Massive Dynamic",
	"pied-piper": "Pied Piper"}

// roles cycle within a tenant; the service port a role listens on.
var roleCycle = []string{"web", "app", "web", "db", "app", "cache", "worker", "mq", "lb", "app", "web", "batch"}

var rolePort = map[string]uint16{"web": 443, "lb": 443, "app": 8080, "db": 5432, "cache": 6379,
	"mq": 5672, "worker": 9100, "batch": 22}

const (
	ifUplink = 1 // ifIndex of every host's uplink port
	ifTunnel = 2 // ifIndex of every host's tunnel port
	tapIf0   = 100
	maxFlows = 8
	gwMAC0   = 0xfa
)

var gatewayMAC = [6]byte{gwMAC0, 0x16, 0x3e, 0x00, 0x00, 0x01}

// Build generates the cloud of cfg (deterministic for cfg.Seed).
func Build(cfg Config) (*Cloud, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := newRNG(cfg.Seed)
	c := &Cloud{}
	width := len(fmt.Sprint(cfg.Hosts))
	if width < 2 {
		width = 2
	}
	base := cfg.AddrBase.As4()
	b32 := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for i := 0; i < cfg.Hosts; i++ {
		a := b32 + uint32(i)
		if a>>24 != 127 {
			return nil, fmt.Errorf("synth: %d hosts from %s leave 127.0.0.0/8", cfg.Hosts, cfg.AddrBase)
		}
		c.Hosts = append(c.Hosts, Host{
			Name:   fmt.Sprintf("hv-%0*d", width, i+1),
			Addr:   netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}),
			Bridge: "br-int",
			DPID:   0x0000_5254_0000_0000 | uint64(i+1),
		})
	}
	// IPFIX on round(share × hosts) hosts, spread evenly.
	nIPFIX := int(math.Round(cfg.IPFIXShare * float64(cfg.Hosts)))
	for i := range c.Hosts {
		c.Hosts[i].IPFIX = nIPFIX > 0 && (i*nIPFIX)/cfg.Hosts != ((i+1)*nIPFIX)/cfg.Hosts
	}

	per := cfg.VMs / cfg.Tenants
	extra := cfg.VMs % cfg.Tenants
	var v int32
	for t := 0; t < cfg.Tenants; t++ {
		name := tenantNames[t%len(tenantNames)]
		title := tenantTitles[name]
		if t >= len(tenantNames) {
			name = fmt.Sprintf("%s-%d", name, t/len(tenantNames)+1)
			title = fmt.Sprintf("%s %d", title, t/len(tenantNames)+1)
		}
		n := per
		if t < extra {
			n++
		}
		sub := uint32(10)<<24 | uint32(t)<<14
		tn := Tenant{
			ID: name, Name: title, First: v, N: int32(n),
			Subnet: netip.PrefixFrom(u32addr(sub), 18),
			phase:  (r.float() - 0.5) * 1.5,
		}
		roleN := map[string]int{}
		for k := 0; k < n; k++ {
			role := roleCycle[k%len(roleCycle)]
			roleN[role]++
			host := int32((int(v) + t) % cfg.Hosts)
			ip := u32addr(sub + 10 + uint32(k))
			vm := VM{
				Name:   fmt.Sprintf("%s-%s-%d", name, role, roleN[role]),
				UUID:   uuidOf(cfg.Seed, uint64(v)),
				Tenant: int32(t), Host: host, Role: role,
				MAC: [6]byte{0x52, 0x54, 0x00, byte((v + 1) >> 16), byte((v + 1) >> 8), byte(v + 1)},
				IP:  ip, ip4: ip.As4(),
				Errors: r.intn(40) == 0,
			}
			h := &c.Hosts[host]
			vm.Tap = fmt.Sprintf("vnet%d", len(h.VMs))
			vm.IfIndex = tapIf0 + uint32(len(h.VMs))
			vm.OFPort = 10 + uint32(len(h.VMs))
			h.VMs = append(h.VMs, v)
			c.VMs = append(c.VMs, vm)
			v++
		}
		c.Tenants = append(c.Tenants, tn)
	}
	// External peers (documentation ranges) and, per tenant, dark
	// addresses in its subnet that a scan probes.
	for _, p := range []string{"192.0.2.", "198.51.100.", "203.0.113."} {
		for i := 1; i < 255; i++ {
			a := netip.MustParseAddr(p + fmt.Sprint(i)).As4()
			c.ext = append(c.ext, a)
		}
	}
	c.buildPairs(cfg, r)
	return c, nil
}

func u32addr(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

func uuidOf(seed, i uint64) string {
	r := newRNG(seed*0x9e3779b97f4a7c15 + i + 1)
	a, b := r.u64(), r.u64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", uint32(a>>32), uint16(a>>16), uint16(a)&0xfff,
		uint16(b>>48)&0x3fff|0x8000, b&0xffffffffffff)
}

// darkAddr is an address in tenant t's subnet that no VM has.
func (c *Cloud) darkAddr(t int32, j int) [4]byte {
	tn := &c.Tenants[t]
	a := tn.Subnet.Addr().As4()
	u := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	u += 10 + uint32(tn.N) + 20 + uint32(j%64)
	return [4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}
}

func (c *Cloud) buildPairs(cfg Config, r *rng) {
	seen := make(map[uint64]bool, cfg.Pairs*2)
	key := func(s, d int32) uint64 { return uint64(uint32(s))<<32 | uint64(uint32(d)) }
	reserveWant := max(3, cfg.Pairs/50)
	active, forced := 0, 0
	for tries := 0; tries < 20*cfg.Pairs+1000 && (active < cfg.Pairs || len(c.reserve) < reserveWant); tries++ {
		isReserve := active >= cfg.Pairs
		// pick client and server
		t := int32(r.intn(len(c.Tenants)))
		tn := &c.Tenants[t]
		cl := tn.First + int32(r.intn(int(tn.N)))
		var sv int32
		x := r.float()
		proto := uint8(6)
		switch {
		case x < 0.05: // outbound to the internet
			sv = extBase - int32(r.intn(len(c.ext)))
		case x < 0.10: // the internet to a web VM
			sv = cl
			cl = extBase - int32(r.intn(len(c.ext)))
		case x < 0.17 && len(c.Tenants) > 1: // another tenant's service
			o := int32(r.intn(len(c.Tenants) - 1))
			if o >= t {
				o++
			}
			ot := &c.Tenants[o]
			sv = ot.First + int32(r.intn(int(ot.N)))
		default:
			sv = tn.First + int32(r.intn(int(tn.N)))
		}
		if sv == cl || seen[key(cl, sv)] || seen[key(sv, cl)] {
			continue
		}
		port := uint16(443)
		if sv >= 0 {
			port = rolePort[c.VMs[sv].Role]
		}
		kind := kindNormal
		y := r.float()
		if sv >= 0 && cl >= 0 && forced < 3 {
			// every cloud has each failure pattern at least once
			y = []float64{0.06, 0.08, 0.095}[forced]
			forced++
		}
		switch {
		case y < 0.05:
			proto, port = 17, []uint16{53, 8125, 123, 514}[r.intn(4)]
		case y < 0.07 && sv >= 0:
			kind = kindSYNOnly
		case y < 0.09 && sv >= 0:
			kind = kindRefused
		case y < 0.10 && sv >= 0:
			kind, proto, port = kindUDPClosed, 17, []uint16{161, 69, 5060}[r.intn(3)]
		}
		w := math.Min(math.Pow(1-r.float(), -1/1.1), 20000) // Pareto, alpha 1.1
		flows := uint8(1 + r.intn(maxFlows))
		if w > 50 {
			flows = uint8(1 + r.intn(2)) // elephants: few long flows
		}
		eph := uint16(32768 + r.intn(28000))
		req := pair{src: cl, dst: sv, weight: w, small: uint16(60 + r.intn(340)), largeP: probU32(0.1),
			svcPort: port, ephBase: eph, flows: flows, proto: proto, kind: kind, client: true}
		rep := pair{src: sv, dst: cl, weight: w * (0.5 + 1.5*r.float()), small: 66, largeP: probU32(0.7),
			svcPort: port, ephBase: eph, flows: flows, proto: proto, kind: kindNormal}
		if proto == 17 {
			rep.largeP, req.largeP = 0, 0
			rep.small = uint16(80 + r.intn(400))
		}
		twoWay := true
		switch kind {
		case kindSYNOnly:
			req.weight, req.small, req.largeP, twoWay = 0.3, 74, 0, false
		case kindRefused:
			req.weight, req.small, req.largeP = 0.3, 74, 0
			rep.weight, rep.small, rep.largeP, rep.kind = 0.3, 60, 0, kindRST
		case kindUDPClosed:
			req.weight, req.largeP = 0.2, 0
			rep.weight, rep.small, rep.largeP, rep.kind, rep.proto = 0.2, 70, 0, kindUnreach, 1
		}
		if !twoWay && active+1 > cfg.Pairs && !isReserve {
			continue
		}
		n := 1
		if twoWay {
			n = 2
		}
		for i, p := range []pair{req, rep}[:n] {
			p.active = !isReserve
			c.placePair(&p)
			seen[key(p.src, p.dst)] = true
			c.pairs = append(c.pairs, p)
			if isReserve {
				c.reserve = append(c.reserve, int32(len(c.pairs)-1))
			} else {
				active++
			}
			_ = i
		}
	}
	// IPFIX accumulators for pairs entering an IPFIX bridge.
	for i := range c.pairs {
		p := &c.pairs[i]
		p.acc = -1
		if c.Hosts[p.host].IPFIX {
			p.acc = int32(c.nacc)
			c.nacc += maxFlows
		}
	}
	for i := range c.pairs {
		if p := &c.pairs[i]; p.active {
			c.Tenants[p.group].weight += p.weight
		}
	}
}

// placePair sets the pair's exporting host(s), interfaces and group.
func (c *Cloud) placePair(p *pair) {
	p.dupHost = -1
	switch {
	case p.src >= 0:
		s := &c.VMs[p.src]
		p.host, p.group, p.inIf = s.Host, s.Tenant, s.IfIndex
		switch {
		case p.dst < 0:
			p.outIf = ifUplink
		case c.VMs[p.dst].Host == s.Host:
			p.outIf = c.VMs[p.dst].IfIndex
		default:
			p.outIf = ifTunnel
			p.dupHost = c.VMs[p.dst].Host
		}
	default: // from outside: enters at the destination's bridge, from the uplink
		d := &c.VMs[p.dst]
		p.host, p.group, p.inIf, p.outIf = d.Host, d.Tenant, ifUplink, d.IfIndex
	}
}

// endpointName is a VM's name or "ip:ADDR" (the API's naming of non-VMs).
func (c *Cloud) endpointName(e int32) string {
	if e >= 0 {
		return c.VMs[e].Name
	}
	return "ip:" + netip.AddrFrom4(c.ext[extBase-e]).String()
}

func (c *Cloud) endpointIP(e int32) [4]byte {
	if e >= 0 {
		return c.VMs[e].ip4
	}
	return c.ext[extBase-e]
}

func (c *Cloud) endpointMAC(e int32) [6]byte {
	if e >= 0 {
		return c.VMs[e].MAC
	}
	return gatewayMAC
}

// Summary is one line describing the cloud.
func (c *Cloud) Summary() string {
	active := 0
	for i := range c.pairs {
		if c.pairs[i].active {
			active++
		}
	}
	nIPFIX := 0
	for _, h := range c.Hosts {
		if h.IPFIX {
			nIPFIX++
		}
	}
	names := make([]string, 0, 4)
	for i, t := range c.Tenants {
		if i == 4 {
			names = append(names, "...")
			break
		}
		names = append(names, t.ID)
	}
	return fmt.Sprintf("%d hypervisors (%d also IPFIX), %d VMs in %d tenants (%s), %d active directed pairs (+%d later)",
		len(c.Hosts), nIPFIX, len(c.VMs), len(c.Tenants), strings.Join(names, ", "), active, len(c.reserve))
}

func probU32(p float64) uint32 { return uint32(p * (1 << 32)) }
