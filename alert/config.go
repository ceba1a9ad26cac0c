package alert

import (
	"errors"
	"fmt"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/alert/notify"
)

// Config is the alert section of vmflow's configuration (the delivery
// receivers are configured in alert/notify).
type Config struct {
	// Enabled turns the alert engine on.
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// RulesFile is the rules YAML; "" = the built-in default pack.
	RulesFile string `mapstructure:"rules_file" yaml:"rules_file"`
	// Reload is how often the rules file's modification is checked (0 = read once).
	Reload time.Duration `mapstructure:"reload" yaml:"reload"`
	// Source is the export protocol rules see when they do not name one:
	// auto (per window and directed pair the most precise present), sflow,
	// ipfix or netflow9.
	Source string `mapstructure:"source" yaml:"source"`
	// SnapshotFile keeps baselines, new-peer memory, silences and active
	// alerts across restarts; "" = no persistence.
	SnapshotFile string `mapstructure:"snapshot_file" yaml:"snapshot_file"`
	// SnapshotInterval is how often the snapshot is written (and on Stop).
	SnapshotInterval time.Duration `mapstructure:"snapshot_interval" yaml:"snapshot_interval"`
	// Queue is how many closed windows wait for evaluation; when full, the
	// newest window is dropped and counted.
	Queue int `mapstructure:"queue" yaml:"queue"`
	// Recent is how many resolved alerts the API keeps.
	Recent int `mapstructure:"recent" yaml:"recent"`
	// MaxSeries bounds the series of dynamic baselines (over all rules).
	MaxSeries int `mapstructure:"max_series" yaml:"max_series"`
	// MaxPeers bounds the new-peer memory (VM, peer) entries.
	MaxPeers int `mapstructure:"max_peers" yaml:"max_peers"`
	// MaxAlerts bounds pending and firing alerts (over all rules).
	MaxAlerts int `mapstructure:"max_alerts" yaml:"max_alerts"`
	// Inhibit: a firing P0 for a VM suppresses that VM's P2–P4 alerts.
	Inhibit bool `mapstructure:"inhibit" yaml:"inhibit"`
	// SeriesExpiry forgets a baseline (and exporter) not seen this long.
	SeriesExpiry time.Duration `mapstructure:"series_expiry" yaml:"series_expiry"`
	// Notify configures delivery (alert.notify.*: Alertmanager, SMTP,
	// webhooks); with no receiver, alerts are only shown in the API.
	Notify notify.Config `mapstructure:"notify" yaml:"notify"`
}

// DefaultConfig: on, the default rule pack, no state file (configs/vmflow.yaml sets one).
func DefaultConfig() Config {
	return Config{
		Enabled:          true,
		Reload:           5 * time.Second,
		Source:           aggregate.SelectAuto,
		SnapshotFile:     "",
		SnapshotInterval: time.Minute,
		Queue:            4,
		Recent:           1000,
		MaxSeries:        1_000_000,
		MaxPeers:         2_000_000,
		MaxAlerts:        10_000,
		SeriesExpiry:     24 * time.Hour,
		Notify:           notify.DefaultConfig(),
	}
}

// Validate checks the settings; errors name the key.
func (c Config) Validate() error {
	var errs []error
	if c.Reload < 0 {
		errs = append(errs, fmt.Errorf("alert.reload: must be >= 0, got %s", c.Reload))
	}
	if !aggregate.ValidSelect(c.Source) || c.Source == "" {
		errs = append(errs, fmt.Errorf("alert.source: must be auto, sflow, ipfix or netflow9, got %q", c.Source))
	}
	if c.SnapshotInterval <= 0 {
		errs = append(errs, fmt.Errorf("alert.snapshot_interval: must be > 0, got %s", c.SnapshotInterval))
	}
	if c.Queue < 1 {
		errs = append(errs, fmt.Errorf("alert.queue: must be >= 1, got %d", c.Queue))
	}
	if c.Recent < 0 {
		errs = append(errs, fmt.Errorf("alert.recent: must be >= 0, got %d", c.Recent))
	}
	if c.MaxSeries < 1 {
		errs = append(errs, fmt.Errorf("alert.max_series: must be >= 1, got %d", c.MaxSeries))
	}
	if c.MaxPeers < 1 {
		errs = append(errs, fmt.Errorf("alert.max_peers: must be >= 1, got %d", c.MaxPeers))
	}
	if c.MaxAlerts < 1 {
		errs = append(errs, fmt.Errorf("alert.max_alerts: must be >= 1, got %d", c.MaxAlerts))
	}
	if c.SeriesExpiry <= 0 {
		errs = append(errs, fmt.Errorf("alert.series_expiry: must be > 0, got %s", c.SeriesExpiry))
	}
	if err := c.Notify.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
