package enrich

import "time"

// Per-VM resource samples: the contract between the producers of VM
// resource figures (the libvirt stats poller in enrich/libvirt, the
// hsflowd host-structure decoder) and the per-window rate computation
// (ResourceTracker, resource_rates.go).
//
// A producer reads cumulative counters and gauges at one instant and hands
// them over as a VMResourceSample (one VM) or HostResourceSample (the
// hypervisor itself) through a ResourceSink. It never computes rates: the
// tracker differences consecutive samples of the same VM and source, so
// every producer gets the same reset handling (domain restart, migration,
// counter wrap) and the same derived fields.
//
// Units are fixed: bytes, nanoseconds, counts. A field a producer cannot
// read is left out by clearing its Has bit; the tracker derives nothing
// from it (it is never read as 0).
//
// # For an hsflowd producer (sFlow host structures, sflow_host.txt)
//
// Hand samples to the tracker the app builds (cmd/vmflow/app:
// App.Resources(), an *enrich.ResourceTracker, which is a ResourceSink),
// one PutVM per virtual machine's counter sample and one PutHost per
// hypervisor's, with Source ResourceSourceHsflowd, Origin
// "hsflowd:"+agent address, Time the datagram's receive time:
//
//	host_descr (2000)    UUID (16 bytes -> lower-case 8-4-4-4-12), Name (hostname)
//	host_adapters (2001) MACs (attribution when the UUID is unknown)
//	host_parent (2002)   the VM's hypervisor: Host (its host_descr hostname, or
//	                     the inventory host of the exporter)
//	virt_cpu (2101)      State (virDomainState name), CPU.TimeNs = cpuTime ms x 1e6
//	                     (HasCPUTime), CPU.VCPUs = nrVirtCpu (HasVCPUs)
//	virt_memory (2102)   Mem.BalloonBytes = memory (HasMemBalloon: hsflowd's mod_kvm sets it
//	                     from virDomainInfo.memory, what the domain has, not what the guest
//	                     uses), Mem.MaxBytes = maxMemory (HasMemMax; -1 "unlimited": none)
//	virt_disk_io (2103)  one DiskSample{Name: "*"}: capacity, allocation (HasDiskSize),
//	                     rd_req, rd_bytes, wr_req, wr_bytes (HasDiskIO), errs (HasDiskErrors)
//	virt_net_io (2104)   one NICSample{Name: "*"}: bytes, packets (HasNICBytes,
//	                     HasNICPackets), errs (HasNICErrors), drops (HasNICDrops)
//	host_cpu (2003)      HostResourceSample.CPUs = cpu_num; CPUTimeNs = (user+nice+
//	                     system+intr+sintr) ms x 1e6, CPUIdleNs = (idle+wio) ms x 1e6
//	                     (I/O wait is idle CPU)
//	                     (HasHostCPU|HasHostCPUIdle)
//	host_memory (2004)   MemTotalBytes, MemFreeBytes (HasHostMem)
//	virt_node (2100)     CPUs, MemTotalBytes, MemFreeBytes, Domains (HasHostVirt)
//
// Incarnation: 0 unless the producer knows a restart (counters that go
// backwards are caught anyway). The key is the UUID, so a VM that libvirt
// also polls is the same VM: the tracker chooses libvirt while fresh,
// hsflowd otherwise, and never adds the two.

// Resource sources (VMResourceSample.Source).
const (
	ResourceSourceLibvirt = "libvirt"
	ResourceSourceHsflowd = "hsflowd"
)

// Has bits say which fields of a sample group were read.
type Has uint32

// Has reports whether every bit of f is set.
func (h Has) Has(f Has) bool { return h&f == f }

// CPU fields.
const (
	HasCPUTime       Has = 1 << iota // CPUSample.TimeNs
	HasVCPUs                         // CPUSample.VCPUs
	HasCPUUserSystem                 // CPUSample.UserNs, SystemNs
)

// CPUSample is a VM's processor use.
type CPUSample struct {
	Have Has
	// TimeNs is the cumulative CPU time of the whole VM (all vCPUs;
	// libvirt's cpu.time / virDomainInfo.cpuTime; hsflowd virt_cpu cpuTime
	// in ms x 1e6).
	TimeNs uint64
	// VCPUs is the number of virtual CPUs (gauge).
	VCPUs int
	// UserNs and SystemNs split the VM's process time into user and
	// kernel (libvirt cpu.user/cpu.system, virsh cpu-stats --total).
	UserNs, SystemNs uint64
}

// Memory fields.
const (
	HasMemMax        Has = 1 << iota // MemSample.MaxBytes
	HasMemBalloon                    // MemSample.BalloonBytes
	HasMemUsed                       // MemSample.UsedBytes
	HasMemAvailable                  // MemSample.AvailableBytes
	HasMemUnused                     // MemSample.UnusedBytes
	HasMemUsable                     // MemSample.UsableBytes
	HasMemRSS                        // MemSample.RSSBytes
	HasMemSwapIn                     // MemSample.SwapInBytes
	HasMemSwapOut                    // MemSample.SwapOutBytes
	HasMemMajorFault                 // MemSample.MajorFaults
	HasMemMinorFault                 // MemSample.MinorFaults
)

// MemSample is a VM's memory: gauges, except the swap and fault counters,
// which are cumulative.
type MemSample struct {
	Have Has
	// MaxBytes is the configured maximum (virDomainInfo.maxMem; hsflowd
	// virt_memory maxMemory).
	MaxBytes uint64
	// BalloonBytes is the current balloon size, what the guest may use
	// (actual_balloon; virDomainInfo.memory).
	BalloonBytes uint64
	// UsedBytes is memory in use as the producer sees it. libvirt: the
	// guest's available minus unused when the balloon driver reports both;
	// hsflowd gives none (its virt_memory memory is the balloon).
	UsedBytes uint64
	// AvailableBytes is the memory the guest sees (balloon "available").
	AvailableBytes uint64
	// UnusedBytes is memory the guest leaves free (balloon "unused").
	UnusedBytes uint64
	// UsableBytes is what the guest can use without swapping ("usable").
	UsableBytes uint64
	// RSSBytes is the resident set of the VM's process on the host.
	RSSBytes uint64
	// Cumulative counters.
	SwapInBytes  uint64
	SwapOutBytes uint64
	MajorFaults  uint64
	MinorFaults  uint64
}

// Disk fields.
const (
	HasDiskIO     Has = 1 << iota // ReadReqs, ReadBytes, WriteReqs, WriteBytes
	HasDiskErrors                 // Errors
	HasDiskSize                   // CapacityBytes, AllocationBytes
)

// DiskSample is one virtual disk (libvirt: per target device, e.g. vda;
// hsflowd's virt_disk_io is the VM's total, named "*").
type DiskSample struct {
	Name string // target device (vda, sdb); "*" for a producer's VM total
	Have Has
	// Cumulative counters.
	ReadReqs, ReadBytes   uint64
	WriteReqs, WriteBytes uint64
	Errors                uint64
	// Gauges.
	CapacityBytes, AllocationBytes uint64
}

// NIC fields.
const (
	HasNICBytes   Has = 1 << iota // RxBytes, TxBytes
	HasNICPackets                 // RxPackets, TxPackets
	HasNICErrors                  // RxErrors, TxErrors
	HasNICDrops                   // RxDrops, TxDrops
)

// NICSample is one virtual NIC as the hypervisor sees it (libvirt's
// domifstat counts from the guest's point of view: rx is what the guest
// received).
type NICSample struct {
	Name string  // host-side device (vnet0, tap...); "*" for a VM total
	MAC  [6]byte // zero when unknown
	Have Has
	// Cumulative counters.
	RxBytes, RxPackets, RxErrors, RxDrops uint64
	TxBytes, TxPackets, TxErrors, TxDrops uint64
}

// VMResourceSample is what one producer read of one VM at one instant.
type VMResourceSample struct {
	// Identity. UUID (lower case, canonical form) is the key when set;
	// otherwise Host+"/"+Name. hsflowd records carry the UUID (host_descr)
	// and MACs (host_adapters); Name may be the guest's hostname there.
	UUID string
	Name string
	Host string
	// MACs of the VM's adapters, for attribution when the UUID is unknown
	// to the inventory (hsflowd host_adapters).
	MACs [][6]byte

	// Source is ResourceSourceLibvirt or ResourceSourceHsflowd; Origin
	// names the producer instance ("libvirt:qemu+tls://hv1/system",
	// "hsflowd:10.0.0.11").
	Source string
	Origin string
	// Time is when the counters were read (the poll or datagram time).
	Time time.Time
	// State is the VM's run state ("running", "paused", "shutoff", ...;
	// "" when unknown).
	State string
	// Incarnation changes when the VM's counters restart: libvirt's domain
	// id (new on every start), hsflowd's agent uptime epoch... A change
	// means no rate is computed across it. 0 means unknown.
	Incarnation uint64

	CPU   CPUSample
	Mem   MemSample
	Disks []DiskSample
	NICs  []NICSample
}

// Key is the tracker's identity of the sampled VM.
func (s *VMResourceSample) Key() string {
	if s.UUID != "" {
		return s.UUID
	}
	return s.Host + "/" + s.Name
}

// Host fields.
const (
	HasHostCPU     Has = 1 << iota // CPUs, CPUTimeNs (hsflowd host_cpu)
	HasHostMem                     // MemTotalBytes, MemFreeBytes (host_memory)
	HasHostVirt                    // virt_node: MemTotal/Free, CPUs, Domains
	HasHostCPUIdle                 // CPUIdleNs
)

// HostResourceSample is the hypervisor's own figures (hsflowd host_cpu,
// host_memory, virt_node). libvirt's poller sends none (the sums of a
// host's VMs are the tracker's).
type HostResourceSample struct {
	Host   string // hypervisor name (host_descr hostname or inventory host)
	UUID   string
	Source string
	Origin string
	Time   time.Time
	Have   Has
	// CPUs is the number of host CPUs; CPUTimeNs and CPUIdleNs the
	// cumulative busy (user+nice+system+irq+softirq...) and idle time over
	// all of them.
	CPUs      int
	CPUTimeNs uint64
	CPUIdleNs uint64
	// Memory gauges.
	MemTotalBytes, MemFreeBytes uint64
	// Domains is virt_node's domain count.
	Domains int
	// Incarnation as for VMResourceSample (e.g. the host's boot time).
	Incarnation uint64
}

// ResourceSink takes samples from producers. Implementations must be safe
// for concurrent use and must not block: producers call them from their
// poll loop or decode path. The samples' slices are owned by the sink
// afterwards (a producer builds fresh ones per sample).
type ResourceSink interface {
	PutVM(s VMResourceSample)
	PutHost(s HostResourceSample)
}

// ResourceSinkFunc adapts two functions to a ResourceSink (tests, fan-out).
type ResourceSinkFunc struct {
	VM   func(VMResourceSample)
	Host func(HostResourceSample)
}

func (f ResourceSinkFunc) PutVM(s VMResourceSample) {
	if f.VM != nil {
		f.VM(s)
	}
}

func (f ResourceSinkFunc) PutHost(s HostResourceSample) {
	if f.Host != nil {
		f.Host(s)
	}
}
