// Package influx writes vmflow's closed windows to InfluxDB (1.8 with the v2
// API, 2.x, Cloud) without losing them when InfluxDB is down or slow, reads
// history back with Flux, and sets up databases, retention and rollups.
// See the README, "InfluxDB schema", for the data layout.
package influx

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// SpoolConfig bounds the on-disk spool of batches that could not be
// written.
type SpoolConfig struct {
	// Dir holds the spool segment files. Required when the writer is
	// enabled.
	Dir string `mapstructure:"dir" yaml:"dir" cfgload:"path"`
	// MaxBytes bounds the spool; when full, the oldest segments are
	// deleted and their points counted as dropped.
	MaxBytes int64 `mapstructure:"max_bytes" yaml:"max_bytes"`
	// SegmentBytes is the size at which a new segment file is started
	// (0 = MaxBytes/8, at most 64 MiB).
	SegmentBytes int64 `mapstructure:"segment_bytes" yaml:"segment_bytes"`
}

// RetentionConfig is what `vmflow influx setup` creates.
type RetentionConfig struct {
	// Raw is how long the per-window points are kept (the retention policy
	// named in Bucket on 1.x, the bucket's retention on 2.x). 0 = forever.
	Raw time.Duration `mapstructure:"raw" yaml:"raw"`
	// Rollup1m and Rollup1h are the retention of the 1-minute and 1-hour
	// rollups (0 disables that rollup).
	Rollup1m time.Duration `mapstructure:"rollup_1m" yaml:"rollup_1m"`
	Rollup1h time.Duration `mapstructure:"rollup_1h" yaml:"rollup_1h"`
}

// Config is the influx section of vmflow's configuration.
type Config struct {
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// URL of the InfluxDB HTTP API, e.g. http://127.0.0.1:8086.
	URL string `mapstructure:"url" yaml:"url"`
	// Token: an API token on 2.x/Cloud; "user:password" on 1.x (":" or
	// empty without authentication).
	Token string `mapstructure:"token" yaml:"token"`
	// Org: organisation on 2.x (ignored by 1.x).
	Org string `mapstructure:"org" yaml:"org"`
	// Bucket: bucket on 2.x; "database/retention_policy" on 1.x.
	Bucket string `mapstructure:"bucket" yaml:"bucket"`
	// Database is the 1.x database `vmflow influx setup` creates (default:
	// the part of Bucket before "/").
	Database string `mapstructure:"database" yaml:"database"`

	// BatchSize is the number of points per write request.
	BatchSize int `mapstructure:"batch_size" yaml:"batch_size"`
	// FlushInterval sends a partial batch after this long.
	FlushInterval time.Duration `mapstructure:"flush_interval" yaml:"flush_interval"`
	// QueueWindows bounds the windows waiting to be encoded; QueueBatches
	// bounds the encoded batches held in memory waiting to be sent. Beyond
	// either, data goes to the spool (never dropped).
	QueueWindows int `mapstructure:"queue_windows" yaml:"queue_windows"`
	QueueBatches int `mapstructure:"queue_batches" yaml:"queue_batches"`
	// QueueBytes bounds the memory of the windows waiting to be encoded
	// (their pairs: about 750 bytes each, so one window of 200,000 pairs
	// is ~150 MB and queue_windows alone could hold ~9 GB). A window that
	// would exceed it is encoded at once and its batches go behind the
	// queue or to the spool (counted in
	// vmflow_influx_queue_overflow_windows_total, never dropped).
	QueueBytes int64 `mapstructure:"queue_bytes" yaml:"queue_bytes"`
	// Gzip compresses write requests.
	Gzip bool `mapstructure:"gzip" yaml:"gzip"`
	// Timeout of one HTTP request.
	Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
	// MaxRetries is how many times a failed write is retried (with
	// exponential backoff between RetryMin and RetryMax, or the server's
	// Retry-After on 429/503) before the batch goes to the spool.
	MaxRetries int           `mapstructure:"max_retries" yaml:"max_retries"`
	RetryMin   time.Duration `mapstructure:"retry_min" yaml:"retry_min"`
	RetryMax   time.Duration `mapstructure:"retry_max" yaml:"retry_max"`
	// SelfInterval is how often the writer records its own counters in
	// the "vmflow" measurement (0 disables).
	SelfInterval time.Duration `mapstructure:"self_interval" yaml:"self_interval"`
	// Instance is the "instance" tag of every point this vmflow writes
	// (vm_pair, vm, vm_info, exporter, alert, vmflow; default: the hostname), so
	// that several collectors can share one InfluxDB (see the README,
	// "More than one collector"). Readers merge instances.
	Instance string `mapstructure:"instance" yaml:"instance"`

	// PairFields is what a vm_pair point carries: "lean" (the counters of
	// the window; VM UUIDs, MACs and addresses go to the low-rate vm_info
	// measurement, confidence bounds are derived from the variances) or
	// "full" (also the CI bounds and both endpoints' addressing, as vmflow
	// wrote before). See the README, "InfluxDB schema".
	PairFields string `mapstructure:"pair_fields" yaml:"pair_fields"`
	// InfoInterval is how often a VM's vm_info point is rewritten while
	// the VM talks (also whenever its UUID, MAC or address changes).
	InfoInterval time.Duration `mapstructure:"info_interval" yaml:"info_interval"`
	// Window, when > 0, merges that many seconds of aggregation windows
	// into one point per pair before writing (exact sums and variances; a
	// multiple of aggregate.window). 0 writes every aggregation window.
	Window time.Duration `mapstructure:"window" yaml:"window"`

	Spool     SpoolConfig     `mapstructure:"spool" yaml:"spool"`
	Retention RetentionConfig `mapstructure:"retention" yaml:"retention"`
}

// Values of Config.PairFields.
const (
	PairFieldsLean = "lean"
	PairFieldsFull = "full"
)

// DefaultConfig returns a disabled writer pointing at a local InfluxDB 1.8.
func DefaultConfig() Config {
	return Config{
		Enabled:       false,
		URL:           "http://127.0.0.1:8086",
		Token:         ":",
		Org:           "",
		Bucket:        "vmflow/autogen",
		Database:      "",
		BatchSize:     5000,
		FlushInterval: time.Second,
		QueueWindows:  64,
		QueueBatches:  16,
		QueueBytes:    512 << 20,
		Gzip:          true,
		Timeout:       10 * time.Second,
		MaxRetries:    3,
		RetryMin:      time.Second,
		RetryMax:      30 * time.Second,
		SelfInterval:  10 * time.Second,
		PairFields:    PairFieldsLean,
		InfoInterval:  10 * time.Minute,
		Window:        0,
		Spool: SpoolConfig{
			Dir:      "/var/lib/vmflow/influx-spool",
			MaxBytes: 1 << 30,
		},
		Retention: RetentionConfig{
			Raw:      7 * 24 * time.Hour,
			Rollup1m: 90 * 24 * time.Hour,
			Rollup1h: 2 * 365 * 24 * time.Hour,
		},
	}
}

// DatabaseName is Database, or the database part of Bucket.
func (c Config) DatabaseName() string {
	if c.Database != "" {
		return c.Database
	}
	db, _, _ := strings.Cut(c.Bucket, "/")
	return db
}

// RetentionPolicy is the retention-policy part of Bucket ("autogen" when
// Bucket names none).
func (c Config) RetentionPolicy() string {
	_, rp, ok := strings.Cut(c.Bucket, "/")
	if !ok || rp == "" {
		return "autogen"
	}
	return rp
}

// Validate checks the configuration; errors name the key. A disabled
// config is always valid.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("influx.url: must be an http(s) URL, got %q", c.URL)
	}
	if c.Bucket == "" {
		add("influx.bucket: must not be empty")
	}
	if c.BatchSize < 1 || c.BatchSize > 1_000_000 {
		add("influx.batch_size: must be in 1..1000000, got %d", c.BatchSize)
	}
	if c.FlushInterval <= 0 {
		add("influx.flush_interval: must be > 0, got %s", c.FlushInterval)
	}
	if c.QueueWindows < 1 {
		add("influx.queue_windows: must be >= 1, got %d", c.QueueWindows)
	}
	if c.QueueBytes < 1<<20 {
		add("influx.queue_bytes: must be >= 1048576, got %d", c.QueueBytes)
	}
	if c.QueueBatches < 1 {
		add("influx.queue_batches: must be >= 1, got %d", c.QueueBatches)
	}
	if c.Timeout < time.Second {
		add("influx.timeout: must be >= 1s, got %s", c.Timeout)
	}
	if c.MaxRetries < 0 {
		add("influx.max_retries: must be >= 0, got %d", c.MaxRetries)
	}
	if c.RetryMin <= 0 {
		add("influx.retry_min: must be > 0, got %s", c.RetryMin)
	}
	if c.RetryMax < c.RetryMin {
		add("influx.retry_max: must be >= influx.retry_min (%s), got %s", c.RetryMin, c.RetryMax)
	}
	if c.SelfInterval < 0 {
		add("influx.self_interval: must be >= 0, got %s", c.SelfInterval)
	}
	if c.PairFields != PairFieldsLean && c.PairFields != PairFieldsFull {
		add("influx.pair_fields: must be %s or %s, got %q", PairFieldsLean, PairFieldsFull, c.PairFields)
	}
	if c.InfoInterval < time.Minute || c.InfoInterval > 24*time.Hour {
		add("influx.info_interval: must be in 1m..24h, got %s", c.InfoInterval)
	}
	if c.Window != 0 && (c.Window < time.Second || c.Window > time.Hour || c.Window%time.Second != 0) {
		add("influx.window: must be 0 or whole seconds in 1s..1h, got %s", c.Window)
	}
	if c.Spool.Dir == "" {
		add("influx.spool.dir: must not be empty")
	}
	if c.Spool.MaxBytes < 1<<20 {
		add("influx.spool.max_bytes: must be >= 1048576, got %d", c.Spool.MaxBytes)
	}
	if c.Spool.SegmentBytes < 0 || (c.Spool.SegmentBytes > 0 && c.Spool.SegmentBytes > c.Spool.MaxBytes/2) {
		add("influx.spool.segment_bytes: must be 0 or at most influx.spool.max_bytes/2, got %d", c.Spool.SegmentBytes)
	}
	if c.Retention.Raw < 0 || (c.Retention.Raw > 0 && c.Retention.Raw < time.Hour) {
		add("influx.retention.raw: must be 0 (forever) or >= 1h, got %s", c.Retention.Raw)
	}
	if c.Retention.Rollup1m < 0 || (c.Retention.Rollup1m > 0 && c.Retention.Rollup1m < time.Hour) {
		add("influx.retention.rollup_1m: must be 0 (disabled) or >= 1h, got %s", c.Retention.Rollup1m)
	}
	if c.Retention.Rollup1h < 0 || (c.Retention.Rollup1h > 0 && c.Retention.Rollup1h < time.Hour) {
		add("influx.retention.rollup_1h: must be 0 (disabled) or >= 1h, got %s", c.Retention.Rollup1h)
	}
	return errors.Join(errs...)
}

// segmentBytes is the effective segment size.
func (c SpoolConfig) segmentBytes() int64 {
	if c.SegmentBytes > 0 {
		return c.SegmentBytes
	}
	s := c.MaxBytes / 8
	if s > 64<<20 {
		s = 64 << 20
	}
	if s < 64<<10 {
		s = 64 << 10
	}
	return s
}
