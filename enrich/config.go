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
}

// StaticConfig configures the static inventory source (key "enrich.static").
type StaticConfig struct {
	// File is the inventory YAML path; empty disables the static source.
	File string `mapstructure:"file" yaml:"file"`
	// Reload is how often the file's mtime and size are checked; the file
	// is re-read when they change. 0 disables reloading.
	Reload time.Duration `mapstructure:"reload" yaml:"reload"`
}

// DefaultConfig returns the defaults: no static file, reload check every
// 5 s, libvirt-first merging.
func DefaultConfig() Config {
	return Config{
		Static: StaticConfig{Reload: 5 * time.Second},
		Merge:  MergeLibvirtFirst,
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
	return nil
}
