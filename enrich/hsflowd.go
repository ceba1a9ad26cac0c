package enrich

import (
	"github.com/google/uuid"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/decoder"
)

// Hsflowd turns the sFlow host structures hsflowd sends (decoded into
// decoder.Batch.Hosts, decoder/sflow_host.go) into resource samples
// (Source = ResourceSourceHsflowd) for a ResourceSink, normally the
// ResourceTracker, which chooses one source per VM (libvirt first, then
// hsflowd; resource_rates.go).
//
// Attribution:
//   - A VM's sample (it names a parent in host_parent, or carries virt_*
//     records without virt_node) belongs to the inventory VM whose UUID is
//     host_descr's UUID, else to the VM owning one of its host_adapters
//     MACs. A VM the inventory does not know is dropped and counted
//     (result "unknown_vm"): hsflowd speaks of domains vmflow cannot name.
//     Its Host is the inventory VM's host (else its hypervisor's name as
//     below).
//   - The hypervisor's own sample (no host_parent) belongs to the inventory
//     host that the agent address is an exporter identity of, else to the
//     inventory host whose name is host_descr's hostname (case-insensitive,
//     or its first label: "hv1.example.net" is "hv1"), else to the host of
//     the inventory VMs this agent reported, else to the hostname as sent
//     (the agent address without one). Names the inventory does not know
//     are capped at HsflowdMaxUnknownHosts (result "host_limit" beyond).
//
// Mapping: virt_cpu cpuTime (ms) is CPUSample.TimeNs, nrVirtCpu VCPUs,
// state the run state; virt_memory memory is the balloon (hsflowd's
// mod_kvm.c sets it from virDomainInfo.memory, the memory the domain
// currently has, not what the guest uses: as UsedBytes it would read ~100%
// for every VM and trip the memory alert) and maxMemory the maximum (none
// when hsflowd sends -1, unlimited); virt_disk_io is one disk "*"
// (all disks), virt_net_io one vNIC "*" (rx = received by the guest).
// host_cpu gives busy (user+nice+system+intr+softirq+steal) and idle
// (idle+iowait) time; host_memory the total, and as free what Linux can
// hand out (free + buffers + page cache); virt_node the domain count (and
// memory and CPUs when host_memory/host_cpu are missing). hsflowd's CPU
// times are 32-bit milliseconds: a wrap reads as a reset (no rate for one
// interval), never as a negative or huge rate.
type Hsflowd struct {
	sink  ResourceSink
	index func() *Index

	uuids atomic.Pointer[uuidIndex]

	mu      sync.Mutex
	agents  map[hsAgentKey]*hsAgent
	unknown map[string]struct{} // host names not in the inventory

	samples map[string]prometheus.Counter
}

// HsflowdMaxAgents bounds the per-agent state (sFlow agent address and
// sub-agent); HsflowdMaxUnknownHosts the hypervisor names outside the
// inventory that are kept.
const (
	HsflowdMaxAgents       = 4096
	HsflowdMaxUnknownHosts = 256
)

type hsAgentKey struct {
	agent    netip.Addr
	subAgent uint32
}

// hsAgent remembers what one agent said of its hypervisor.
type hsAgent struct {
	hostname string // host_descr hostname of the physical host
	vmHost   string // inventory host of the last VM attributed via this agent
}

type uuidIndex struct {
	idx    *Index
	byUUID map[string]*VM
}

// NewHsflowd builds the adapter: samples go to sink, VMs are looked up in
// index() (the Enricher's current Index). Metrics (vmflow_hsflowd_*) go to
// reg (nil: none).
func NewHsflowd(sink ResourceSink, index func() *Index, reg prometheus.Registerer) *Hsflowd {
	h := &Hsflowd{sink: sink, index: index, agents: map[hsAgentKey]*hsAgent{}, unknown: map[string]struct{}{},
		samples: map[string]prometheus.Counter{}}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_hsflowd_samples_total",
		Help: "sFlow host-structure samples (hsflowd) by kind (vm, host) and result (attributed, unknown_vm, host_limit, agent_limit).",
	}, []string{"kind", "result"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				if ex, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					vec = ex
				}
			}
		}
	}
	for _, k := range []string{"vm", "host"} {
		for _, r := range []string{"attributed", "unknown_vm", "host_limit", "agent_limit"} {
			h.samples[k+"/"+r] = vec.WithLabelValues(k, r)
		}
	}
	return h
}

// BatchDecoder is what Tap wraps (aggregate.Decoder's method).
type BatchDecoder interface {
	Decode(src decoder.Source, from netip.AddrPort, data []byte, received int64, b *decoder.Batch) error
}

// Tap returns d with every successfully decoded batch's host structures
// handed to h. Batches without any cost one length check.
func (h *Hsflowd) Tap(d BatchDecoder) BatchDecoder { return hsTap{d: d, h: h} }

type hsTap struct {
	d BatchDecoder
	h *Hsflowd
}

func (t hsTap) Decode(src decoder.Source, from netip.AddrPort, data []byte, received int64, b *decoder.Batch) error {
	err := t.d.Decode(src, from, data, received, b)
	if err == nil && len(b.Hosts) > 0 {
		t.h.Put(b.Hosts)
	}
	return err
}

// Put attributes one datagram's host samples. The hypervisor's own sample
// is handled first, so that its VMs find its name.
func (h *Hsflowd) Put(hs []decoder.HostCounters) {
	idx := h.index()
	if idx == nil {
		idx = &Index{}
	}
	for pass := 0; pass < 2; pass++ {
		for i := range hs {
			c := &hs[i]
			if c.IsVM() != (pass == 1) {
				continue
			}
			if pass == 0 {
				h.putHost(idx, c)
			} else {
				h.putVM(idx, c)
			}
		}
	}
}

func agentOf(c *decoder.HostCounters) netip.Addr {
	if c.Agent.IsValid() {
		return c.Agent
	}
	return c.Exporter
}

// agentLocked returns the agent's state, nil when the table is full.
func (h *Hsflowd) agentLocked(c *decoder.HostCounters) *hsAgent {
	k := hsAgentKey{agentOf(c), c.SubAgent}
	a := h.agents[k]
	if a == nil {
		if len(h.agents) >= HsflowdMaxAgents {
			return nil
		}
		a = &hsAgent{}
		h.agents[k] = a
	}
	return a
}

func (h *Hsflowd) count(kind, result string) { h.samples[kind+"/"+result].Inc() }

func (h *Hsflowd) putHost(idx *Index, c *decoder.HostCounters) {
	h.mu.Lock()
	a := h.agentLocked(c)
	if a == nil {
		h.mu.Unlock()
		h.count("host", "agent_limit")
		return
	}
	if c.Have&decoder.HostHasDescr != 0 && c.HostnameLen > 0 && a.hostname != string(c.Hostname[:c.HostnameLen]) {
		a.hostname = c.HostName()
	}
	name, known := hostName(idx, c, a)
	if !known {
		if _, ok := h.unknown[name]; !ok {
			if len(h.unknown) >= HsflowdMaxUnknownHosts {
				h.mu.Unlock()
				h.count("host", "host_limit")
				return
			}
			h.unknown[name] = struct{}{}
		}
	}
	h.mu.Unlock()
	s := HostResourceSample{Host: name, Source: ResourceSourceHsflowd, Origin: "hsflowd:" + agentOf(c).String(),
		Time: time.Unix(0, c.Received)}
	if c.Have&decoder.HostHasDescr != 0 && c.UUID != ([16]byte{}) {
		s.UUID = formatUUID(c.UUID)
	}
	if c.Have&decoder.HostHasCPU != 0 {
		p := &c.CPU
		s.Have |= HasHostCPU | HasHostCPUIdle
		s.CPUs = int(p.CPUNum)
		busy := uint64(p.User) + uint64(p.Nice) + uint64(p.System) + uint64(p.Intr) + uint64(p.SoftIntr)
		if p.HasExt {
			busy += uint64(p.Steal)
		}
		s.CPUTimeNs = busy * 1e6
		s.CPUIdleNs = (uint64(p.Idle) + uint64(p.WIO)) * 1e6
	}
	if c.Have&decoder.HostHasMemory != 0 {
		m := &c.Memory
		s.Have |= HasHostMem
		s.MemTotalBytes = m.Total
		s.MemFreeBytes = min(m.Free+m.Buffers+m.Cached, m.Total)
	}
	if c.Have&decoder.HostHasVirtNode != 0 {
		n := &c.Node
		s.Have |= HasHostVirt
		s.Domains = int(n.Domains)
		if s.Have&HasHostMem == 0 {
			s.MemTotalBytes, s.MemFreeBytes = n.Memory, n.MemoryFree
		}
		if s.Have&HasHostCPU == 0 {
			s.CPUs = int(n.CPUs)
		}
	}
	h.count("host", "attributed")
	h.sink.PutHost(s)
}

// hostName names the hypervisor of an agent; known says the name is an
// inventory host.
func hostName(idx *Index, c *decoder.HostCounters, a *hsAgent) (name string, known bool) {
	if n, ok := idx.HostOfObservation(agentOf(c), c.SubAgent); ok {
		return n, true
	}
	if a.hostname != "" {
		short, _, _ := strings.Cut(a.hostname, ".")
		for _, hst := range idx.Hosts() {
			if strings.EqualFold(hst.Name, a.hostname) || strings.EqualFold(hst.Name, short) {
				return hst.Name, true
			}
		}
	}
	if a.vmHost != "" {
		return a.vmHost, true
	}
	if a.hostname != "" {
		return a.hostname, false
	}
	return agentOf(c).String(), false
}

func (h *Hsflowd) putVM(idx *Index, c *decoder.HostCounters) {
	vm := h.findVM(idx, c)
	if vm == nil {
		h.count("vm", "unknown_vm")
		return
	}
	host := vm.Host
	h.mu.Lock()
	a := h.agentLocked(c)
	if a != nil {
		if host != "" {
			a.vmHost = host
		} else {
			host, _ = hostName(idx, c, a)
		}
	}
	h.mu.Unlock()
	s := VMResourceSample{UUID: strings.ToLower(vm.UUID), Name: vm.Name, Host: host,
		Source: ResourceSourceHsflowd, Origin: "hsflowd:" + agentOf(c).String(), Time: time.Unix(0, c.Received)}
	for i := 0; i < int(c.NumMACs); i++ {
		s.MACs = append(s.MACs, c.MACs[i].MAC)
	}
	if c.Have&decoder.HostHasVirtCPU != 0 {
		v := &c.VCPU
		s.State = domainState(v.State)
		s.CPU = CPUSample{Have: HasCPUTime | HasVCPUs, TimeNs: uint64(v.CPUTimeMs) * 1e6, VCPUs: int(v.VCPUs)}
	}
	if c.Have&decoder.HostHasVirtMemory != 0 {
		s.Mem = MemSample{Have: HasMemBalloon, BalloonBytes: c.VMemory.Memory}
		if c.VMemory.MaxMemory != ^uint64(0) { // hsflowd sends -1 for an unlimited maxMem
			s.Mem.Have |= HasMemMax
			s.Mem.MaxBytes = c.VMemory.MaxMemory
		}
	}
	if c.Have&decoder.HostHasVirtDiskIO != 0 {
		d := &c.VDiskIO
		s.Disks = []DiskSample{{Name: "*", Have: HasDiskIO | HasDiskErrors | HasDiskSize,
			ReadReqs: uint64(d.RdReq), ReadBytes: d.RdBytes, WriteReqs: uint64(d.WrReq), WriteBytes: d.WrBytes,
			Errors: uint64(d.Errs), CapacityBytes: d.Capacity, AllocationBytes: d.Allocation}}
	}
	if c.Have&decoder.HostHasVirtNetIO != 0 {
		n := &c.VNetIO
		s.NICs = []NICSample{{Name: "*", Have: HasNICBytes | HasNICPackets | HasNICErrors | HasNICDrops,
			RxBytes: n.BytesIn, RxPackets: uint64(n.PktsIn), RxErrors: uint64(n.ErrsIn), RxDrops: uint64(n.DropsIn),
			TxBytes: n.BytesOut, TxPackets: uint64(n.PktsOut), TxErrors: uint64(n.ErrsOut), TxDrops: uint64(n.DropsOut)}}
	}
	h.count("vm", "attributed")
	h.sink.PutVM(s)
}

// findVM resolves a VM sample: host_descr UUID first, then the adapters'
// MACs.
func (h *Hsflowd) findVM(idx *Index, c *decoder.HostCounters) *VM {
	if c.Have&decoder.HostHasDescr != 0 && c.UUID != ([16]byte{}) {
		if vm := h.byUUID(idx)[formatUUID(c.UUID)]; vm != nil {
			return vm
		}
	}
	for i := 0; i < int(c.NumMACs); i++ {
		if p, ok := idx.ByMAC(c.MACs[i].MAC); ok && p.VM != nil {
			return p.VM
		}
	}
	return nil
}

// byUUID is the index's VMs by lower-case UUID, built once per Index.
func (h *Hsflowd) byUUID(idx *Index) map[string]*VM {
	if u := h.uuids.Load(); u != nil && u.idx == idx {
		return u.byUUID
	}
	m := make(map[string]*VM, len(idx.VMs()))
	for _, vm := range idx.VMs() {
		if vm.UUID != "" {
			m[strings.ToLower(vm.UUID)] = vm
		}
	}
	h.uuids.Store(&uuidIndex{idx: idx, byUUID: m})
	return m
}

// formatUUID is the canonical lower-case 8-4-4-4-12 form (as libvirt and
// the inventory write UUIDs).
func formatUUID(u [16]byte) string { return uuid.UUID(u).String() }

// domainState names libvirt's virDomainState as the libvirt poller does.
func domainState(s uint32) string {
	names := [...]string{"nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended"}
	if int(s) < len(names) {
		return names[s]
	}
	return ""
}
