package synth

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config describes the synthetic cloud and how it exports. The zero value is
// not usable: start from DemoConfig or ScaleConfig.
type Config struct {
	// The cloud.
	Hosts   int    // hypervisors, one exporter identity (127.x address) each
	VMs     int    // VMs, spread over the hosts and tenants
	Tenants int    // tenants (projects), each with its own 10.x subnet
	Pairs   int    // active directed VM pairs at the start (conversations give two each)
	Seed    uint64 // the same seed gives the same cloud and the same traffic

	// Where to send: "" disables a protocol.
	SFlowTarget string // host:port of the sFlow collector
	IPFIXTarget string // host:port of the IPFIX collector

	// Traffic. SampleRate is the mean number of sFlow flow samples per
	// second of the steady traffic over all hypervisors (packets/s =
	// SampleRate × SamplingRate); bursts, scans and the optional
	// destination-side samples come on top.
	SampleRate   float64
	SamplingRate uint32 // sFlow 1-in-N
	// IPFIXShare is the fraction of hypervisors that also export IPFIX
	// (1-in-1, like OVS with sampling=1): exact volumes for their pairs.
	IPFIXShare float64
	// DestinationSamples: a VM-to-VM packet between two hypervisors is
	// also sampled where it enters the destination's bridge (as OVS
	// does); vmflow must count it once.
	DestinationSamples bool

	// Shape over time.
	DayPeriod    time.Duration // one simulated day (sinusoid per tenant); 0 = flat
	DayAmplitude float64       // 0..0.9: peak-to-mean ratio - 1
	BurstEvery   time.Duration // a burst on a random pair (0 = never)
	BurstFor     time.Duration
	BurstFactor  float64       // extra traffic during a burst, as a share of SampleRate
	ScanEvery    time.Duration // a VM scans its neighbours (0 = never)
	ScanFor      time.Duration
	ScanRate     float64       // scan probes sampled per second during a scan
	NewPairEvery time.Duration // a silent pair starts talking (0 = never)

	// Export timing and format.
	CounterInterval  time.Duration // sFlow counter samples per VM port (OVS polling)
	IPFIXInterval    time.Duration // IPFIX active timeout: records exported this often
	TemplateInterval time.Duration // IPFIX template re-sent this often
	FlushInterval    time.Duration // a partly filled datagram is sent after this long
	HeaderBytes      int           // sampled header bytes (OVS header=128)
	MaxDatagram      int           // datagram size limit (OVS: 1400)
	Batch            int           // datagrams per sendmmsg

	// The demo's other inputs (extras.go); off in the scale preset.
	// ProbeRate: TCP connection attempts per second that the hypervisors'
	// latency probes time (IPFIX records of `vmflow probe`, to the IPFIX
	// target); 0 = no probe.
	ProbeRate float64
	// HostStats: every hypervisor also runs hsflowd, sending the sFlow host
	// structures (its own CPU/memory, each VM's CPU, memory, disk, vNIC)
	// every CounterInterval, to the sFlow target as sub-agent 1.
	HostStats bool

	// AddrBase is the first exporter address; hypervisor i exports from
	// AddrBase + i (all of 127.0.0.0/8 is local on Linux loopback).
	AddrBase netip.Addr
}

// DemoConfig is the small cloud of `vmflow demo`: tens of VMs in a few
// tenants, with every kind of event happening within a minute.
func DemoConfig() Config {
	return Config{
		Hosts: 6, VMs: 48, Tenants: 4, Pairs: 160, Seed: 1,
		SampleRate: 2000, SamplingRate: 64, IPFIXShare: 0.5, DestinationSamples: true,
		DayPeriod: 10 * time.Minute, DayAmplitude: 0.6,
		BurstEvery: 45 * time.Second, BurstFor: 15 * time.Second, BurstFactor: 0.3,
		ScanEvery: 60 * time.Second, ScanFor: 20 * time.Second, ScanRate: 40,
		NewPairEvery:    20 * time.Second,
		CounterInterval: 10 * time.Second, IPFIXInterval: 5 * time.Second, TemplateInterval: 30 * time.Second,
		FlushInterval: time.Second, HeaderBytes: 128, MaxDatagram: 1400, Batch: 64,
		ProbeRate: 100, HostStats: true,
		AddrBase: netip.MustParseAddr("127.1.0.10"),
	}
}

// ScaleConfig is the cloud of the scale benchmarks: 10,000 VMs on 500
// hypervisors, 200,000 active pairs, 1,000,000 sFlow samples/s, flat (no
// day pattern) so the offered load is constant; sFlow only.
func ScaleConfig() Config {
	c := DemoConfig()
	c.Hosts, c.VMs, c.Tenants, c.Pairs = 500, 10000, 50, 200000
	c.SampleRate, c.SamplingRate, c.IPFIXShare, c.DestinationSamples = 1_000_000, 256, 0, false
	c.DayPeriod, c.BurstEvery, c.ScanEvery, c.NewPairEvery = 0, 0, 0, 0
	c.MaxDatagram = 8192
	c.ProbeRate, c.HostStats = 0, false
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Hosts < 1 || c.Hosts > 60000:
		return fmt.Errorf("synth: hosts %d: must be 1..60000", c.Hosts)
	case c.Tenants < 1 || c.Tenants > 1000:
		return fmt.Errorf("synth: tenants %d: must be 1..1000", c.Tenants)
	case c.VMs < 2*c.Tenants || c.VMs > 1_000_000:
		return fmt.Errorf("synth: vms %d: must be at least 2 per tenant and at most 1,000,000", c.VMs)
	case c.VMs/c.Tenants > 16000:
		return fmt.Errorf("synth: %d VMs per tenant: at most 16,000 (a /18 each)", c.VMs/c.Tenants)
	case c.Pairs < 1 || c.Pairs > 10_000_000:
		return fmt.Errorf("synth: pairs %d: must be 1..10,000,000", c.Pairs)
	case c.SampleRate < 0:
		return errors.New("synth: sample rate must be >= 0")
	case c.SamplingRate < 1:
		return errors.New("synth: sampling rate must be >= 1")
	case c.IPFIXShare < 0 || c.IPFIXShare > 1:
		return errors.New("synth: ipfix share must be 0..1")
	case c.DayAmplitude < 0 || c.DayAmplitude > 0.9:
		return errors.New("synth: day amplitude must be 0..0.9")
	case c.BurstFactor < 0 || c.ScanRate < 0:
		return errors.New("synth: burst factor and scan rate must be >= 0")
	case c.ProbeRate < 0 || c.ProbeRate > 1e6:
		return errors.New("synth: probe rate must be 0..1,000,000")
	case c.CounterInterval <= 0 || c.IPFIXInterval <= 0 || c.TemplateInterval <= 0 || c.FlushInterval <= 0:
		return errors.New("synth: counter, ipfix, template and flush intervals must be > 0")
	case c.HeaderBytes < 64 || c.HeaderBytes > 256:
		return fmt.Errorf("synth: header bytes %d: must be 64..256", c.HeaderBytes)
	case c.MaxDatagram < 576 || c.MaxDatagram > 65000:
		return fmt.Errorf("synth: max datagram %d: must be 576..65000", c.MaxDatagram)
	case c.Batch < 1 || c.Batch > 1024:
		return fmt.Errorf("synth: batch %d: must be 1..1024", c.Batch)
	case !c.AddrBase.Is4():
		return errors.New("synth: address base must be an IPv4 address")
	}
	return nil
}
