package aggregate

import (
	"context"
	"net/netip"
	"time"

	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

// EndpointKey identifies one side of a pair: a known VM, or else an IP.
type EndpointKey struct {
	VM enrich.VMID // 0 when the endpoint is no known VM
	IP netip.Addr  // set only when VM == 0
}

// PairKey is a directed pair, per export protocol (so that sFlow and IPFIX
// views of the same bridge never add up; see README "Counting rules").
type PairKey struct {
	Src, Dst EndpointKey
	Source   decoder.Source
}

// TopPortsN is how many destination ports a pair keeps per window.
const TopPortsN = 8

// PortCount is one entry of a pair's top destination ports.
type PortCount struct {
	Proto uint8   `json:"proto"`
	Port  uint16  `json:"port"`
	Bytes float64 `json:"bytes"`
}

// Stats are one pair's counters in one window. Bytes and packets are
// estimates scaled by each sample's sampling rate; *Var are the variance
// estimates N(N-1)·Σb² that give the 95% interval.
type Stats struct {
	Bytes      float64
	Packets    float64
	BytesVar   float64
	PacketsVar float64
	Samples    uint64
	Flows      uint64 // distinct 5-tuples seen

	// SampledBytes/SampledPackets are the observed, unscaled totals (the
	// floor of the 95% interval).
	SampledBytes, SampledPackets uint64

	TCPPackets, UDPPackets, ICMPPackets, OtherPackets float64
	TCPBytes, UDPBytes, ICMPBytes, OtherBytes         float64
	SYN, SYNACK, RST, FIN                             float64 // scaled packet counts
	ICMPErrors                                        float64 // unreachable, time exceeded, parameter problem
	DroppedPackets, DroppedBytes                      float64 // from IPFIX (OVS)

	TopPorts [TopPortsN]PortCount

	// Last-seen addressing, for display.
	SrcIP, DstIP   netip.Addr
	SrcMAC, DstMAC [6]byte
	VNI            uint32
	First, Last    int64 // unix ns of first/last record
}

// Endpoint is an endpoint resolved for output.
type Endpoint struct {
	VM     string `json:"vm"`
	UUID   string `json:"uuid"`
	Host   string `json:"host"`
	Tenant string `json:"tenant"`
	// TenantName is the tenant's display name when the inventory has one
	// (Nova project name); Tenant is its id.
	TenantName string `json:"tenant_name,omitempty"`
	IP         string `json:"ip"`
	MAC        string `json:"mac"`
}

// Pair is one pair's result in a closed window.
type Pair struct {
	Key      PairKey
	Src, Dst Endpoint
	Stats    Stats
}

// Window is a closed aggregation window: immutable once emitted.
type Window struct {
	Start, End time.Time
	Pairs      []Pair
	// DstPorts is, per source VM and export protocol, the number of
	// distinct (protocol, destination port) over all the VM's flows of the
	// window (a HyperLogLog estimate, ±3.3%; exact below ~100), sorted by
	// VM then Source. Alert rules (fan-out by ports) read it.
	DstPorts []VMPorts
}

// VMPorts is one source VM's distinct destination ports in a window.
type VMPorts struct {
	VM     enrich.VMID
	Source decoder.Source
	Ports  uint32
}

// Sink receives closed windows (memory store, InfluxDB writer, alerts).
// Write must not keep the caller long; it must not modify the window.
type Sink interface {
	Write(w *Window)
}

// Drainer is the shutdown contract of a Sink that holds data it has not
// yet made durable (a send queue, alert state, a resource series buffer).
// At a clean stop vmflow (App.Stop) does, in this order:
//
//  1. stop the collector (no new records),
//  2. Aggregator.Stop: the open window, however short, is written to every
//     sink with Write, like any other window,
//  3. Aggregator.Drain(ctx): Drain(ctx) on every sink that implements
//     Drainer, one after another in the order the sinks were given to New
//     and AddSink; ctx carries the shutdown deadline (shutdown.timeout),
//  4. each component's Stop.
//
// Drain must return once everything Write was given is delivered or
// persisted (the InfluxDB writer: written, or in its on-disk spool), and at
// the latest soon after ctx is done — then it persists or counts as dropped
// what it still holds, never blocks further. Write is not called after
// Drain. Drain may be called more than once; a sink without pending state
// need not implement it.
type Drainer interface {
	Drain(ctx context.Context) error
}
