package ovslab

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// WriteInventory writes a static inventory (enrich.static.file) of the
// lab's VMs and hosts, every VM in tenant: each host's exporter identity
// is its lab address (sFlow agent and the UDP source of its sFlow and
// IPFIX datagrams). It returns the file's path (in a test temp dir).
func (l *Lab) WriteInventory(t testing.TB, tenant string) string {
	t.Helper()
	type iface struct {
		MAC    string   `yaml:"mac"`
		IPs    []string `yaml:"ips"`
		Tap    string   `yaml:"tap"`
		Bridge string   `yaml:"bridge"`
	}
	type vm struct {
		Name       string  `yaml:"name"`
		UUID       string  `yaml:"uuid"`
		Host       string  `yaml:"host"`
		Tenant     string  `yaml:"tenant"`
		Interfaces []iface `yaml:"interfaces"`
	}
	type host struct {
		Name      string   `yaml:"name"`
		Exporters []string `yaml:"exporters"`
	}
	var inv struct {
		Hosts []host `yaml:"hosts"`
		VMs   []vm   `yaml:"vms"`
	}
	for _, h := range l.Hosts() {
		inv.Hosts = append(inv.Hosts, host{Name: h.Name, Exporters: []string{h.Addr.String()}})
	}
	for i, v := range l.VMs() {
		inv.VMs = append(inv.VMs, vm{
			Name:   v.Name,
			UUID:   fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1),
			Host:   v.Host.Name,
			Tenant: tenant,
			Interfaces: []iface{{
				MAC: v.MAC.String(), IPs: []string{v.IP.String()}, Tap: v.HostVeth, Bridge: v.Host.Bridge,
			}},
		})
	}
	b, err := yaml.Marshal(inv)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "inventory.yaml")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}
