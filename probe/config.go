package probe

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"
)

// Config is the probe section of vmflow's configuration (key probe.*),
// read by `vmflow probe` on a hypervisor. The collector ignores it.
type Config struct {
	// Collector is the host:port of vmflow's IPFIX listener the probe
	// exports its measurements to.
	Collector string `mapstructure:"collector" yaml:"collector"`
	// ObservationDomain is the IPFIX observation domain of the export.
	ObservationDomain uint32 `mapstructure:"observation_domain" yaml:"observation_domain"`
	// Taps is a regular expression: every interface whose name matches is
	// watched (libvirt's vnetN and OpenStack's tapXXXX by default).
	Taps string `mapstructure:"taps" yaml:"taps"`
	// OVSPorts: when true, an interface must both match Taps and be a
	// port of the local Open vSwitch (ovs-vsctl list-ports of every bridge).
	OVSPorts bool `mapstructure:"ovs_ports" yaml:"ovs_ports"`
	// Rescan is how often the tap set is re-read (new taps are opened,
	// gone ones closed).
	Rescan time.Duration `mapstructure:"rescan" yaml:"rescan"`
	// HandshakeTimeout: a SYN not answered (SYN-ACK or RST) within it is a
	// timed-out attempt. An ICMP echo request not answered within it is lost.
	HandshakeTimeout time.Duration `mapstructure:"handshake_timeout" yaml:"handshake_timeout"`
	// MaxPending bounds the pending handshakes and echo requests per tap;
	// beyond it new attempts are not timed (counted in
	// vmflow_probe_pending_overflow_total).
	MaxPending int `mapstructure:"max_pending" yaml:"max_pending"`
	// ExportInterval is the longest a measurement waits before it is sent.
	ExportInterval time.Duration `mapstructure:"export_interval" yaml:"export_interval"`
	// TemplateInterval is how often the IPFIX templates are re-sent.
	TemplateInterval time.Duration `mapstructure:"template_interval" yaml:"template_interval"`
	// MetricsListen is the local address of the probe's /metrics ("" = none).
	MetricsListen string `mapstructure:"metrics_listen" yaml:"metrics_listen"`
	// AckSlots is how many handshakes per tap may await their final ACK at
	// the server's tap at once (each is a 4-tuple in the tap's dynamic
	// filter); beyond it SYN-ACK → ACK is not timed (counted). 0 disables
	// the SYN-ACK → ACK measurement (the filter then never changes).
	AckSlots int `mapstructure:"ack_slots" yaml:"ack_slots"`
	// SocketBuffer is the receive buffer of each tap's socket, bytes.
	SocketBuffer int `mapstructure:"socket_buffer" yaml:"socket_buffer"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Collector:        "127.0.0.1:4739",
		Taps:             `^(vnet[0-9]+|tap[0-9a-f-]+)$`,
		Rescan:           5 * time.Second,
		HandshakeTimeout: 5 * time.Second,
		MaxPending:       65536,
		ExportInterval:   time.Second,
		TemplateInterval: 30 * time.Second,
		MetricsListen:    "127.0.0.1:9741",
		SocketBuffer:     4 << 20,
		AckSlots:         16,
	}
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Collector); err != nil {
		errs = append(errs, fmt.Errorf("probe.collector: %q is not host:port: %w", c.Collector, err))
	}
	if _, err := regexp.Compile(c.Taps); err != nil || c.Taps == "" {
		errs = append(errs, fmt.Errorf("probe.taps: invalid regular expression %q: %v", c.Taps, err))
	}
	if c.Rescan <= 0 {
		errs = append(errs, errors.New("probe.rescan: must be > 0"))
	}
	if c.HandshakeTimeout <= 0 || c.HandshakeTimeout > time.Hour {
		errs = append(errs, errors.New("probe.handshake_timeout: must be > 0 and at most 1h"))
	}
	if c.MaxPending < 16 || c.MaxPending > 1<<24 {
		errs = append(errs, errors.New("probe.max_pending: must be between 16 and 16777216"))
	}
	if c.ExportInterval <= 0 {
		errs = append(errs, errors.New("probe.export_interval: must be > 0"))
	}
	if c.TemplateInterval <= 0 {
		errs = append(errs, errors.New("probe.template_interval: must be > 0"))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("probe.metrics_listen: %q is not host:port: %w", c.MetricsListen, err))
		}
	}
	if c.AckSlots < 0 || c.AckSlots > MaxAckSlots {
		errs = append(errs, fmt.Errorf("probe.ack_slots: must be between 0 and %d", MaxAckSlots))
	}
	if c.SocketBuffer < 0 {
		errs = append(errs, errors.New("probe.socket_buffer: must be >= 0"))
	}
	return errors.Join(errs...)
}
