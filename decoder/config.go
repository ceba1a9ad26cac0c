package decoder

import (
	"errors"
	"fmt"
)

// Config configures the decoder front (Decoder).
type Config struct {
	SFlow SFlowConfig `mapstructure:"sflow" yaml:"sflow"`
	Flow  FlowConfig  `mapstructure:"flow" yaml:"flow"`
}

// SFlowConfig configures sFlow v5 decoding.
type SFlowConfig struct {
	// MaxSamples caps the sample count a datagram header may announce; a
	// datagram announcing more is rejected (reason too_many_samples) before
	// anything is decoded. goflow2 applies the same cap of 1000.
	MaxSamples int `mapstructure:"max_samples" yaml:"max_samples"`
	// MaxRecords caps the record count of one sample (flow, expanded flow,
	// counter, drop). OVS sends 2 records per flow sample and 4-6 per
	// counter sample. A sample announcing more is rejected (reason
	// too_many_records); this also guards goflow2's unbounded allocation for
	// expanded flow samples.
	MaxRecords int `mapstructure:"max_records" yaml:"max_records"`
	// FastPath selects vmflow's own allocation-free sFlow decoder (true) or
	// goflow2's decoders/sflow followed by a mapping step (false).
	FastPath bool `mapstructure:"fast_path" yaml:"fast_path"`
}

// goflow2 rejects more than 1000 samples per datagram and 1000 records per
// sample; higher caps would only make the two paths disagree.
const sflowHardCap = 1000

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{SFlow: DefaultSFlowConfig(), Flow: DefaultFlowConfig()}
}

// DefaultSFlowConfig returns the sFlow defaults.
func DefaultSFlowConfig() SFlowConfig {
	return SFlowConfig{MaxSamples: 1000, MaxRecords: 64, FastPath: true}
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	var errs []error
	if err := c.SFlow.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Flow.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Validate checks the sFlow configuration; errors name the key.
func (c SFlowConfig) Validate() error {
	var errs []error
	if c.MaxSamples < 1 || c.MaxSamples > sflowHardCap {
		errs = append(errs, fmt.Errorf("decoder.sflow.max_samples: must be between 1 and %d, got %d", sflowHardCap, c.MaxSamples))
	}
	if c.MaxRecords < 1 || c.MaxRecords > sflowHardCap {
		errs = append(errs, fmt.Errorf("decoder.sflow.max_records: must be between 1 and %d, got %d", sflowHardCap, c.MaxRecords))
	}
	return errors.Join(errs...)
}
