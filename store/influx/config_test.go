package influx

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate(), "disabled default")
	c.Enabled = true
	require.NoError(t, c.Validate(), "enabled default")
	assert.Equal(t, "vmflow", c.DatabaseName())
	assert.Equal(t, "autogen", c.RetentionPolicy())

	for key, mut := range map[string]func(*Config){
		"influx.url":                 func(c *Config) { c.URL = "localhost:8086" },
		"influx.bucket":              func(c *Config) { c.Bucket = "" },
		"influx.batch_size":          func(c *Config) { c.BatchSize = 0 },
		"influx.flush_interval":      func(c *Config) { c.FlushInterval = 0 },
		"influx.queue_windows":       func(c *Config) { c.QueueWindows = 0 },
		"influx.queue_batches":       func(c *Config) { c.QueueBatches = 0 },
		"influx.queue_bytes":         func(c *Config) { c.QueueBytes = 1000 },
		"influx.timeout":             func(c *Config) { c.Timeout = time.Millisecond },
		"influx.max_retries":         func(c *Config) { c.MaxRetries = -1 },
		"influx.retry_min":           func(c *Config) { c.RetryMin = 0 },
		"influx.retry_max":           func(c *Config) { c.RetryMax = c.RetryMin / 2 },
		"influx.spool.dir":           func(c *Config) { c.Spool.Dir = "" },
		"influx.spool.max_bytes":     func(c *Config) { c.Spool.MaxBytes = 1000 },
		"influx.spool.segment_bytes": func(c *Config) { c.Spool.SegmentBytes = c.Spool.MaxBytes },
		"influx.retention.raw":       func(c *Config) { c.Retention.Raw = time.Minute },
		"influx.retention.rollup_1m": func(c *Config) { c.Retention.Rollup1m = -1 },
		"influx.retention.rollup_1h": func(c *Config) { c.Retention.Rollup1h = time.Second },
	} {
		c := DefaultConfig()
		c.Enabled = true
		mut(&c)
		err := c.Validate()
		if assert.Error(t, err, key) {
			assert.Contains(t, err.Error(), key+":")
		}
		c.Enabled = false
		assert.NoError(t, c.Validate(), "disabled config is not checked (%s)", key)
	}

	c = DefaultConfig()
	c.Bucket, c.Database = "metrics", ""
	assert.Equal(t, "metrics", c.DatabaseName())
	assert.Equal(t, "autogen", c.RetentionPolicy())
	c.Bucket = "db/rp7"
	assert.Equal(t, "db", c.DatabaseName())
	assert.Equal(t, "rp7", c.RetentionPolicy())
}
