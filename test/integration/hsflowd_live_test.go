package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/collector"
)

// TestHsflowdLive runs a real hsflowd (its KVM module polling libvirt's
// test driver) against vmflow and checks what the API shows against virsh
// and /proc. hsflowd is no Debian package, so this test is opt-in:
// VMFLOW_HSFLOWD=/path/to/hsflowd (built from github.com/sflow/host-sflow
// with `make CLANG=gcc FEATURES="KVM"`, mod_kvm.so beside the binary; see
// decoder/testdata/README.md). It runs as root (hsflowd -P).
func TestHsflowdLive(t *testing.T) {
	bin := os.Getenv("VMFLOW_HSFLOWD")
	if bin == "" {
		t.Skip("set VMFLOW_HSFLOWD to an hsflowd binary built with the KVM module")
	}
	virsh := func(args ...string) map[string]string {
		out, err := exec.Command("virsh", append([]string{"-c", "test:///default"}, args...)...).Output()
		require.NoError(t, err, "virsh %v", args)
		m := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
				m[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		return m
	}
	info := virsh("dominfo", "test")
	hostname, err := os.Hostname()
	require.NoError(t, err)

	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	require.NoError(t, os.WriteFile(inv, []byte(fmt.Sprintf(`hosts:
  - name: %s
vms:
  - name: test
    uuid: %s
    host: %s
`, hostname, info["UUID"], hostname)), 0o644))
	cfg, _, err := app.Load("", []string{
		"VMFLOW_LOG_LEVEL=warn",
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=127.0.0.1:0",
		"VMFLOW_API_LISTEN=127.0.0.1:0",
		"VMFLOW_ENRICH_STATIC_FILE=" + inv,
	})
	require.NoError(t, err)
	a, err := app.New(cfg, cfg.Log.NewLogger(testLogWriter{t}))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(a.Stop)

	conf := filepath.Join(dir, "hsflowd.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(
		"sflow {\n  agent.cidr = 127.0.0.0/8\n  polling = 2\n  sampling = 0\n  collector { ip = 127.0.0.1 udpport = %d }\n  kvm { }\n}\n",
		a.ListenPort(collector.ProtoSFlow))), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-d", "-P", "-p", filepath.Join(dir, "hsflowd.pid"), "-f", conf, "-l", filepath.Dir(bin))
	cmd.Env = append(os.Environ(), "LIBVIRT_DEFAULT_URI=test:///default")
	log, err := os.Create(filepath.Join(dir, "hsflowd.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })

	base := "http://" + a.APIAddr() + "/api/v1"
	getJSON := func(path string, out any) int {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
		}
		return resp.StatusCode
	}
	var vm struct {
		Source          string  `json:"source"`
		Origin          string  `json:"origin"`
		State           string  `json:"state"`
		IntervalSeconds float64 `json:"interval_seconds"`
		CPU             struct {
			VCPUs int `json:"vcpus"`
		} `json:"cpu"`
		Memory struct {
			MaxBytes     uint64 `json:"max_bytes"`
			BalloonBytes uint64 `json:"balloon_bytes"`
		} `json:"memory"`
	}
	waitAPI(t, 20*time.Second, "test's resources from hsflowd", func() (bool, string) {
		code := getJSON("/vms/test/resources", &vm)
		return code == http.StatusOK && vm.IntervalSeconds > 0, fmt.Sprintf("status %d %+v", code, vm)
	})
	kib := func(s string) uint64 {
		v, err := strconv.ParseUint(strings.Fields(s)[0], 10, 64)
		require.NoError(t, err, s)
		return v * 1024
	}
	assert.Equal(t, "hsflowd", vm.Source)
	assert.Equal(t, "hsflowd:127.0.0.1", vm.Origin)
	assert.Equal(t, info["State"], vm.State)
	assert.Equal(t, info["CPU(s)"], strconv.Itoa(vm.CPU.VCPUs))
	assert.Equal(t, kib(info["Max memory"]), vm.Memory.MaxBytes)
	assert.Equal(t, kib(info["Used memory"]), vm.Memory.BalloonBytes)

	var hosts struct {
		Hosts []struct {
			Host       string `json:"host"`
			Hypervisor *struct {
				CPUs          int      `json:"cpus"`
				CPUPercent    *float64 `json:"cpu_percent"`
				MemTotalBytes uint64   `json:"memory_total_bytes"`
				Domains       int      `json:"domains"`
			} `json:"hypervisor"`
		} `json:"hosts"`
	}
	waitAPI(t, 10*time.Second, "the hypervisor's CPU %", func() (bool, string) {
		getJSON("/hosts", &hosts)
		return len(hosts.Hosts) == 1 && hosts.Hosts[0].Hypervisor != nil && hosts.Hosts[0].Hypervisor.CPUPercent != nil,
			fmt.Sprintf("%+v", hosts)
	})
	hv := hosts.Hosts[0]
	assert.Equal(t, hostname, hv.Host)
	assert.Equal(t, runtime.NumCPU(), hv.Hypervisor.CPUs)
	assert.Equal(t, 1, hv.Hypervisor.Domains)
	meminfo, err := os.ReadFile("/proc/meminfo")
	require.NoError(t, err)
	for _, l := range strings.Split(string(meminfo), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			assert.Equal(t, kib(strings.TrimSpace(v)), hv.Hypervisor.MemTotalBytes, "host_memory mem_total is /proc/meminfo's")
		}
	}
	assert.True(t, *hv.Hypervisor.CPUPercent >= 0 && *hv.Hypervisor.CPUPercent <= 100)
	t.Logf("live hsflowd: %s %d CPUs at %.1f%%; test: %s, %d vCPUs, %d/%d bytes", hv.Host, hv.Hypervisor.CPUs,
		*hv.Hypervisor.CPUPercent, vm.State, vm.CPU.VCPUs, vm.Memory.BalloonBytes, vm.Memory.MaxBytes)
}
