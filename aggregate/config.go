package aggregate

import (
	"fmt"
	"time"
)

// Counting modes (aggregate.count); see the package documentation.
const (
	CountSourceHost = "source-host"
	CountAll        = "all"
)

// Lookup orders (aggregate.prefer).
const (
	PreferMAC = "mac"
	PreferIP  = "ip"
)

// Config configures the aggregator (config key "aggregate").
type Config struct {
	// Window is the aggregation window, aligned to wall-clock multiples.
	Window time.Duration `mapstructure:"window" yaml:"window"`
	// MaxPairs bounds the pairs per collector worker per window; records of
	// further new pairs go to the overflow pair (counted). The collector
	// spreads an exporter's datagrams over its workers, so with sFlow every
	// worker sees nearly every active pair: the bound is for the whole
	// site's active pairs, not a share of them. Shard memory grows with
	// the pairs seen (about 1 KB per pair per worker, twice: the open and
	// the spare shard), not with the bound.
	MaxPairs int `mapstructure:"max_pairs" yaml:"max_pairs"`
	// Count is the counting rule: "source-host" (count each packet once,
	// default) or "all" (count every observation).
	Count string `mapstructure:"count" yaml:"count"`
	// Prefer is the endpoint lookup order: "mac" (MAC, then VNI+IP;
	// default) or "ip" (VNI+IP, then MAC; for VMs that route for others).
	Prefer string `mapstructure:"prefer" yaml:"prefer"`
	// MigrationGrace is how long after a VM's host changed observations
	// from its previous host still count (0: off).
	MigrationGrace time.Duration `mapstructure:"migration_grace" yaml:"migration_grace"`
	// MaxPorts bounds the switch ports tracked (sFlow counter samples: the
	// latest counters for Pipeline.Ports and the per-window deltas).
	MaxPorts int `mapstructure:"max_ports" yaml:"max_ports"`
	// PortExpiry: a port whose counter samples stopped this long ago is
	// forgotten (its per-window delta state dropped).
	PortExpiry time.Duration `mapstructure:"port_expiry" yaml:"port_expiry"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Window:         10 * time.Second,
		MaxPairs:       500_000,
		Count:          CountSourceHost,
		Prefer:         PreferMAC,
		MigrationGrace: 10 * time.Second,
		MaxPorts:       16384,
		PortExpiry:     10 * time.Minute,
	}
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	if c.Window < time.Second || c.Window > time.Hour {
		return fmt.Errorf("aggregate.window: must be between 1s and 1h, got %s", c.Window)
	}
	if c.MaxPairs < 1 {
		return fmt.Errorf("aggregate.max_pairs: must be >= 1, got %d", c.MaxPairs)
	}
	switch c.Count {
	case CountSourceHost, CountAll:
	default:
		return fmt.Errorf("aggregate.count: must be %q or %q, got %q", CountSourceHost, CountAll, c.Count)
	}
	switch c.Prefer {
	case PreferMAC, PreferIP:
	default:
		return fmt.Errorf("aggregate.prefer: must be %q or %q, got %q", PreferMAC, PreferIP, c.Prefer)
	}
	if c.MigrationGrace < 0 {
		return fmt.Errorf("aggregate.migration_grace: must be >= 0, got %s", c.MigrationGrace)
	}
	if c.MaxPorts < 1 {
		return fmt.Errorf("aggregate.max_ports: must be >= 1, got %d", c.MaxPorts)
	}
	if c.PortExpiry < time.Second {
		return fmt.Errorf("aggregate.port_expiry: must be >= 1s, got %s", c.PortExpiry)
	}
	return nil
}
