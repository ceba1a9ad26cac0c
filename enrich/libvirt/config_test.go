package libvirt

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate(), "defaults are valid (no connections: libvirt off)")
	c.Connections = []ConnConfig{{URI: "qemu+tcp://hv1/system", Exporters: []string{"10.0.0.1"}}}
	require.NoError(t, c.Validate())

	cases := map[string]func(*Config){
		"inventory.libvirt.connections[0].uri":          func(c *Config) { c.Connections[0].URI = "qemu+ssh://hv/system" },
		"inventory.libvirt.connections[0].exporters[0]": func(c *Config) { c.Connections[0].Exporters = []string{"hv1"} },
		"inventory.libvirt.connections[0].tls":          func(c *Config) { c.Connections[0].TLS.CertFile = "/c.pem" },
		"inventory.libvirt.connections[1].uri":          func(c *Config) { c.Connections = append(c.Connections, c.Connections[0]) },
		"inventory.libvirt.resync_interval":             func(c *Config) { c.ResyncInterval = 0 },
		"inventory.libvirt.reconnect_max":               func(c *Config) { c.ReconnectMax = time.Millisecond },
		"inventory.libvirt.address_sources[1]":          func(c *Config) { c.AddressSources = []string{"lease", "dhcp"} },
		"inventory.libvirt.keepalive_count":             func(c *Config) { c.KeepaliveCount = 0 },
		"inventory.libvirt.call_timeout":                func(c *Config) { c.CallTimeout = 0 },
		"inventory.libvirt.fetch_concurrency":           func(c *Config) { c.FetchConcurrency = 0 },
		"inventory.libvirt.tenant_from[0]":              func(c *Config) { c.TenantFrom = []string{"keystone"} },
		"inventory.libvirt.tenant_metadata.element":     func(c *Config) { c.TenantFrom = []string{"metadata"} },
		"inventory.libvirt.metadata_labels[0].label": func(c *Config) {
			c.MetadataLabels = []MetadataLabel{{MetadataKey: MetadataKey{Element: "x"}}}
		},
		"inventory.libvirt.static_tenants[0].tenant": func(c *Config) { c.StaticTenants = []StaticTenant{{NamePrefix: "a"}} },
	}
	for key, mut := range cases {
		t.Run(key, func(t *testing.T) {
			c := DefaultConfig()
			c.Connections = []ConnConfig{{URI: "qemu+tcp://hv1/system"}}
			mut(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), key+":")
		})
	}
}
