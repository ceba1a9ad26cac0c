package ship

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The example config, named by its absolute path, works from any working
// directory: its relative inventory path is relative to the file.
func TestExampleConfigFromAnotherDirectory(t *testing.T) {
	cfg := filepath.Join(repoRoot, "configs", "vmflow.yaml")
	elsewhere := t.TempDir()
	port := freePort(t)
	p := start(t, binPath, elsewhere, portEnv(port), port, "--config", cfg)
	assert.Contains(t, p.vmNames(t), "vm1", "the inventory next to the config file is loaded")
	var src struct {
		Sources []struct {
			URI   string `json:"uri"`
			State string `json:"state"`
		} `json:"sources"`
	}
	code, body := p.get(t, "/api/v1/inventory/sources", &src)
	require.Equal(t, 200, code, body)
	require.NotEmpty(t, src.Sources)
	assert.Equal(t, filepath.Join(repoRoot, "configs", "inventory.yaml"), src.Sources[0].URI)
	assert.Equal(t, "loaded", src.Sources[0].State)
}

// A config in its own directory with relative paths (inventory in a
// subdirectory, the InfluxDB spool): vmflow started from elsewhere finds
// and creates them there, and --dump prints them absolute.
func TestRelativePathsInATempConfig(t *testing.T) {
	dir := t.TempDir()
	inv, err := os.ReadFile(filepath.Join(repoRoot, "configs", "inventory.yaml"))
	require.NoError(t, err)
	writeFile(t, filepath.Join(dir, "inv", "lab.yaml"), string(inv))
	// InfluxDB on a port nothing listens on: the writer spools to disk.
	dead := freePort(t)
	writeFile(t, filepath.Join(dir, "vmflow.yaml"), `
enrich:
  static:
    file: inv/lab.yaml
influx:
  enabled: true
  url: http://127.0.0.1:`+strconv.Itoa(dead)+`
  spool:
    dir: state/spool
`)
	cmd := exec.Command(binPath, "--config", filepath.Join(dir, "vmflow.yaml"), "--dump")
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	require.NoError(t, err)
	var dump struct {
		Enrich struct {
			Static struct {
				File string `yaml:"file"`
			} `yaml:"static"`
		} `yaml:"enrich"`
		Influx struct {
			Spool struct {
				Dir string `yaml:"dir"`
			} `yaml:"spool"`
		} `yaml:"influx"`
	}
	require.NoError(t, yaml.Unmarshal(out, &dump))
	assert.Equal(t, filepath.Join(dir, "inv", "lab.yaml"), dump.Enrich.Static.File)
	assert.Equal(t, filepath.Join(dir, "state", "spool"), dump.Influx.Spool.Dir)

	elsewhere := t.TempDir()
	port := freePort(t)
	// A relative --config is relative to the working directory, its
	// contents to the file's directory.
	rel, err := filepath.Rel(elsewhere, filepath.Join(dir, "vmflow.yaml"))
	require.NoError(t, err)
	p := start(t, binPath, elsewhere, portEnv(port), port, "--config", rel)
	assert.Contains(t, p.vmNames(t), "vm1")
	fi, err := os.Stat(filepath.Join(dir, "state", "spool"))
	require.NoError(t, err, "the spool is created beside the config file")
	assert.True(t, fi.IsDir())
	_, err = os.Stat(filepath.Join(elsewhere, "state"))
	assert.True(t, os.IsNotExist(err), "nothing is created in the working directory")
}

// --version, /api/v1/health and vmflow_build_info tell the same build.
func TestVersionEverywhere(t *testing.T) {
	out, err := exec.Command(binPath, "--version").Output()
	require.NoError(t, err)
	line := strings.TrimSpace(string(out))
	assert.True(t, strings.HasPrefix(line, "vmflow "+testVersion+" (commit 0123456789abcdef0123456789abcdef01234567, built 2026-12-02T08:00:00Z, go1."), line)

	port := freePort(t)
	p := start(t, binPath, t.TempDir(), portEnv(port), port, "--config", filepath.Join(repoRoot, "configs", "vmflow.yaml"))
	var h struct {
		Status string `json:"status"`
		Build  struct {
			Version   string `json:"version"`
			Commit    string `json:"commit"`
			BuildDate string `json:"build_date"`
			GoVersion string `json:"go_version"`
		} `json:"build"`
	}
	code, body := p.get(t, "/api/v1/health", &h)
	require.Equal(t, 200, code, body)
	assert.Equal(t, "ok", h.Status)
	assert.Equal(t, testVersion, h.Build.Version)
	assert.Equal(t, "0123456789abcdef0123456789abcdef01234567", h.Build.Commit)
	assert.Equal(t, "2026-12-02T08:00:00Z", h.Build.BuildDate)
	assert.Contains(t, line, h.Build.GoVersion)
	series := `vmflow_build_info{build_date="2026-12-02T08:00:00Z",commit="0123456789abcdef0123456789abcdef01234567",goversion="` + h.Build.GoVersion + `",version="` + testVersion + `"}`
	assert.Equal(t, 1.0, p.metric(t, series))
}

// sd_notify as systemd sees it: READY=1 once the API answers, WATCHDOG=1
// at half of WatchdogSec, RELOADING=1 then READY=1 around a SIGHUP,
// STOPPING=1 on SIGTERM. The "systemd" is a unixgram socket in $NOTIFY_SOCKET.
func TestSdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(want string) string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m, ok := <-msgs:
				require.True(t, ok, "notify socket closed")
				if strings.Contains(m, want) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %q from vmflow within 10 s", want)
			}
		}
	}

	port := freePort(t)
	env := append(portEnv(port), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	p := start(t, binPath, t.TempDir(), env, port, "--config", filepath.Join(repoRoot, "configs", "vmflow.yaml"))
	assert.Equal(t, "READY=1", next("READY=1"))
	next("WATCHDOG=1")
	next("WATCHDOG=1") // fed repeatedly, not once
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	m := next("RELOADING=1")
	assert.Contains(t, m, "MONOTONIC_USEC=")
	next("READY=1")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	next("STOPPING=1")
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("vmflow did not exit after SIGTERM")
	}
}
