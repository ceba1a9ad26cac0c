package store

import (
	"errors"
	"fmt"
	"time"
)

// MemoryConfig bounds the in-memory store of recent windows.
//
// The store keeps windows in up to three tiers: the aggregation windows
// themselves for the last FullResolution, then windows pre-merged into
// Tier1Step buckets (1 minute by default) up to Tier1Until, then
// Tier2Step buckets (10 minutes) up to Retention. Merges are exact (see
// segment.go). A step of 0 disables that tier (windows go on to the next
// tier, or stay at full resolution up to Retention).
type MemoryConfig struct {
	// Retention is how far back (from the newest window's end) windows are
	// kept. Older windows are evicted.
	Retention time.Duration `mapstructure:"retention" yaml:"retention"`
	// FullResolution is how long windows are kept as the aggregator wrote
	// them before they are merged into Tier1Step buckets.
	FullResolution time.Duration `mapstructure:"full_resolution" yaml:"full_resolution"`
	// Tier1Step is the bucket of the first merged tier (0: no such tier).
	Tier1Step time.Duration `mapstructure:"tier1_step" yaml:"tier1_step"`
	// Tier1Until is the age up to which Tier1Step buckets are kept before
	// they are merged into Tier2Step buckets.
	Tier1Until time.Duration `mapstructure:"tier1_until" yaml:"tier1_until"`
	// Tier2Step is the bucket of the second merged tier (0: no such tier).
	Tier2Step time.Duration `mapstructure:"tier2_step" yaml:"tier2_step"`
	// MaxWindows caps the number of windows held, merged ones counting one
	// each (0 = no cap beyond retention).
	MaxWindows int `mapstructure:"max_windows" yaml:"max_windows"`
	// MaxPairs caps the total number of pair rows held across all windows
	// (a merged window holds one row per pair); the oldest windows are
	// evicted first. The newest window is always kept.
	MaxPairs int `mapstructure:"max_pairs" yaml:"max_pairs"`
}

// Config is the store section of vmflow's configuration (the InfluxDB
// writer has its own config in store/influx).
type Config struct {
	Memory MemoryConfig `mapstructure:"memory" yaml:"memory"`
}

// DefaultMemoryConfig keeps one hour: 10 s windows for 2 minutes, 1-minute
// windows up to 10 minutes, 10-minute windows up to the hour (at most 27
// windows of rows; 5.4 million rows at 200,000 active pairs), at most
// 8,000,000 pair rows (about 1.4 GB at the ~174 bytes per row measured by
// BenchmarkMemoryHour200k) and at most 3600 windows.
func DefaultMemoryConfig() MemoryConfig {
	return MemoryConfig{
		Retention:      time.Hour,
		FullResolution: 2 * time.Minute,
		Tier1Step:      time.Minute,
		Tier1Until:     10 * time.Minute,
		Tier2Step:      10 * time.Minute,
		MaxWindows:     3600,
		MaxPairs:       8_000_000,
	}
}

// DefaultConfig returns the default store configuration.
func DefaultConfig() Config { return Config{Memory: DefaultMemoryConfig()} }

// Validate checks the memory store settings; errors name the key.
func (c MemoryConfig) Validate() error {
	var errs []error
	if c.Retention <= 0 {
		errs = append(errs, fmt.Errorf("store.memory.retention: must be > 0, got %s", c.Retention))
	}
	if c.FullResolution < 0 {
		errs = append(errs, fmt.Errorf("store.memory.full_resolution: must be >= 0, got %s", c.FullResolution))
	}
	if c.Tier1Step < 0 {
		errs = append(errs, fmt.Errorf("store.memory.tier1_step: must be >= 0, got %s", c.Tier1Step))
	}
	if c.Tier2Step < 0 {
		errs = append(errs, fmt.Errorf("store.memory.tier2_step: must be >= 0, got %s", c.Tier2Step))
	}
	if c.Tier1Step > 0 && c.Tier2Step > 0 {
		if c.Tier2Step%c.Tier1Step != 0 {
			errs = append(errs, fmt.Errorf("store.memory.tier2_step: must be a multiple of tier1_step (%s), got %s", c.Tier1Step, c.Tier2Step))
		}
		if c.Tier1Until < c.FullResolution {
			errs = append(errs, fmt.Errorf("store.memory.tier1_until: must be >= full_resolution (%s), got %s", c.FullResolution, c.Tier1Until))
		}
	}
	if c.MaxWindows < 0 {
		errs = append(errs, fmt.Errorf("store.memory.max_windows: must be >= 0, got %d", c.MaxWindows))
	}
	if c.MaxPairs < 1 {
		errs = append(errs, fmt.Errorf("store.memory.max_pairs: must be >= 1, got %d", c.MaxPairs))
	}
	return errors.Join(errs...)
}

// Validate checks the store configuration; errors name the key.
func (c Config) Validate() error { return c.Memory.Validate() }
