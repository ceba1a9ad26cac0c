package cfgload

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

type listener struct {
	Listen  string `mapstructure:"listen" yaml:"listen"`
	Sockets int    `mapstructure:"sockets" yaml:"sockets"`
}

type rate struct {
	CIDR string `mapstructure:"cidr" yaml:"cidr"`
	Rate int    `mapstructure:"rate" yaml:"rate"`
}

type testConfig struct {
	Collector struct {
		SFlow   listener      `mapstructure:"sflow" yaml:"sflow"`
		Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
		Allowed []string      `mapstructure:"allowed" yaml:"allowed"`
	} `mapstructure:"collector" yaml:"collector"`
	API struct {
		Listen string     `mapstructure:"listen" yaml:"listen"`
		Bind   netip.Addr `mapstructure:"bind" yaml:"bind"`
		Debug  bool       `mapstructure:"debug" yaml:"debug"`
	} `mapstructure:"api" yaml:"api"`
	Rates []rate `mapstructure:"rates" yaml:"rates"`
}

func defaults() testConfig {
	var c testConfig
	c.Collector.SFlow = listener{Listen: ":6343", Sockets: 2}
	c.Collector.Timeout = 15 * time.Minute
	c.Collector.Allowed = []string{"10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"}
	c.API.Listen = "127.0.0.1:8080"
	c.API.Bind = netip.MustParseAddr("127.0.0.1")
	c.Rates = []rate{{CIDR: "0.0.0.0/0", Rate: 1}}
	return c
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func TestKeysAndEnvNames(t *testing.T) {
	var paths, envs []string
	for _, k := range Keys(&testConfig{}, "VMFLOW") {
		paths = append(paths, k.Path)
		envs = append(envs, k.Env)
	}
	assert.Equal(t, []string{"collector.sflow.listen", "collector.sflow.sockets", "collector.timeout", "collector.allowed",
		"api.listen", "api.bind", "api.debug", "rates"}, paths)
	assert.Contains(t, envs, "VMFLOW_COLLECTOR_SFLOW_LISTEN")
}

func TestLoadDefaultsOnly(t *testing.T) {
	c := defaults()
	_, err := Load("", &c, Options{EnvPrefix: "VMFLOW", Environ: []string{}})
	require.NoError(t, err)
	assert.Empty(t, cmp.Diff(defaults(), c, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })))
}

func TestLoadFileOverridesAndKeepsDefaults(t *testing.T) {
	p := writeFile(t, `
collector:
  sflow:
    listen: ":16343"
  timeout: 30s
  allowed: [10.1.0.0/16]
api:
  bind: 127.0.0.9
rates:
  - cidr: 10.0.0.0/8
    rate: 64
`)
	c := defaults()
	res, err := Load(p, &c, Options{EnvPrefix: "VMFLOW", Environ: []string{}})
	require.NoError(t, err)
	assert.Equal(t, p, res.File)
	assert.Equal(t, ":16343", c.Collector.SFlow.Listen)
	assert.Equal(t, 2, c.Collector.SFlow.Sockets, "untouched sibling keeps its default")
	assert.Equal(t, 30*time.Second, c.Collector.Timeout)
	assert.Equal(t, []string{"10.1.0.0/16"}, c.Collector.Allowed, "a shorter list replaces the default, no leftovers")
	assert.Equal(t, netip.MustParseAddr("127.0.0.9"), c.API.Bind)
	assert.Equal(t, "127.0.0.1:8080", c.API.Listen)
	assert.Equal(t, []rate{{"10.0.0.0/8", 64}}, c.Rates)
}

func TestLoadEnvOverridesFileForNestedKeys(t *testing.T) {
	p := writeFile(t, "collector:\n  sflow:\n    sockets: 4\n")
	c := defaults()
	res, err := Load(p, &c, Options{EnvPrefix: "VMFLOW", Environ: []string{
		"VMFLOW_COLLECTOR_SFLOW_SOCKETS=8",
		"VMFLOW_COLLECTOR_TIMEOUT=2m",
		"VMFLOW_COLLECTOR_ALLOWED=10.0.0.1,10.0.0.2",
		"VMFLOW_API_DEBUG=true",
		"VMFLOW_API_BIND=::1",
		"VMFLOW_API_LISTN=:1", // typo: warned about
		"HOME=/root",
	}})
	require.NoError(t, err)
	assert.Equal(t, 8, c.Collector.SFlow.Sockets)
	assert.Equal(t, 2*time.Minute, c.Collector.Timeout)
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.2"}, c.Collector.Allowed)
	assert.True(t, c.API.Debug)
	assert.Equal(t, netip.MustParseAddr("::1"), c.API.Bind)
	assert.ElementsMatch(t, []string{"VMFLOW_COLLECTOR_SFLOW_SOCKETS", "VMFLOW_COLLECTOR_TIMEOUT", "VMFLOW_COLLECTOR_ALLOWED", "VMFLOW_API_DEBUG", "VMFLOW_API_BIND"}, res.EnvUsed)
	require.Len(t, res.Warnings, 1)
	assert.Contains(t, res.Warnings[0], "VMFLOW_API_LISTN")
}

func TestLoadUnknownKeysAreNamed(t *testing.T) {
	for _, tc := range []struct{ body, key string }{
		{"collector:\n  sflow:\n    sockts: 3\n", "collector.sflow.sockts"},
		{"colector:\n  x: 1\n", "colector"},
		{"api:\n  listen: ':1'\n  port: 2\n", "api.port"},
		{"rates:\n  - cidr: 10.0.0.0/8\n    rat: 3\n", "rates[0].rat"},
	} {
		c := defaults()
		before := c
		_, err := Load(writeFile(t, tc.body), &c, Options{Environ: []string{}})
		require.Error(t, err, tc.body)
		assert.Contains(t, err.Error(), tc.key+": unknown key")
		assert.Equal(t, before.Collector.SFlow, c.Collector.SFlow, "dst untouched on error")
	}
	c := defaults()
	_, err := Load(writeFile(t, "collector:\n  sflow:\n    sockts: 3\n"), &c, Options{Environ: []string{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "valid under collector.sflow: listen, sockets")
}

func TestLoadInvalidValuesAreNamed(t *testing.T) {
	for _, tc := range []struct {
		body string
		env  []string
		key  string
	}{
		{body: "collector:\n  sflow:\n    sockets: many\n", key: "collector.sflow.sockets"},
		{body: "collector:\n  timeout: soon\n", key: "collector.timeout"},
		{env: []string{"VMFLOW_API_BIND=not-an-ip"}, key: "api.bind"},
		{env: []string{"VMFLOW_COLLECTOR_SFLOW_SOCKETS=x"}, key: "collector.sflow.sockets"},
	} {
		c := defaults()
		p := ""
		if tc.body != "" {
			p = writeFile(t, tc.body)
		}
		_, err := Load(p, &c, Options{EnvPrefix: "VMFLOW", Environ: tc.env})
		require.Error(t, err, "%+v", tc)
		assert.Contains(t, err.Error(), tc.key+":", "%+v", tc)
	}
}

func TestLoadBadFile(t *testing.T) {
	c := defaults()
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), &c, Options{Environ: []string{}})
	require.Error(t, err)
	_, err = Load(writeFile(t, "collector: [\n"), &c, Options{Environ: []string{}})
	require.Error(t, err)
}

func TestLoadEmptySections(t *testing.T) {
	c := defaults()
	_, err := Load(writeFile(t, "collector:\napi:\n"), &c, Options{Environ: []string{}})
	require.NoError(t, err)
	assert.Equal(t, ":6343", c.Collector.SFlow.Listen)
}

func TestDumpRoundTrips(t *testing.T) {
	c := defaults()
	c.Collector.Timeout = 90 * time.Second
	out, err := Dump(c)
	require.NoError(t, err)
	assert.Contains(t, string(out), "timeout: 1m30s")
	var back map[string]any
	require.NoError(t, yaml.Unmarshal(out, &back))

	got := testConfig{}
	_, err = Load(writeFile(t, string(out)), &got, Options{Environ: []string{}})
	require.NoError(t, err)
	assert.Empty(t, cmp.Diff(c, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })))
}

type pathConfig struct {
	Store struct {
		Dir   string   `mapstructure:"dir" yaml:"dir" cfgload:"path"`
		Rules []string `mapstructure:"rules" yaml:"rules" cfgload:"path"`
		Name  string   `mapstructure:"name" yaml:"name"`
	} `mapstructure:"store" yaml:"store"`
	Conns []struct {
		URI string `mapstructure:"uri" yaml:"uri"`
		TLS struct {
			CA string `mapstructure:"ca" yaml:"ca" cfgload:"path"`
		} `mapstructure:"tls" yaml:"tls"`
	} `mapstructure:"conns" yaml:"conns"`
	Spool string `mapstructure:"spool" yaml:"spool" cfgload:"path"`
}

// Relative paths in the file are relative to the file's directory; from
// the environment or defaults, to the working directory; absolute paths
// and non-path strings are untouched.
func TestPathsResolveAgainstTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "vmflow.yaml")
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(`
store:
  dir: state
  rules: [a.yaml, /abs/b.yaml, ../c.yaml]
  name: relative/not/a/path
conns:
  - uri: qemu:///system
    tls: {ca: pki/ca.pem}
`), 0o644))
	wd, err := os.Getwd()
	require.NoError(t, err)

	cfg := pathConfig{}
	cfg.Spool = "spool" // a relative default
	_, err = Load(p, &cfg, Options{EnvPrefix: "T", Environ: []string{}})
	require.NoError(t, err)
	sub := filepath.Join(dir, "sub")
	assert.Equal(t, filepath.Join(sub, "state"), cfg.Store.Dir)
	assert.Equal(t, []string{filepath.Join(sub, "a.yaml"), "/abs/b.yaml", filepath.Join(dir, "c.yaml")}, cfg.Store.Rules)
	assert.Equal(t, "relative/not/a/path", cfg.Store.Name)
	require.Len(t, cfg.Conns, 1)
	assert.Equal(t, filepath.Join(sub, "pki/ca.pem"), cfg.Conns[0].TLS.CA)
	assert.Equal(t, filepath.Join(wd, "spool"), cfg.Spool, "a default is relative to the working directory")

	cfg = pathConfig{}
	_, err = Load(p, &cfg, Options{EnvPrefix: "T", Environ: []string{"T_STORE_DIR=here"}})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(wd, "here"), cfg.Store.Dir, "an environment value is relative to the working directory")
	assert.Equal(t, filepath.Join(sub, "a.yaml"), cfg.Store.Rules[0])

	assert.Equal(t, []string{"store.dir", "store.rules", "conns[].tls.ca", "spool"}, PathKeys(pathConfig{}))
}

func TestChangedAndCopyKeys(t *testing.T) {
	a, b := defaults(), defaults()
	b.API.Listen = "127.0.0.1:1"
	b.Collector.Allowed = []string{"10.0.0.0/8"}
	a.Collector.Allowed = nil
	b.Rates = []rate{}
	a.Rates = nil
	assert.Equal(t, []string{"collector.allowed", "api.listen"}, Changed(a, b), "empty and nil slices are equal")
	require.NoError(t, CopyKeys(&a, b, []string{"api.listen"}))
	assert.Equal(t, "127.0.0.1:1", a.API.Listen)
	assert.Equal(t, []string{"collector.allowed"}, Changed(a, b))
	assert.Error(t, CopyKeys(&a, b, []string{"api.nope"}))
}
