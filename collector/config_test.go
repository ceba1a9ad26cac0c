package collector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, ":6343", cfg.SFlow.Listen)
	assert.Equal(t, ":4739", cfg.IPFIX.Listen)
	assert.Equal(t, ":2055", cfg.NetFlow9.Listen)
	assert.Equal(t, 2, cfg.SFlow.Sockets)
	assert.Equal(t, cfg.SFlow.Sockets, cfg.SFlow.workers())
	assert.Equal(t, 8192, cfg.SFlow.QueueSize)
	assert.Equal(t, 32<<20, cfg.SFlow.ReadBuffer)
	assert.Equal(t, 65535, cfg.SFlow.MaxDatagram)
	assert.Equal(t, 64, cfg.SFlow.Batch)
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		key  string // "" = valid
	}{
		{"disabled listener", func(c *Config) { c.NetFlow9 = ListenerConfig{} }, ""},
		{"workers 0 means sockets", func(c *Config) { c.SFlow.Workers = 0; c.SFlow.Sockets = 3 }, ""},
		{"ephemeral ports may repeat", func(c *Config) { c.SFlow.Listen = ":0"; c.IPFIX.Listen = "127.0.0.1:0" }, ""},
		{"allowed CIDR and address", func(c *Config) { c.AllowedExporters = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"} }, ""},
		{"sockets", func(c *Config) { c.SFlow.Sockets = 0 }, "collector.sflow.sockets"},
		{"workers", func(c *Config) { c.IPFIX.Workers = -1 }, "collector.ipfix.workers"},
		{"queue_size", func(c *Config) { c.NetFlow9.QueueSize = 0 }, "collector.netflow9.queue_size"},
		{"read_buffer", func(c *Config) { c.SFlow.ReadBuffer = -1 }, "collector.sflow.read_buffer"},
		{"max_datagram", func(c *Config) { c.SFlow.MaxDatagram = 70000 }, "collector.sflow.max_datagram"},
		{"batch", func(c *Config) { c.SFlow.Batch = 0 }, "collector.sflow.batch"},
		{"listen not host:port", func(c *Config) { c.SFlow.Listen = "6343" }, "collector.sflow.listen"},
		{"listen bad port", func(c *Config) { c.SFlow.Listen = ":99999" }, "collector.sflow.listen"},
		{"listen bad host", func(c *Config) { c.IPFIX.Listen = "10.0.0.300:4739" }, "collector.ipfix.listen"},
		{"same port twice", func(c *Config) { c.IPFIX.Listen = ":6343" }, "collector.ipfix.listen"},
		{"allowed", func(c *Config) { c.AllowedExporters = []string{"10.0.0.0/33"} }, "collector.allowed_exporters[0]"},
		{"allowed garbage", func(c *Config) { c.AllowedExporters = []string{"10.0.0.1", "nope"} }, "collector.allowed_exporters[1]"},
		{"exporter_timeout", func(c *Config) { c.ExporterTimeout = 0 }, "collector.exporter_timeout"},
		{"max_exporters", func(c *Config) { c.MaxExporters = 0 }, "collector.max_exporters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.key == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.key+":")
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExporterTimeout = -time.Second
	_, err := New(cfg, &fakeHandler{}, nil)
	assert.ErrorContains(t, err, "collector.exporter_timeout")
}
