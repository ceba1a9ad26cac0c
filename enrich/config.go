package enrich

import (
	"fmt"
	"time"
)

// Merge orders.
const (
	// MergeLibvirtFirst: for a VM known to several sources, the live
	// sources (every source that is not "static") win over the static
	// inventory. This is the default.
	MergeLibvirtFirst = "libvirt-first"
	// MergeStaticFirst: the static inventory wins over live sources (for
	// operators who correct libvirt's view by hand).
	MergeStaticFirst = "static-first"
)

// Config configures the Enricher (config key "enrich").
type Config struct {
	// Static is the static inventory file source.
	Static StaticConfig `mapstructure:"static" yaml:"static"`
	// Merge is the source order used when several sources describe the
	// same VM identity (UUID, or name when there is no UUID):
	// "libvirt-first" (default) or "static-first". See merge.go.
	Merge string `mapstructure:"merge" yaml:"merge"`
	// Learn configures IP addresses learned from traffic (key
	// "enrich.learn"). See learn.go.
	Learn LearnConfig `mapstructure:"learn" yaml:"learn"`
}

// LearnConfig configures addresses learned from traffic (key
// "enrich.learn"): when a known VM interface's MAC is seen as the source of
// a packet with a source IP that interface does not have, the IP is
// remembered for that interface and indexed as Addr{Source: "learned"}.
type LearnConfig struct {
	// Enabled turns learning on (default true).
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// Expiry: a learned address not seen for this long is forgotten
	// (default 10m).
	Expiry time.Duration `mapstructure:"expiry" yaml:"expiry"`
	// Max bounds the learned addresses kept; over it the least recently
	// seen is dropped (counted in vmflow_enrich_learn_evicted_total).
	// Default 100000.
	Max int `mapstructure:"max" yaml:"max"`
	// MaxPerInterface bounds the learned addresses of one VM interface (a
	// VM that routes or NATs for others sends from many source IPs); over
	// it the interface's least recently seen address is dropped. Default 64.
	MaxPerInterface int `mapstructure:"max_per_interface" yaml:"max_per_interface"`
	// Interval: changes to the learned set are merged into a new index at
	// most this often, and only when something changed (default 1s).
	Interval time.Duration `mapstructure:"interval" yaml:"interval"`
	// Queue is the capacity of the hand-off from the hot path to the
	// learner; reports that find it full are dropped and counted in
	// vmflow_enrich_learn_dropped_total (default 4096).
	Queue int `mapstructure:"queue" yaml:"queue"`
	// LinkLocal also learns link-local source addresses (IPv6 fe80::/10,
	// IPv4 169.254/16). Off by default: every IPv6 interface has one and
	// they are meaningless outside the link.
	LinkLocal bool `mapstructure:"link_local" yaml:"link_local"`
}

// DefaultLearnConfig returns the learning defaults.
func DefaultLearnConfig() LearnConfig {
	return LearnConfig{
		Enabled:         true,
		Expiry:          10 * time.Minute,
		Max:             100000,
		MaxPerInterface: 64,
		Interval:        time.Second,
		Queue:           4096,
	}
}

// Validate checks the learning configuration (only when enabled).
func (c LearnConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.Expiry < time.Second {
		return fmt.Errorf("enrich.learn.expiry: must be >= 1s, got %s", c.Expiry)
	}
	if c.Max < 1 {
		return fmt.Errorf("enrich.learn.max: must be >= 1, got %d", c.Max)
	}
	if c.MaxPerInterface < 1 {
		return fmt.Errorf("enrich.learn.max_per_interface: must be >= 1, got %d", c.MaxPerInterface)
	}
	if c.Interval < 10*time.Millisecond || c.Interval > c.Expiry {
		return fmt.Errorf("enrich.learn.interval: must be between 10ms and enrich.learn.expiry (%s), got %s", c.Expiry, c.Interval)
	}
	if c.Queue < 1 || c.Queue > 1<<20 {
		return fmt.Errorf("enrich.learn.queue: must be between 1 and 1048576, got %d", c.Queue)
	}
	return nil
}

// StaticConfig configures the static inventory source (key "enrich.static").
type StaticConfig struct {
	// File is the inventory YAML path; empty disables the static source.
	File string `mapstructure:"file" yaml:"file" cfgload:"path"`
	// Reload is how often the file's mtime and size are checked; the file
	// is re-read when they change. 0 disables reloading.
	Reload time.Duration `mapstructure:"reload" yaml:"reload"`
}

// DefaultConfig returns the defaults: no static file, reload check every
// 5 s, libvirt-first merging, learning from traffic on (see
// DefaultLearnConfig).
func DefaultConfig() Config {
	return Config{
		Static: StaticConfig{Reload: 5 * time.Second},
		Merge:  MergeLibvirtFirst,
		Learn:  DefaultLearnConfig(),
	}
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	switch c.Merge {
	case MergeLibvirtFirst, MergeStaticFirst:
	default:
		return fmt.Errorf("enrich.merge: must be %q or %q, got %q", MergeLibvirtFirst, MergeStaticFirst, c.Merge)
	}
	if c.Static.Reload < 0 {
		return fmt.Errorf("enrich.static.reload: must be >= 0, got %s", c.Static.Reload)
	}
	if c.Static.Reload > 0 && c.Static.Reload < 100*time.Millisecond {
		return fmt.Errorf("enrich.static.reload: must be 0 (off) or >= 100ms, got %s", c.Static.Reload)
	}
	return c.Learn.Validate()
}
