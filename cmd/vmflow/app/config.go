// Package app is vmflow's composition root: the top-level configuration
// (loaded with viper, see cmd/vmflow/internal/cfgload) and the wiring of
// collector → decoder → enrich → aggregate → store → api. It is importable
// so that end-to-end tests can run vmflow in-process.
package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/alert"
	"github.com/vmflow/vmflow/api"
	"github.com/vmflow/vmflow/cmd/vmflow/internal/cfgload"
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/enrich/libvirt"
	"github.com/vmflow/vmflow/internal/logsample"
	"github.com/vmflow/vmflow/probe"
	"github.com/vmflow/vmflow/store"
	"github.com/vmflow/vmflow/store/influx"
	"github.com/vmflow/vmflow/store/peer"
)

// EnvPrefix is the prefix of the environment overrides: VMFLOW_API_LISTEN
// sets api.listen.
const EnvPrefix = "VMFLOW"

// LogConfig configures logging (log/slog).
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level" yaml:"level"`
	// Format is text or json.
	Format string `mapstructure:"format" yaml:"format"`
	// Sample bounds repeated messages (see internal/logsample).
	Sample logsample.Config `mapstructure:"sample" yaml:"sample"`
}

// InventoryConfig holds the live inventory sources (the static file is
// enrich.static).
type InventoryConfig struct {
	Libvirt libvirt.Config `mapstructure:"libvirt" yaml:"libvirt"`
}

// Config is vmflow's whole configuration. Every key can be set in the YAML
// file or overridden by VMFLOW_<KEY_PATH> (e.g. VMFLOW_AGGREGATE_WINDOW).
type Config struct {
	Log       LogConfig        `mapstructure:"log" yaml:"log"`
	Collector collector.Config `mapstructure:"collector" yaml:"collector"`
	Decoder   decoder.Config   `mapstructure:"decoder" yaml:"decoder"`
	Enrich    enrich.Config    `mapstructure:"enrich" yaml:"enrich"`
	Inventory InventoryConfig  `mapstructure:"inventory" yaml:"inventory"`
	Aggregate aggregate.Config `mapstructure:"aggregate" yaml:"aggregate"`
	Store     store.Config     `mapstructure:"store" yaml:"store"`
	Influx    influx.Config    `mapstructure:"influx" yaml:"influx"`
	API       api.Config       `mapstructure:"api" yaml:"api"`
	Shutdown  ShutdownConfig   `mapstructure:"shutdown" yaml:"shutdown"`
	Alert     alert.Config     `mapstructure:"alert" yaml:"alert"`
	// Probe is read by `vmflow probe` only (on the hypervisors).
	Probe probe.Config `mapstructure:"probe" yaml:"probe"`
	// Query makes this vmflow a query node (query.peers: the collectors'
	// API URLs); see store/peer.
	Query peer.Config `mapstructure:"query" yaml:"query"`
	// Runtime: the Go runtime's memory limit (memlimit.go).
	Runtime RuntimeConfig `mapstructure:"runtime" yaml:"runtime"`
}

// DefaultConfig is every component's DefaultConfig.
func DefaultConfig() Config {
	return Config{
		Log:       LogConfig{Level: "info", Format: "text", Sample: logsample.DefaultConfig()},
		Collector: collector.DefaultConfig(),
		Decoder:   decoder.DefaultConfig(),
		Enrich:    enrich.DefaultConfig(),
		Inventory: InventoryConfig{Libvirt: libvirt.DefaultConfig()},
		Aggregate: aggregate.DefaultConfig(),
		Store:     store.DefaultConfig(),
		Influx:    influx.DefaultConfig(),
		API:       api.DefaultConfig(),
		Shutdown:  DefaultShutdownConfig(),
		Alert:     alert.DefaultConfig(),
		Probe:     probe.DefaultConfig(),
		Query:     peer.DefaultConfig(),
		Runtime:   DefaultRuntimeConfig(),
	}
}

// Validate checks every section; each error names its key.
func (c Config) Validate() error {
	return errors.Join(
		c.Log.Validate(),
		c.Collector.Validate(),
		c.Decoder.Validate(),
		c.Enrich.Validate(),
		c.Inventory.Libvirt.Validate(),
		c.Aggregate.Validate(),
		c.Store.Validate(),
		c.Influx.Validate(),
		c.API.Validate(),
		c.Shutdown.Validate(),
		c.validateInfluxWindow(),
		c.Alert.Validate(),
		c.Probe.Validate(),
		c.Query.Validate(),
		c.Runtime.Validate(),
	)
}

// Validate checks the log settings.
func (c LogConfig) Validate() error {
	var errs []error
	if _, err := parseLevel(c.Level); err != nil {
		errs = append(errs, err)
	}
	switch c.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: must be text or json, got %q", c.Format))
	}
	errs = append(errs, c.Sample.Validate("log.sample."))
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log.level: must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// NewLogger builds the slog logger the config asks for, writing to w. Its
// handler is a *logsample.Handler: the level and the sampling can change
// on reload (App.New finds it and registers its metric).
func (c LogConfig) NewLogger(w io.Writer) *slog.Logger {
	lvl, _ := parseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: slog.LevelDebug} // the sampler filters
	var inner slog.Handler = slog.NewTextHandler(w, opts)
	if strings.EqualFold(c.Format, "json") {
		inner = slog.NewJSONHandler(w, opts)
	}
	return slog.New(logsample.New(inner, lvl, c.Sample))
}

// LoadResult tells where the configuration came from.
type LoadResult = cfgload.Result

// Load reads the defaults, the YAML file at path ("" for none) and the
// environment (nil: os.Environ()), then validates. Errors name the key.
func Load(path string, environ []string) (Config, LoadResult, error) {
	cfg := DefaultConfig()
	res, err := load(path, &cfg, environ)
	if err != nil {
		return cfg, res, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, res, fmt.Errorf("config: %w", err)
	}
	return cfg, res, nil
}

func load(path string, cfg *Config, environ []string) (LoadResult, error) {
	return cfgload.Load(path, cfg, cfgload.Options{EnvPrefix: EnvPrefix, Environ: environ})
}

// loadNoValidate is Load from the environment only, without Validate (tests).
func loadNoValidate(cfg *Config, environ []string) (LoadResult, error) {
	return load("", cfg, environ)
}

// Redacted replaces in Dump's output a secret's value that is set.
const Redacted = "<redacted>"

// Dump renders the configuration as YAML, secrets (influx.token, unless
// empty or the no-auth ":"; alert.notify's SMTP password, webhook HMAC
// secrets and passwords in receiver URLs) replaced by Redacted.
func (c Config) Dump() ([]byte, error) {
	if c.Influx.Token != "" && c.Influx.Token != ":" {
		c.Influx.Token = Redacted
	}
	c.Alert.Notify = c.Alert.Notify.Redacted(Redacted)
	return cfgload.Dump(c)
}

// Keys lists every configuration key with its environment variable.
func Keys() []cfgload.Key { return cfgload.Keys(DefaultConfig(), EnvPrefix) }
