package store

import (
	"errors"
	"fmt"
	"time"
)

// MemoryConfig bounds the in-memory store of recent windows.
type MemoryConfig struct {
	// Retention is how far back (from the newest window's end) windows are
	// kept. Older windows are evicted.
	Retention time.Duration `mapstructure:"retention" yaml:"retention"`
	// MaxWindows caps the number of windows held (0 = no cap beyond retention).
	MaxWindows int `mapstructure:"max_windows" yaml:"max_windows"`
	// MaxPairs caps the total number of pairs held across all windows; the
	// oldest windows are evicted first. The newest window is always kept.
	MaxPairs int `mapstructure:"max_pairs" yaml:"max_pairs"`
}

// Config is the store section of vmflow's configuration (the InfluxDB
// writer has its own config in store/influx).
type Config struct {
	Memory MemoryConfig `mapstructure:"memory" yaml:"memory"`
}

// DefaultMemoryConfig keeps one hour, at most 3600 windows (one hour of
// 1 s windows; with the default 10 s windows retention decides first) and
// at most 500,000 pairs (roughly 350 MB at ~700 bytes per pair).
func DefaultMemoryConfig() MemoryConfig {
	return MemoryConfig{
		Retention:  time.Hour,
		MaxWindows: 3600,
		MaxPairs:   500_000,
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
