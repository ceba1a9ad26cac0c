package app

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/alert/notify"
	"github.com/vmflow/vmflow/cmd/vmflow/internal/cfgload"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vmflow.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

var noEnv = []string{}

func TestDefaultConfigIsValid(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	cfg, _, err := Load("", noEnv)
	require.NoError(t, err)
	assert.Empty(t, cmp.Diff(DefaultConfig(), cfg, cmpopts.EquateEmpty()))
}

func TestShippedConfigLoads(t *testing.T) {
	cfg, res, err := Load("../../../configs/vmflow.yaml", noEnv)
	require.NoError(t, err)
	assert.NotEmpty(t, res.File)
	assert.Equal(t, ":6343", cfg.Collector.SFlow.Listen)
	assert.Equal(t, ":4739", cfg.Collector.IPFIX.Listen)
	assert.Equal(t, ":2055", cfg.Collector.NetFlow9.Listen)
	assert.Equal(t, "127.0.0.1:8080", cfg.API.Listen)
	abs, err := filepath.Abs("../../../configs/inventory.yaml")
	require.NoError(t, err)
	assert.Equal(t, abs, cfg.Enrich.Static.File, "relative to the config file, made absolute")
	assert.False(t, cfg.Influx.Enabled)
	assert.Empty(t, cfg.Inventory.Libvirt.Connections)
}

func TestUnknownKeyIsNamed(t *testing.T) {
	_, _, err := Load(write(t, "aggregate:\n  windw: 5s\n"), noEnv)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "aggregate.windw: unknown key")
	assert.Contains(t, err.Error(), "window", "the valid keys are suggested")

	_, _, err = Load(write(t, "colector:\n  sflow:\n    listen: ':1'\n"), noEnv)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "colector: unknown key")
}

func TestEnvOverridesNestedKeys(t *testing.T) {
	p := write(t, "aggregate:\n  window: 5s\napi:\n  listen: 127.0.0.1:9000\n")
	cfg, res, err := Load(p, []string{
		"VMFLOW_AGGREGATE_WINDOW=3s",
		"VMFLOW_COLLECTOR_SFLOW_SOCKETS=3",
		"VMFLOW_STORE_MEMORY_RETENTION=2h",
		"VMFLOW_DECODER_SFLOW_FAST_PATH=false",
	})
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, cfg.Aggregate.Window, "env beats the file")
	assert.Equal(t, "127.0.0.1:9000", cfg.API.Listen, "file beats the default")
	assert.Equal(t, 3, cfg.Collector.SFlow.Sockets)
	assert.Equal(t, 2*time.Hour, cfg.Store.Memory.Retention)
	assert.False(t, cfg.Decoder.SFlow.FastPath)
	assert.Len(t, res.EnvUsed, 4)
}

// Every key can be set from the environment: set each scalar key to a
// value different from its default and find it in the loaded config.
func TestEveryScalarKeyHasAnEnvOverride(t *testing.T) {
	def := DefaultConfig()
	wd, err := os.Getwd()
	require.NoError(t, err)
	pathKeys := map[string]bool{}
	for _, k := range cfgload.PathKeys(Config{}) {
		pathKeys[k] = true
	}
	require.True(t, pathKeys["enrich.static.file"])
	n := 0
	for _, k := range Keys() {
		var val string
		switch k.Type.Kind() {
		case reflect.Bool:
			v := fieldOf(t, reflect.ValueOf(def), k.Path).Bool()
			val = map[bool]string{true: "false", false: "true"}[v]
		case reflect.String:
			val = "x" // may be invalid: only the decoding is checked here
		case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64, reflect.Int32, reflect.Uint, reflect.Uint16, reflect.Uint8:
			if k.Type == reflect.TypeOf(time.Duration(0)) {
				val = "1234ms"
			} else {
				val = "7"
			}
		default:
			continue
		}
		cfg := DefaultConfig()
		_, err := loadNoValidate(&cfg, []string{k.Env + "=" + val})
		require.NoError(t, err, k.Env)
		got := fieldOf(t, reflect.ValueOf(cfg), k.Path)
		switch {
		case k.Type == reflect.TypeOf(time.Duration(0)):
			assert.Equal(t, 1234*time.Millisecond, got.Interface(), k.Env)
		case k.Type.Kind() == reflect.String && pathKeys[k.Path]:
			assert.Equal(t, filepath.Join(wd, "x"), got.String(), "%s: a path from the environment is relative to the working directory", k.Env)
		case k.Type.Kind() == reflect.String:
			assert.Equal(t, "x", got.String(), k.Env)
		case k.Type.Kind() == reflect.Bool:
			assert.Equal(t, val == "true", got.Bool(), k.Env)
		default:
			assert.EqualValues(t, 7, toInt(got), k.Env)
		}
		n++
	}
	assert.Greater(t, n, 40, "keys checked")
}

func toInt(v reflect.Value) int64 {
	switch v.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(v.Uint())
	}
	return v.Int()
}

func fieldOf(t *testing.T, v reflect.Value, path string) reflect.Value {
	t.Helper()
	for _, part := range strings.Split(path, ".") {
		found := false
		for i := 0; i < v.NumField(); i++ {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("mapstructure"), ",")
			if tag == part {
				v = v.Field(i)
				found = true
				break
			}
		}
		require.True(t, found, "key %s", path)
	}
	return v
}

func TestInvalidValueIsNamed(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  []string
		key  string
	}{
		{file: "aggregate:\n  window: 10ms\n", key: "aggregate.window"},
		{file: "collector:\n  sflow:\n    sockets: 0\n", key: "collector.sflow.sockets"},
		{file: "api:\n  listen: nowhere\n", key: "api.listen"},
		{file: "log:\n  level: loud\n", key: "log.level"},
		{file: "store:\n  memory:\n    retention: often\n", key: "store.memory.retention"},
		{env: []string{"VMFLOW_AGGREGATE_COUNT=twice"}, key: "aggregate.count"},
		{env: []string{"VMFLOW_COLLECTOR_SFLOW_WORKERS=lots"}, key: "collector.sflow.workers"},
	} {
		p := ""
		if tc.file != "" {
			p = write(t, tc.file)
		}
		_, _, err := Load(p, tc.env)
		require.Error(t, err, "%+v", tc)
		assert.Contains(t, err.Error(), tc.key+":", "%+v", tc)
	}
}

// yaml and mapstructure tags must agree, or --dump would print keys that
// the loader rejects.
func TestDumpLoadsBackIdentically(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Aggregate.Window = 7 * time.Second
	cfg.API.Listen = "127.0.0.1:9999"
	cfg.Collector.AllowedExporters = []string{"10.0.0.0/8"}
	out, err := cfg.Dump()
	require.NoError(t, err)
	assert.Contains(t, string(out), "window: 7s")
	back, _, err := Load(write(t, string(out)), noEnv)
	require.NoError(t, err, "%s", out)
	assert.Empty(t, cmp.Diff(cfg, back, cmpopts.EquateEmpty()))
}

func TestTagsAgree(t *testing.T) {
	var check func(reflect.Type, string)
	check = func(tt reflect.Type, path string) {
		for i := 0; i < tt.NumField(); i++ {
			f := tt.Field(i)
			if !f.IsExported() {
				continue
			}
			ms, msOpts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			ym, ymOpts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if strings.Contains(msOpts, "squash") || strings.Contains(ymOpts, "inline") {
				assert.True(t, strings.Contains(msOpts, "squash") && strings.Contains(ymOpts, "inline"),
					"%s.%s: squash and inline must go together", path, f.Name)
				check(f.Type, path)
				continue
			}
			assert.NotEmpty(t, ms, "%s.%s has no mapstructure tag", path, f.Name)
			assert.Equal(t, ms, ym, "%s.%s: mapstructure and yaml tags differ", path, f.Name)
			ft := f.Type
			for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" && ft.PkgPath() != "net/netip" {
				check(ft, path+"."+ms)
			}
		}
	}
	check(reflect.TypeOf(Config{}), "")
}

func TestDumpRedactsSecrets(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Influx.Token = "s3cr3t-token"
	out, err := cfg.Dump()
	require.NoError(t, err)
	assert.NotContains(t, string(out), "s3cr3t")
	assert.Contains(t, string(out), "token: "+Redacted)
	assert.Equal(t, "s3cr3t-token", cfg.Influx.Token, "the config itself is untouched")
}

func TestDumpRedactsNotifierSecrets(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Alert.Notify.SMTP.Host = "mail.example"
	cfg.Alert.Notify.SMTP.Username = "vmflow"
	cfg.Alert.Notify.SMTP.Password = "smtp-s3cr3t"
	cfg.Alert.Notify.Alertmanager.URLs = []string{"http://am:am-s3cr3t@am1:9093", "http://am2:9093"}
	cfg.Alert.Notify.Webhooks = []notify.WebhookConfig{{URL: "https://hook.example/x", Secret: "hmac-s3cr3t"},
		{URL: "https://u:url-s3cr3t@hook2.example/y"}}
	out, err := cfg.Dump()
	require.NoError(t, err)
	assert.NotContains(t, string(out), "s3cr3t")
	assert.Contains(t, string(out), "password: "+Redacted)
	assert.Contains(t, string(out), "secret: "+Redacted)
	assert.Contains(t, string(out), "http://am:"+Redacted+"@am1:9093")
	assert.Contains(t, string(out), "http://am2:9093")
	assert.Contains(t, string(out), "username: vmflow")
	assert.Equal(t, "hmac-s3cr3t", cfg.Alert.Notify.Webhooks[0].Secret, "the config itself is untouched")
	assert.Equal(t, "http://am:am-s3cr3t@am1:9093", cfg.Alert.Notify.Alertmanager.URLs[0])
}
