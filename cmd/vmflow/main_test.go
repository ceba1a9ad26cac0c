package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
)

const shipped = "../../configs/vmflow.yaml"

func runCmd(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, env, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCheckValid(t *testing.T) {
	code, out, errOut := runCmd(t, nil, "--config", shipped, "--check")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "configuration OK")
}

func TestCheckInvalidNamesTheKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(p, []byte("collector:\n  ipfix:\n    queue_size: -1\n"), 0o644))
	code, _, errOut := runCmd(t, nil, "--config", p, "--check")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "collector.ipfix.queue_size")

	require.NoError(t, os.WriteFile(p, []byte("api:\n  lisen: ':1'\n"), 0o644))
	code, _, errOut = runCmd(t, nil, "--config", p, "--check")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "api.lisen: unknown key")

	code, _, errOut = runCmd(t, []string{"VMFLOW_AGGREGATE_WINDOW=0s"}, "--config", shipped, "--check")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "aggregate.window")

	code, _, _ = runCmd(t, nil, "--config", filepath.Join(t.TempDir(), "missing.yaml"), "--check")
	assert.Equal(t, 1, code)
}

func TestDumpPrintsEffectiveConfig(t *testing.T) {
	code, out, errOut := runCmd(t, []string{"VMFLOW_API_LISTEN=127.0.0.1:9191", "VMFLOW_AGGREGATE_WINDOW=4s"}, "--config", shipped, "--dump")
	require.Equal(t, 0, code, errOut)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(out), &m))
	for _, section := range []string{"log", "collector", "decoder", "enrich", "inventory", "aggregate", "store", "influx", "api"} {
		assert.Contains(t, m, section)
	}
	assert.Equal(t, "127.0.0.1:9191", m["api"].(map[string]any)["listen"])
	assert.Equal(t, "4s", m["aggregate"].(map[string]any)["window"])
	assert.Equal(t, ":6343", m["collector"].(map[string]any)["sflow"].(map[string]any)["listen"])

	// The dump is itself a valid config file.
	p := filepath.Join(t.TempDir(), "dumped.yaml")
	require.NoError(t, os.WriteFile(p, []byte(out), 0o644))
	code, _, errOut = runCmd(t, nil, "--config", p, "--check")
	assert.Equal(t, 0, code, errOut)
}

func TestKeysListsEnvNames(t *testing.T) {
	code, out, _ := runCmd(t, nil, "--keys")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "aggregate.window")
	assert.Contains(t, out, "VMFLOW_AGGREGATE_WINDOW")
	assert.Contains(t, out, "VMFLOW_COLLECTOR_SFLOW_LISTEN")
}

func TestBadFlags(t *testing.T) {
	code, _, _ := runCmd(t, nil, "--nope")
	assert.Equal(t, 2, code)
	code, _, _ = runCmd(t, nil, "extra")
	assert.Equal(t, 2, code)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The shipped config (what `make run` uses) brings the API up within
// seconds and stops cleanly. Ports are moved off the defaults so the test
// does not clash with a running vmflow.
func TestRunShippedConfigServesAPI(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	env := []string{
		"VMFLOW_API_LISTEN=127.0.0.1:" + strconv.Itoa(port),
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=127.0.0.1:0",
		"VMFLOW_ENRICH_STATIC_FILE=../../configs/inventory.yaml",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuf
	done := make(chan int, 1)
	start := time.Now()
	go func() { done <- run(ctx, []string{"--config", shipped}, env, &bytes.Buffer{}, &stderr) }()

	var health map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/health")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&health)
			resp.Body.Close()
			if err == nil {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("vmflow exited with %d: %s", code, stderr.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "API not up after 10 s: %s", stderr.String())
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("API up after %s", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, "ok", health["status"])

	var vms any
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/vms")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&vms))
	resp.Body.Close()
	b, _ := json.Marshal(vms)
	assert.Contains(t, string(b), "vm1", "the static inventory is loaded")

	// The embedded web UI is served at /.
	resp, err = http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("vmflow did not stop within 10 s")
	}
}

func TestInfluxSubcommandUsage(t *testing.T) {
	code, _, errOut := runCmd(t, nil, "influx")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "influx setup")
	code, _, errOut = runCmd(t, []string{"VMFLOW_INFLUX_URL=not a url"}, "influx", "setup", "--config", shipped)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "influx.url")
}

// The README's configuration reference lists every key vmflow accepts, and
// no key that does not exist.
func TestReadmeConfigReferenceComplete(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		// table rows: | `key` | `default` | meaning |
		if f := bytes.SplitN(line, []byte("|"), 3); len(f) == 3 && len(bytes.TrimSpace(f[0])) == 0 {
			k := bytes.Trim(bytes.TrimSpace(f[1]), "`")
			if bytes.Count(k, []byte(".")) > 0 && !bytes.ContainsAny(k, " /") {
				documented[string(k)] = true
			}
		}
	}
	keys := map[string]bool{}
	for _, k := range app.Keys() {
		keys[k.Path] = true
		assert.True(t, documented[k.Path], "config key %s is missing from the README's reference", k.Path)
	}
	for k := range documented {
		if isConfigSection(k, keys) {
			assert.True(t, keys[k], "the README documents %s, which is no config key", k)
		}
	}
}

// isConfigSection reports whether k starts with a top-level config section
// (other README tables list metrics or API fields, not keys).
func isConfigSection(k string, keys map[string]bool) bool {
	top, _, _ := strings.Cut(k, ".")
	for key := range keys {
		if strings.HasPrefix(key, top+".") {
			return true
		}
	}
	return false
}
