package collector

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ListenerConfig configures the UDP listener of one protocol.
type ListenerConfig struct {
	// Listen is the UDP address ("host:port", ":6343"). Empty disables the
	// listener. ":0" binds an ephemeral port (tests): the first socket gets
	// it and the others join it.
	Listen string `mapstructure:"listen" yaml:"listen"`
	// Sockets is the number of SO_REUSEPORT sockets (each with a reader).
	Sockets int `mapstructure:"sockets" yaml:"sockets"`
	// Workers is the number of goroutines that run the handler; 0 means
	// the same as Sockets.
	Workers int `mapstructure:"workers" yaml:"workers"`
	// QueueSize is the number of datagrams that may wait for (or be in) a
	// worker. When it is full, the newest datagrams are dropped and counted.
	QueueSize int `mapstructure:"queue_size" yaml:"queue_size"`
	// ReadBuffer is the kernel receive buffer per socket (SO_RCVBUF) in
	// bytes; SO_RCVBUFFORCE is tried first so net.core.rmem_max does not
	// cap it when running as root. 0 keeps the kernel default.
	ReadBuffer int `mapstructure:"read_buffer" yaml:"read_buffer"`
	// MaxDatagram is the largest datagram accepted; larger ones are
	// truncated by the kernel and dropped (reason "truncated").
	MaxDatagram int `mapstructure:"max_datagram" yaml:"max_datagram"`
	// Batch is how many datagrams one recvmmsg call may return.
	Batch int `mapstructure:"batch" yaml:"batch"`
	// GRO turns on UDP GRO (UDP_GRO) on the sockets: the kernel may pass
	// several same-size datagrams of one exporter as one buffer, which the
	// reader splits again; it saves kernel time per datagram at high
	// rates. Kernels without it fall back to plain reads.
	GRO bool `mapstructure:"gro" yaml:"gro"`
	// Inline decodes on the reader goroutines, one per socket, straight
	// from the receive buffers: no copy into the queue, no hand-over to a
	// worker (Workers and QueueSize are then unused; a reader that falls
	// behind leaves datagrams in its socket buffer, and what the kernel
	// drops there is counted as socket drops). For IPFIX and NetFlow v9 a
	// reuseport BPF program makes the kernel put every datagram of an
	// exporter address on the same socket, so each exporter's datagrams
	// are still decoded in order; where it cannot be attached the
	// listener uses the worker queues.
	Inline bool `mapstructure:"inline" yaml:"inline"`
}

// Config configures the collector.
type Config struct {
	SFlow    ListenerConfig `mapstructure:"sflow" yaml:"sflow"`
	IPFIX    ListenerConfig `mapstructure:"ipfix" yaml:"ipfix"`
	NetFlow9 ListenerConfig `mapstructure:"netflow9" yaml:"netflow9"`
	// AllowedExporters lists the CIDRs (or bare addresses) exporters may
	// send from; empty allows all. Other datagrams are dropped and counted
	// (reason "not_allowed").
	AllowedExporters []string `mapstructure:"allowed_exporters" yaml:"allowed_exporters"`
	// ExporterTimeout removes an exporter's state after this long without
	// a datagram.
	ExporterTimeout time.Duration `mapstructure:"exporter_timeout" yaml:"exporter_timeout"`
	// MaxExporters bounds the per-exporter state; datagrams from further
	// exporters are still handled but not tracked (and counted).
	MaxExporters int `mapstructure:"max_exporters" yaml:"max_exporters"`
}

const (
	defaultSockets     = 2
	defaultQueueSize   = 8192
	defaultReadBuffer  = 32 << 20
	defaultMaxDatagram = 65535
	defaultBatch       = 64
)

// DefaultListenerConfig returns the listener defaults for an address.
func DefaultListenerConfig(listen string) ListenerConfig {
	return ListenerConfig{
		Listen:      listen,
		Sockets:     defaultSockets,
		Workers:     defaultSockets,
		QueueSize:   defaultQueueSize,
		ReadBuffer:  defaultReadBuffer,
		MaxDatagram: defaultMaxDatagram,
		Batch:       defaultBatch,
		GRO:         true,
	}
}

// inlineListener is the default of the template protocols: one datagram
// per flow record at high rates, so the hand-over to a worker costs more
// than the decoding (see Inline).
func inlineListener(listen string) ListenerConfig {
	lc := DefaultListenerConfig(listen)
	lc.Inline = true
	return lc
}

// DefaultConfig returns sFlow on :6343, IPFIX on :4739, NetFlow v9 on :2055.
func DefaultConfig() Config {
	return Config{
		SFlow:           DefaultListenerConfig(":6343"),
		IPFIX:           inlineListener(":4739"),
		NetFlow9:        inlineListener(":2055"),
		ExporterTimeout: 15 * time.Minute,
		MaxExporters:    10000,
	}
}

// Validate checks the config; errors name the key (collector.sflow.workers).
func (c Config) Validate() error {
	var errs []error
	lcs := []struct {
		key string
		lc  ListenerConfig
	}{{"sflow", c.SFlow}, {"ipfix", c.IPFIX}, {"netflow9", c.NetFlow9}}
	ports := map[string]string{}
	for _, x := range lcs {
		if err := x.lc.validate("collector." + x.key); err != nil {
			errs = append(errs, err)
			continue
		}
		if x.lc.Listen == "" {
			continue
		}
		_, port, _ := net.SplitHostPort(x.lc.Listen)
		if port == "0" {
			continue
		}
		if other, ok := ports[port]; ok {
			errs = append(errs, fmt.Errorf("collector.%s.listen: port %s is already used by collector.%s.listen", x.key, port, other))
		}
		ports[port] = x.key
	}
	if _, err := parseAllowed(c.AllowedExporters); err != nil {
		errs = append(errs, err)
	}
	if c.ExporterTimeout <= 0 {
		errs = append(errs, fmt.Errorf("collector.exporter_timeout: must be > 0, got %s", c.ExporterTimeout))
	}
	if c.MaxExporters < 1 {
		errs = append(errs, fmt.Errorf("collector.max_exporters: must be >= 1, got %d", c.MaxExporters))
	}
	return errors.Join(errs...)
}

func (lc ListenerConfig) validate(key string) error {
	if lc.Listen == "" {
		return nil // disabled
	}
	var errs []error
	host, port, err := net.SplitHostPort(lc.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s.listen: %q is not host:port: %w", key, lc.Listen, err))
	} else {
		if p, err := strconv.ParseUint(port, 10, 16); err != nil {
			errs = append(errs, fmt.Errorf("%s.listen: port %q is not a number 0-65535", key, port))
		} else {
			_ = p
		}
		if host != "" && strings.ContainsAny(host, ":.") {
			if _, err := netip.ParseAddr(host); err != nil {
				errs = append(errs, fmt.Errorf("%s.listen: host %q is not an IP address", key, host))
			}
		}
	}
	check := func(name string, v, min, max int) {
		if v < min || v > max {
			errs = append(errs, fmt.Errorf("%s.%s: must be between %d and %d, got %d", key, name, min, max, v))
		}
	}
	check("sockets", lc.Sockets, 1, 256)
	check("workers", lc.Workers, 0, 1024)
	check("queue_size", lc.QueueSize, 1, 1<<22)
	check("read_buffer", lc.ReadBuffer, 0, 1<<31-1)
	check("max_datagram", lc.MaxDatagram, 512, 65535)
	check("batch", lc.Batch, 1, 1024)
	return errors.Join(errs...)
}

func (lc ListenerConfig) workers() int {
	if lc.Workers <= 0 {
		return lc.Sockets
	}
	return lc.Workers
}

func parseAllowed(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("collector.allowed_exporters[%d]: %q is not a CIDR: %w", i, s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("collector.allowed_exporters[%d]: %q is not a CIDR or address: %w", i, s, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
