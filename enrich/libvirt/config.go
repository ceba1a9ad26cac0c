package libvirt

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Tenant sources for Config.TenantFrom.
const (
	TenantFromNova     = "nova"     // <nova:instance><nova:owner><nova:project uuid=...>
	TenantFromMetadata = "metadata" // the element/attribute named by tenant_metadata
	TenantFromStatic   = "static"   // static_tenants, by VM name prefix and/or host
)

// Address sources for Config.AddressSources.
const (
	AddrSourceLease = "lease"
	AddrSourceAgent = "agent"
	AddrSourceARP   = "arp"
)

// ConnConfig is one libvirt daemon to follow.
type ConnConfig struct {
	// URI as libvirt writes it: qemu:///system, qemu+tcp://hv1/system,
	// qemu+tls://hv1/system, test:///default?socket=/path/libvirt-sock.
	URI string `mapstructure:"uri" yaml:"uri"`
	// Host overrides the hypervisor name (default: the daemon's hostname).
	Host string `mapstructure:"host" yaml:"host"`
	// Exporters are this hypervisor's sFlow agent / IPFIX exporter
	// addresses, published as enrich.Host.Exporters.
	Exporters []string  `mapstructure:"exporters" yaml:"exporters"`
	TLS       TLSConfig `mapstructure:"tls" yaml:"tls"`
	// ReadOnly opens the connection with VIR_CONNECT_RO.
	ReadOnly bool `mapstructure:"read_only" yaml:"read_only"`
}

// MetadataKey names a value inside a domain's <metadata>: the element at
// Element (a slash-separated path of local names, the first a direct child
// of <metadata>, each in Namespace), then its attribute Attr, or its text
// when Attr is empty.
type MetadataKey struct {
	Namespace string `mapstructure:"namespace" yaml:"namespace"`
	Element   string `mapstructure:"element" yaml:"element"`
	Attr      string `mapstructure:"attr" yaml:"attr"`
}

// MetadataLabel copies a metadata value into VM.Labels[Label].
type MetadataLabel struct {
	MetadataKey `mapstructure:",squash" yaml:",inline"`
	Label       string `mapstructure:"label" yaml:"label"`
}

// StaticTenant assigns a tenant to VMs whose name starts with NamePrefix
// and/or that run on Host (empty fields match everything).
type StaticTenant struct {
	NamePrefix string `mapstructure:"name_prefix" yaml:"name_prefix"`
	Host       string `mapstructure:"host" yaml:"host"`
	Tenant     string `mapstructure:"tenant" yaml:"tenant"`
	TenantName string `mapstructure:"tenant_name" yaml:"tenant_name"`
}

func (s StaticTenant) matches(name, host string) bool {
	return strings.HasPrefix(name, s.NamePrefix) && (s.Host == "" || s.Host == host)
}

// Config is the libvirt inventory configuration.
type Config struct {
	Connections []ConnConfig `mapstructure:"connections" yaml:"connections"`
	// ResyncInterval: full re-list as a safety net besides events.
	ResyncInterval time.Duration `mapstructure:"resync_interval" yaml:"resync_interval"`
	ReconnectMin   time.Duration `mapstructure:"reconnect_min" yaml:"reconnect_min"`
	ReconnectMax   time.Duration `mapstructure:"reconnect_max" yaml:"reconnect_max"`
	// AddressSources are queried in this order for running domains; an
	// address found by an earlier source is not repeated by a later one.
	AddressSources    []string      `mapstructure:"address_sources" yaml:"address_sources"`
	KeepaliveInterval time.Duration `mapstructure:"keepalive_interval" yaml:"keepalive_interval"`
	KeepaliveCount    int           `mapstructure:"keepalive_count" yaml:"keepalive_count"`
	CallTimeout       time.Duration `mapstructure:"call_timeout" yaml:"call_timeout"`
	// FetchConcurrency is how many domains a resync fetches at once.
	FetchConcurrency int `mapstructure:"fetch_concurrency" yaml:"fetch_concurrency"`
	// EventBuffer is the per-connection event queue; when it overflows the
	// source counts the drop and does a full resync.
	EventBuffer int `mapstructure:"event_buffer" yaml:"event_buffer"`
	// TenantFrom lists tenant sources in order of preference.
	TenantFrom     []string        `mapstructure:"tenant_from" yaml:"tenant_from"`
	TenantMetadata MetadataKey     `mapstructure:"tenant_metadata" yaml:"tenant_metadata"`
	StaticTenants  []StaticTenant  `mapstructure:"static_tenants" yaml:"static_tenants"`
	MetadataLabels []MetadataLabel `mapstructure:"metadata_labels" yaml:"metadata_labels"`
	// StatsInterval is how often each connection polls its domains'
	// resource counters (0: the aggregation window, set by the app).
	StatsInterval time.Duration `mapstructure:"stats_interval" yaml:"stats_interval"`
	// StatsMode: auto (bulk CONNECT_GET_ALL_DOMAIN_STATS where the daemon
	// answers every group, else per-domain calls), bulk, per-domain, off.
	StatsMode string `mapstructure:"stats_mode" yaml:"stats_mode"`
}

// DefaultConfig has no connections (libvirt off) and sane timings.
func DefaultConfig() Config {
	return Config{
		ResyncInterval:    5 * time.Minute,
		ReconnectMin:      500 * time.Millisecond,
		ReconnectMax:      30 * time.Second,
		AddressSources:    []string{AddrSourceLease, AddrSourceAgent, AddrSourceARP},
		KeepaliveInterval: 5 * time.Second,
		KeepaliveCount:    5,
		CallTimeout:       30 * time.Second,
		FetchConcurrency:  8,
		EventBuffer:       4096,
		TenantFrom:        []string{TenantFromNova, TenantFromMetadata, TenantFromStatic},
		StatsMode:         StatsAuto,
	}
}

const keyPrefix = "inventory.libvirt."

// Validate checks every key; errors name the key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf(keyPrefix+key+": "+format, a...))
	}
	seen := map[string]bool{}
	for i, cc := range c.Connections {
		k := fmt.Sprintf("connections[%d]", i)
		if cc.URI == "" {
			bad(k+".uri", "must be set")
		} else if _, err := ParseURI(cc.URI); err != nil {
			bad(k+".uri", "%v", err)
		} else if seen[cc.URI] {
			bad(k+".uri", "duplicate connection %q", cc.URI)
		}
		seen[cc.URI] = true
		for j, e := range cc.Exporters {
			if _, err := netip.ParseAddr(e); err != nil {
				bad(fmt.Sprintf("%s.exporters[%d]", k, j), "not an IP address: %q", e)
			}
		}
		if (cc.TLS.CertFile == "") != (cc.TLS.KeyFile == "") {
			bad(k+".tls", "cert_file and key_file go together")
		}
	}
	if c.ResyncInterval <= 0 {
		bad("resync_interval", "must be > 0")
	}
	if c.ReconnectMin <= 0 {
		bad("reconnect_min", "must be > 0")
	}
	if c.ReconnectMax < c.ReconnectMin {
		bad("reconnect_max", "must be >= reconnect_min")
	}
	for i, s := range c.AddressSources {
		if _, ok := addrSourceNum[s]; !ok {
			bad(fmt.Sprintf("address_sources[%d]", i), "unknown source %q (lease, agent, arp)", s)
		}
	}
	if c.KeepaliveInterval < 0 {
		bad("keepalive_interval", "must be >= 0 (0 disables pings)")
	}
	if c.KeepaliveCount < 1 {
		bad("keepalive_count", "must be >= 1")
	}
	if c.CallTimeout <= 0 {
		bad("call_timeout", "must be > 0")
	}
	if c.FetchConcurrency < 1 {
		bad("fetch_concurrency", "must be >= 1")
	}
	if c.EventBuffer < 1 {
		bad("event_buffer", "must be >= 1")
	}
	if c.StatsInterval < 0 {
		bad("stats_interval", "must be >= 0 (0: the aggregation window)")
	}
	switch c.StatsMode {
	case StatsAuto, StatsBulk, StatsPerDomain, StatsOff:
	default:
		bad("stats_mode", "unknown %q (auto, bulk, per-domain, off)", c.StatsMode)
	}
	for i, t := range c.TenantFrom {
		switch t {
		case TenantFromNova, TenantFromStatic:
		case TenantFromMetadata:
			if c.TenantMetadata.Element == "" && len(c.TenantFrom) == 1 {
				bad("tenant_metadata.element", "must be set when tenant_from is metadata")
			}
		default:
			bad(fmt.Sprintf("tenant_from[%d]", i), "unknown %q (nova, metadata, static)", t)
		}
	}
	for i, ml := range c.MetadataLabels {
		if ml.Element == "" {
			bad(fmt.Sprintf("metadata_labels[%d].element", i), "must be set")
		}
		if ml.Label == "" {
			bad(fmt.Sprintf("metadata_labels[%d].label", i), "must be set")
		}
	}
	for i, st := range c.StaticTenants {
		if st.Tenant == "" {
			bad(fmt.Sprintf("static_tenants[%d].tenant", i), "must be set")
		}
	}
	return errors.Join(errs...)
}

var addrSourceNum = map[string]uint32{
	AddrSourceLease: AddrSrcLease,
	AddrSourceAgent: AddrSrcAgent,
	AddrSourceARP:   AddrSrcARP,
}
