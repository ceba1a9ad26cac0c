package enrich

import (
	"math"
	"sort"
	"strconv"
	"sync"
	"time"
)

// VMResources are the figures of one VM derived from its two latest
// samples of one source: gauges from the latest, rates over the interval
// between the two. A rate is nil when it cannot be had honestly: first
// sample, a counter that went backwards, a restart (Incarnation change) or
// migration (Host change) between the samples, or an implausible value
// (CPU above what the VM's vCPUs can use).
type VMResources struct {
	Key    string    `json:"-"`
	UUID   string    `json:"uuid,omitempty"`
	Name   string    `json:"name,omitempty"`
	Host   string    `json:"host,omitempty"`
	Source string    `json:"source"`
	Origin string    `json:"origin,omitempty"`
	State  string    `json:"state,omitempty"`
	Time   time.Time `json:"time"`
	// IntervalSeconds is the time between the two samples (0: first).
	IntervalSeconds float64 `json:"interval_seconds"`
	// Reset says the counters restarted in this interval.
	Reset bool `json:"reset,omitempty"`
	// Stale: the figures are older than the tracker's StaleAfter (the
	// source stopped reporting); set when read.
	Stale bool `json:"stale"`

	CPU   CPURates    `json:"cpu"`
	Mem   MemRates    `json:"memory"`
	Disks []DiskRates `json:"disks"`
	NICs  []NICRates  `json:"nics"`
}

// CPURates: PercentOfVCPUs is 100 when every vCPU is busy; PercentOfCore
// is 100 per fully used host core (so up to 100 x vCPUs).
type CPURates struct {
	VCPUs          int      `json:"vcpus,omitempty"`
	PercentOfVCPUs *float64 `json:"percent,omitempty"`
	PercentOfCore  *float64 `json:"percent_of_core,omitempty"`
}

// MemRates: gauges in bytes, swap in bytes/s, faults per second.
// UsedPercent is used of available (or of max when the guest reports no
// available).
type MemRates struct {
	MaxBytes          *uint64  `json:"max_bytes,omitempty"`
	BalloonBytes      *uint64  `json:"balloon_bytes,omitempty"`
	UsedBytes         *uint64  `json:"used_bytes,omitempty"`
	AvailableBytes    *uint64  `json:"available_bytes,omitempty"`
	UnusedBytes       *uint64  `json:"unused_bytes,omitempty"`
	UsableBytes       *uint64  `json:"usable_bytes,omitempty"`
	RSSBytes          *uint64  `json:"rss_bytes,omitempty"`
	UsedPercent       *float64 `json:"used_percent,omitempty"`
	SwapInBytesPerS   *float64 `json:"swap_in_bytes_per_s,omitempty"`
	SwapOutBytesPerS  *float64 `json:"swap_out_bytes_per_s,omitempty"`
	MajorFaultsPerS   *float64 `json:"major_faults_per_s,omitempty"`
	MinorFaultsPerS   *float64 `json:"minor_faults_per_s,omitempty"`
	SwapInBytesTotal  *uint64  `json:"swap_in_bytes_total,omitempty"`
	SwapOutBytesTotal *uint64  `json:"swap_out_bytes_total,omitempty"`
}

// DiskRates of one disk. Errors is the number of new errors in the
// interval; the *Total fields are the raw counters of the latest sample.
type DiskRates struct {
	Name            string   `json:"name"`
	ReadIOPS        *float64 `json:"read_iops,omitempty"`
	WriteIOPS       *float64 `json:"write_iops,omitempty"`
	ReadBytesPerS   *float64 `json:"read_bytes_per_s,omitempty"`
	WriteBytesPerS  *float64 `json:"write_bytes_per_s,omitempty"`
	Errors          *uint64  `json:"errors,omitempty"`
	ReadReqsTotal   *uint64  `json:"read_reqs_total,omitempty"`
	ReadBytesTotal  *uint64  `json:"read_bytes_total,omitempty"`
	WriteReqsTotal  *uint64  `json:"write_reqs_total,omitempty"`
	WriteBytesTotal *uint64  `json:"write_bytes_total,omitempty"`
	ErrorsTotal     *uint64  `json:"errors_total,omitempty"`
	CapacityBytes   *uint64  `json:"capacity_bytes,omitempty"`
}

// NICRates of one vNIC (libvirt's view: rx is what the guest received).
// Errors and drops are the new ones in the interval.
type NICRates struct {
	Name          string   `json:"name"`
	MAC           string   `json:"mac,omitempty"`
	RxBitsPerS    *float64 `json:"rx_bits_per_s,omitempty"`
	TxBitsPerS    *float64 `json:"tx_bits_per_s,omitempty"`
	RxPacketsPerS *float64 `json:"rx_packets_per_s,omitempty"`
	TxPacketsPerS *float64 `json:"tx_packets_per_s,omitempty"`
	RxErrors      *uint64  `json:"rx_errors,omitempty"`
	TxErrors      *uint64  `json:"tx_errors,omitempty"`
	RxDrops       *uint64  `json:"rx_drops,omitempty"`
	TxDrops       *uint64  `json:"tx_drops,omitempty"`
	RxBytesTotal  *uint64  `json:"rx_bytes_total,omitempty"`
	TxBytesTotal  *uint64  `json:"tx_bytes_total,omitempty"`
}

// HostResources are one hypervisor's totals: the sums over the VMs it
// runs (each VM's chosen source, fresh samples only) and, when hsflowd
// reports the host itself, its own CPU and memory.
type HostResources struct {
	Host string    `json:"host"`
	Time time.Time `json:"time"`
	VMs  int       `json:"vms"`
	// Sums over the VMs.
	VCPUs            int     `json:"vcpus"`
	CPUCoresUsed     float64 `json:"cpu_cores_used"`
	MemBalloonBytes  uint64  `json:"memory_balloon_bytes"`
	MemUsedBytes     uint64  `json:"memory_used_bytes"`
	MemRSSBytes      uint64  `json:"memory_rss_bytes"`
	DiskReadBytesPS  float64 `json:"disk_read_bytes_per_s"`
	DiskWriteBytesPS float64 `json:"disk_write_bytes_per_s"`
	DiskIOPS         float64 `json:"disk_iops"`
	NetRxBitsPerS    float64 `json:"net_rx_bits_per_s"`
	NetTxBitsPerS    float64 `json:"net_tx_bits_per_s"`
	// Hypervisor is the host's own view (hsflowd host_cpu/host_memory);
	// nil when no host agent reports it.
	Hypervisor *HypervisorResources `json:"hypervisor,omitempty"`
}

// HypervisorResources is what a host agent says of the hypervisor.
type HypervisorResources struct {
	Source        string    `json:"source"`
	Time          time.Time `json:"time"`
	CPUs          int       `json:"cpus,omitempty"`
	CPUPercent    *float64  `json:"cpu_percent,omitempty"`
	MemTotalBytes *uint64   `json:"memory_total_bytes,omitempty"`
	MemFreeBytes  *uint64   `json:"memory_free_bytes,omitempty"`
	Domains       int       `json:"domains,omitempty"`
}

// ResourceTrackerConfig tunes a ResourceTracker.
type ResourceTrackerConfig struct {
	// StaleAfter: a source whose latest sample of a VM is older than this
	// no longer speaks for it (and its VM leaves the host sums). Default
	// 3 x the longest poll interval the caller expects; 3 minutes when 0.
	StaleAfter time.Duration
	// History is how many points per VM Series keeps (default 180: 30
	// minutes of 10 s polls; a ResourcePoint is about 120 bytes, so 10,000
	// VMs keep about 216 MB).
	History int
	// Forget drops a VM not sampled for this long (default 1 h).
	Forget time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// ResourceTracker is the per-window rate computation: a ResourceSink that
// keeps, per VM and source, the previous sample and the derived figures,
// chooses one source per VM and keeps a short series of the chosen one.
//
// Source choice (never a sum): libvirt when it has a sample of the VM
// younger than StaleAfter (it reads per-disk and per-vNIC counters
// directly from the hypervisor), else hsflowd when it has a fresh one,
// else the most recent sample of any source (then marked by its age).
type ResourceTracker struct {
	cfg ResourceTrackerConfig

	mu         sync.Mutex
	lastForget time.Time
	vms        map[string]*vmTrack
	hosts      map[string]*hostTrack
	onUpdate   []func(VMResources)
}

type srcTrack struct {
	prev VMResourceSample
	cur  VMResources
}

type vmTrack struct {
	srcs   map[string]*srcTrack
	series []ResourcePoint // ring of the chosen source's points (grows to History)
	next   int
	last   time.Time
}

type hostTrack struct {
	prev HostResourceSample
	cur  HypervisorResources
}

// NewResourceTracker builds an empty tracker.
func NewResourceTracker(cfg ResourceTrackerConfig) *ResourceTracker {
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 3 * time.Minute
	}
	if cfg.History <= 0 {
		cfg.History = 180
	}
	if cfg.Forget <= 0 {
		cfg.Forget = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &ResourceTracker{cfg: cfg, vms: map[string]*vmTrack{}, hosts: map[string]*hostTrack{}}
}

var _ ResourceSink = (*ResourceTracker)(nil)

// OnUpdate registers f to be called (outside the tracker's lock) with
// every new point of a VM's chosen source (store and alert wiring).
func (t *ResourceTracker) OnUpdate(f func(VMResources)) {
	t.mu.Lock()
	t.onUpdate = append(t.onUpdate, f)
	t.mu.Unlock()
}

// PutVM takes one sample and derives the VM's figures against the
// previous sample of the same source.
func (t *ResourceTracker) PutVM(s VMResourceSample) {
	r := Derive(nil, &s)
	key := s.Key()
	t.mu.Lock()
	vt := t.vms[key]
	if vt == nil {
		vt = &vmTrack{srcs: map[string]*srcTrack{}}
		t.vms[key] = vt
	}
	st := vt.srcs[s.Source]
	if st == nil {
		st = &srcTrack{}
		vt.srcs[s.Source] = st
	} else {
		r = Derive(&st.prev, &s)
	}
	r.Key = key
	st.prev, st.cur = s, r
	if s.Time.After(vt.last) {
		vt.last = s.Time
	}
	var hooks []func(VMResources)
	if chosen, ok := t.chooseLocked(vt); ok && chosen.Source == s.Source {
		if len(vt.series) < t.cfg.History {
			vt.series = append(vt.series, pointOf(&r))
		} else {
			vt.series[vt.next] = pointOf(&r)
			vt.next = (vt.next + 1) % len(vt.series)
		}
		hooks = t.onUpdate
	}
	t.forgetLocked()
	t.mu.Unlock()
	for _, f := range hooks {
		f(r)
	}
}

// PutHost takes one sample of a hypervisor's own figures.
func (t *ResourceTracker) PutHost(s HostResourceSample) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ht := t.hosts[s.Host]
	hr := HypervisorResources{Source: s.Source, Time: s.Time, CPUs: s.CPUs, Domains: s.Domains}
	if s.Have.Has(HasHostMem) || s.Have.Has(HasHostVirt) {
		hr.MemTotalBytes, hr.MemFreeBytes = u64p(s.MemTotalBytes), u64p(s.MemFreeBytes)
	}
	if ht != nil && s.Have.Has(HasHostCPU|HasHostCPUIdle) && ht.prev.Have.Has(HasHostCPU|HasHostCPUIdle) &&
		(s.Incarnation == 0 || s.Incarnation == ht.prev.Incarnation) {
		busy, ok1 := counterDelta(ht.prev.CPUTimeNs, s.CPUTimeNs)
		idle, ok2 := counterDelta(ht.prev.CPUIdleNs, s.CPUIdleNs)
		if ok1 && ok2 && busy+idle > 0 {
			hr.CPUPercent = f64p(100 * float64(busy) / float64(busy+idle))
		}
	}
	if ht == nil {
		ht = &hostTrack{}
		t.hosts[s.Host] = ht
	}
	ht.prev, ht.cur = s, hr
}

func (t *ResourceTracker) fresh(r VMResources, now time.Time) bool {
	return now.Sub(r.Time) <= t.cfg.StaleAfter
}

// chooseLocked applies the source rule.
func (t *ResourceTracker) chooseLocked(vt *vmTrack) (VMResources, bool) {
	now := t.cfg.Now()
	for _, src := range []string{ResourceSourceLibvirt, ResourceSourceHsflowd} {
		if st := vt.srcs[src]; st != nil && t.fresh(st.cur, now) {
			return st.cur, true
		}
	}
	var best VMResources
	found := false
	for _, st := range vt.srcs {
		if !found || st.cur.Time.After(best.Time) {
			best, found = st.cur, true
		}
	}
	best.Stale = found
	return best, found
}

func (t *ResourceTracker) forgetLocked() {
	now := t.cfg.Now()
	if now.Sub(t.lastForget) < time.Minute {
		return // one sweep a minute at most
	}
	t.lastForget = now
	cut := now.Add(-t.cfg.Forget)
	for k, vt := range t.vms {
		if vt.last.Before(cut) {
			delete(t.vms, k)
		}
	}
}

// VM returns the chosen figures of the VM with this key (UUID, or
// host/name without one).
func (t *ResourceTracker) VM(key string) (VMResources, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	vt := t.vms[key]
	if vt == nil {
		return VMResources{}, false
	}
	return t.chooseLocked(vt)
}

// Find returns the chosen figures of a VM by UUID, else by name (and host
// when given; the first match otherwise).
func (t *ResourceTracker) Find(uuid, name, host string) (VMResources, bool) {
	if uuid != "" {
		if r, ok := t.VM(uuid); ok {
			return r, true
		}
	}
	if host != "" {
		if r, ok := t.VM(host + "/" + name); ok {
			return r, true
		}
	}
	for _, r := range t.All() {
		if r.Name == name && (host == "" || r.Host == host) {
			return r, true
		}
	}
	return VMResources{}, false
}

// Series returns the chosen source's points of a VM, oldest first, with
// Time in [from, to] (zero bounds are open).
func (t *ResourceTracker) Series(key string, from, to time.Time) []ResourcePoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	vt := t.vms[key]
	if vt == nil {
		return nil
	}
	var out []ResourcePoint
	n := len(vt.series)
	for i := 0; i < n; i++ {
		p := vt.series[(vt.next+i)%n]
		if (!from.IsZero() && p.Time.Before(from)) || (!to.IsZero() && p.Time.After(to)) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// All returns every VM's chosen figures, sorted by host then name.
func (t *ResourceTracker) All() []VMResources {
	t.mu.Lock()
	out := make([]VMResources, 0, len(t.vms))
	for _, vt := range t.vms {
		if r, ok := t.chooseLocked(vt); ok {
			out = append(out, r)
		}
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Hosts returns per-hypervisor totals: sums over the fresh chosen figures
// of its VMs, and the hypervisor's own figures when a host agent sent them.
func (t *ResourceTracker) Hosts() []HostResources {
	now := t.cfg.Now()
	all := t.All()
	by := map[string]*HostResources{}
	get := func(h string) *HostResources {
		if hr := by[h]; hr != nil {
			return hr
		}
		hr := &HostResources{Host: h}
		by[h] = hr
		return hr
	}
	for _, r := range all {
		if r.Host == "" || !t.fresh(r, now) {
			continue
		}
		hr := get(r.Host)
		hr.VMs++
		if r.Time.After(hr.Time) {
			hr.Time = r.Time
		}
		hr.VCPUs += r.CPU.VCPUs
		if p := r.CPU.PercentOfCore; p != nil {
			hr.CPUCoresUsed += *p / 100
		}
		hr.MemBalloonBytes += deref(r.Mem.BalloonBytes)
		hr.MemUsedBytes += deref(r.Mem.UsedBytes)
		hr.MemRSSBytes += deref(r.Mem.RSSBytes)
		for _, d := range r.Disks {
			hr.DiskReadBytesPS += derefF(d.ReadBytesPerS)
			hr.DiskWriteBytesPS += derefF(d.WriteBytesPerS)
			hr.DiskIOPS += derefF(d.ReadIOPS) + derefF(d.WriteIOPS)
		}
		for _, n := range r.NICs {
			hr.NetRxBitsPerS += derefF(n.RxBitsPerS)
			hr.NetTxBitsPerS += derefF(n.TxBitsPerS)
		}
	}
	t.mu.Lock()
	for h, ht := range t.hosts {
		if now.Sub(ht.cur.Time) > t.cfg.StaleAfter {
			continue
		}
		hv := ht.cur
		get(h).Hypervisor = &hv
	}
	t.mu.Unlock()
	out := make([]HostResources, 0, len(by))
	for _, hr := range by {
		out = append(out, *hr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// counterDelta is cur-prev for a cumulative counter; false when the
// counter went backwards (a reset: no rate).
func counterDelta(prev, cur uint64) (uint64, bool) {
	if cur < prev {
		return 0, false
	}
	return cur - prev, true
}

// Derive computes the figures of cur against prev (nil: first sample, no
// rates). It is the whole rate logic; ResourceTracker only keeps state.
func Derive(prev, cur *VMResourceSample) VMResources {
	r := VMResources{
		UUID: cur.UUID, Name: cur.Name, Host: cur.Host, Source: cur.Source, Origin: cur.Origin,
		State: cur.State, Time: cur.Time, Key: cur.Key(),
	}
	var dt float64
	if prev != nil {
		dt = cur.Time.Sub(prev.Time).Seconds()
		switch {
		case dt <= 0:
			prev = nil // out of order or duplicate: no rates
		case prev.Incarnation != cur.Incarnation || prev.Host != cur.Host:
			r.Reset = true
			prev = nil
		default:
			r.IntervalSeconds = dt
		}
	}
	rate := func(p, c uint64) *float64 {
		if prev == nil {
			return nil
		}
		d, ok := counterDelta(p, c)
		if !ok {
			r.Reset = true
			return nil
		}
		return f64p(float64(d) / dt)
	}
	delta := func(p, c uint64) *uint64 {
		if prev == nil {
			return nil
		}
		d, ok := counterDelta(p, c)
		if !ok {
			r.Reset = true
			return nil
		}
		return u64p(d)
	}

	// CPU.
	c := cur.CPU
	if c.Have.Has(HasVCPUs) {
		r.CPU.VCPUs = c.VCPUs
	}
	if prev != nil && c.Have.Has(HasCPUTime) && prev.CPU.Have.Has(HasCPUTime) {
		if ns := rate(prev.CPU.TimeNs, c.TimeNs); ns != nil {
			core := *ns / 1e7 // ns per second / 1e9 x 100
			// More than every vCPU fully busy (plus 10% for emulator
			// threads and timing jitter) is not a rate but a reset the
			// counters did not show.
			if c.VCPUs > 0 && core > float64(c.VCPUs)*110 {
				r.Reset = true
			} else {
				r.CPU.PercentOfCore = f64p(core)
				if c.VCPUs > 0 {
					r.CPU.PercentOfVCPUs = f64p(core / float64(c.VCPUs))
				}
			}
		}
	}

	// Memory.
	m := cur.Mem
	g := func(bit Has, v uint64) *uint64 {
		if m.Have.Has(bit) {
			return u64p(v)
		}
		return nil
	}
	r.Mem.MaxBytes = g(HasMemMax, m.MaxBytes)
	r.Mem.BalloonBytes = g(HasMemBalloon, m.BalloonBytes)
	r.Mem.AvailableBytes = g(HasMemAvailable, m.AvailableBytes)
	r.Mem.UnusedBytes = g(HasMemUnused, m.UnusedBytes)
	r.Mem.UsableBytes = g(HasMemUsable, m.UsableBytes)
	r.Mem.RSSBytes = g(HasMemRSS, m.RSSBytes)
	r.Mem.SwapInBytesTotal = g(HasMemSwapIn, m.SwapInBytes)
	r.Mem.SwapOutBytesTotal = g(HasMemSwapOut, m.SwapOutBytes)
	used, haveUsed := m.UsedBytes, m.Have.Has(HasMemUsed)
	if !haveUsed && m.Have.Has(HasMemAvailable|HasMemUnused) && m.AvailableBytes >= m.UnusedBytes {
		used, haveUsed = m.AvailableBytes-m.UnusedBytes, true
	}
	if haveUsed {
		r.Mem.UsedBytes = u64p(used)
		switch {
		case m.Have.Has(HasMemAvailable) && m.AvailableBytes > 0:
			r.Mem.UsedPercent = f64p(100 * float64(used) / float64(m.AvailableBytes))
		case m.Have.Has(HasMemMax) && m.MaxBytes > 0:
			r.Mem.UsedPercent = f64p(100 * float64(used) / float64(m.MaxBytes))
		}
	}
	if prev != nil {
		pm := prev.Mem
		both := func(bit Has) bool { return m.Have.Has(bit) && pm.Have.Has(bit) }
		if both(HasMemSwapIn) {
			r.Mem.SwapInBytesPerS = rate(pm.SwapInBytes, m.SwapInBytes)
		}
		if both(HasMemSwapOut) {
			r.Mem.SwapOutBytesPerS = rate(pm.SwapOutBytes, m.SwapOutBytes)
		}
		if both(HasMemMajorFault) {
			r.Mem.MajorFaultsPerS = rate(pm.MajorFaults, m.MajorFaults)
		}
		if both(HasMemMinorFault) {
			r.Mem.MinorFaultsPerS = rate(pm.MinorFaults, m.MinorFaults)
		}
	}

	// Disks, matched by name.
	r.Disks = make([]DiskRates, 0, len(cur.Disks))
	for i := range cur.Disks {
		d := &cur.Disks[i]
		dr := DiskRates{Name: d.Name}
		if d.Have.Has(HasDiskIO) {
			dr.ReadReqsTotal, dr.ReadBytesTotal = u64p(d.ReadReqs), u64p(d.ReadBytes)
			dr.WriteReqsTotal, dr.WriteBytesTotal = u64p(d.WriteReqs), u64p(d.WriteBytes)
		}
		if d.Have.Has(HasDiskErrors) {
			dr.ErrorsTotal = u64p(d.Errors)
		}
		if d.Have.Has(HasDiskSize) {
			dr.CapacityBytes = u64p(d.CapacityBytes)
		}
		if prev != nil {
			if pd := findDisk(prev.Disks, d.Name); pd != nil {
				if d.Have.Has(HasDiskIO) && pd.Have.Has(HasDiskIO) {
					dr.ReadIOPS = rate(pd.ReadReqs, d.ReadReqs)
					dr.WriteIOPS = rate(pd.WriteReqs, d.WriteReqs)
					dr.ReadBytesPerS = rate(pd.ReadBytes, d.ReadBytes)
					dr.WriteBytesPerS = rate(pd.WriteBytes, d.WriteBytes)
				}
				if d.Have.Has(HasDiskErrors) && pd.Have.Has(HasDiskErrors) {
					dr.Errors = delta(pd.Errors, d.Errors)
				}
			}
		}
		r.Disks = append(r.Disks, dr)
	}

	// vNICs, matched by name (MAC when unnamed).
	r.NICs = make([]NICRates, 0, len(cur.NICs))
	for i := range cur.NICs {
		n := &cur.NICs[i]
		nr := NICRates{Name: n.Name}
		if n.MAC != ([6]byte{}) {
			nr.MAC = macString(n.MAC)
		}
		if n.Have.Has(HasNICBytes) {
			nr.RxBytesTotal, nr.TxBytesTotal = u64p(n.RxBytes), u64p(n.TxBytes)
		}
		if prev != nil {
			if pn := findNIC(prev.NICs, n); pn != nil {
				both := func(bit Has) bool { return n.Have.Has(bit) && pn.Have.Has(bit) }
				if both(HasNICBytes) {
					nr.RxBitsPerS = times8(rate(pn.RxBytes, n.RxBytes))
					nr.TxBitsPerS = times8(rate(pn.TxBytes, n.TxBytes))
				}
				if both(HasNICPackets) {
					nr.RxPacketsPerS = rate(pn.RxPackets, n.RxPackets)
					nr.TxPacketsPerS = rate(pn.TxPackets, n.TxPackets)
				}
				if both(HasNICErrors) {
					nr.RxErrors = delta(pn.RxErrors, n.RxErrors)
					nr.TxErrors = delta(pn.TxErrors, n.TxErrors)
				}
				if both(HasNICDrops) {
					nr.RxDrops = delta(pn.RxDrops, n.RxDrops)
					nr.TxDrops = delta(pn.TxDrops, n.TxDrops)
				}
			}
		}
		r.NICs = append(r.NICs, nr)
	}
	return r
}

func findDisk(ds []DiskSample, name string) *DiskSample {
	for i := range ds {
		if ds[i].Name == name {
			return &ds[i]
		}
	}
	return nil
}

func findNIC(ns []NICSample, n *NICSample) *NICSample {
	for i := range ns {
		if (n.Name != "" && ns[i].Name == n.Name) || (n.Name == "" && ns[i].MAC == n.MAC) {
			return &ns[i]
		}
	}
	return nil
}

func macString(m [6]byte) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[x>>4], hex[x&0xf])
	}
	return string(b)
}

func times8(p *float64) *float64 {
	if p == nil {
		return nil
	}
	return f64p(*p * 8)
}

func f64p(v float64) *float64 { return &v }
func u64p(v uint64) *uint64   { return &v }

func deref(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

func derefF(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// ResourcePoint is one point of a VM's resource series: the figures of
// VMResources summed over its disks and vNICs, in float32 (NaN: unknown,
// left out of the JSON).
type ResourcePoint struct {
	Time   time.Time
	Source string
	Reset  bool
	V      [NumResourceFields]float32
}

// ResourcePoint fields, in ResourceFieldNames order.
const (
	RPCPUPercent = iota
	RPCPUCorePercent
	RPMemUsedPercent
	RPMemUsedBytes
	RPMemRSSBytes
	RPSwapInBytesPerS
	RPSwapOutBytesPerS
	RPMajorFaultsPerS
	RPDiskReadIOPS
	RPDiskWriteIOPS
	RPDiskReadBytesPerS
	RPDiskWriteBytesPerS
	RPDiskErrors
	RPNICRxBitsPerS
	RPNICTxBitsPerS
	RPNICRxPacketsPerS
	RPNICTxPacketsPerS
	RPNICErrors
	RPNICDrops
	NumResourceFields
)

// ResourceFieldNames are the JSON names of ResourcePoint.V.
var ResourceFieldNames = [NumResourceFields]string{
	"cpu_percent", "cpu_core_percent", "mem_used_percent", "mem_used_bytes", "mem_rss_bytes",
	"swap_in_bytes_per_s", "swap_out_bytes_per_s", "major_faults_per_s",
	"disk_read_iops", "disk_write_iops", "disk_read_bytes_per_s", "disk_write_bytes_per_s", "disk_errors",
	"nic_rx_bits_per_s", "nic_tx_bits_per_s", "nic_rx_packets_per_s", "nic_tx_packets_per_s", "nic_errors", "nic_drops",
}

func pointOf(r *VMResources) ResourcePoint {
	p := ResourcePoint{Time: r.Time, Source: r.Source, Reset: r.Reset}
	for i := range p.V {
		p.V[i] = float32(math.NaN())
	}
	setF := func(i int, v *float64) {
		if v != nil {
			p.V[i] = float32(*v)
		}
	}
	setU := func(i int, v *uint64) {
		if v != nil {
			p.V[i] = float32(*v)
		}
	}
	add := func(i int, v float64) {
		if math.IsNaN(float64(p.V[i])) {
			p.V[i] = 0
		}
		p.V[i] += float32(v)
	}
	setF(RPCPUPercent, r.CPU.PercentOfVCPUs)
	setF(RPCPUCorePercent, r.CPU.PercentOfCore)
	setF(RPMemUsedPercent, r.Mem.UsedPercent)
	setU(RPMemUsedBytes, r.Mem.UsedBytes)
	setU(RPMemRSSBytes, r.Mem.RSSBytes)
	setF(RPSwapInBytesPerS, r.Mem.SwapInBytesPerS)
	setF(RPSwapOutBytesPerS, r.Mem.SwapOutBytesPerS)
	setF(RPMajorFaultsPerS, r.Mem.MajorFaultsPerS)
	for _, d := range r.Disks {
		for i, v := range map[int]*float64{RPDiskReadIOPS: d.ReadIOPS, RPDiskWriteIOPS: d.WriteIOPS,
			RPDiskReadBytesPerS: d.ReadBytesPerS, RPDiskWriteBytesPerS: d.WriteBytesPerS} {
			if v != nil {
				add(i, *v)
			}
		}
		if d.Errors != nil {
			add(RPDiskErrors, float64(*d.Errors))
		}
	}
	for _, n := range r.NICs {
		for i, v := range map[int]*float64{RPNICRxBitsPerS: n.RxBitsPerS, RPNICTxBitsPerS: n.TxBitsPerS,
			RPNICRxPacketsPerS: n.RxPacketsPerS, RPNICTxPacketsPerS: n.TxPacketsPerS} {
			if v != nil {
				add(i, *v)
			}
		}
		for _, v := range []*uint64{n.RxErrors, n.TxErrors} {
			if v != nil {
				add(RPNICErrors, float64(*v))
			}
		}
		for _, v := range []*uint64{n.RxDrops, n.TxDrops} {
			if v != nil {
				add(RPNICDrops, float64(*v))
			}
		}
	}
	return p
}

// MarshalJSON writes time, source, reset (when set) and the known fields.
func (p ResourcePoint) MarshalJSON() ([]byte, error) {
	b := []byte(`{"time":`)
	t, err := p.Time.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b = append(b, t...)
	b = append(b, `,"source":`...)
	b = strconv.AppendQuote(b, p.Source)
	if p.Reset {
		b = append(b, `,"reset":true`...)
	}
	for i, v := range p.V {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			continue
		}
		b = append(b, ',', '"')
		b = append(b, ResourceFieldNames[i]...)
		b = append(b, '"', ':')
		b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
	}
	return append(b, '}'), nil
}
