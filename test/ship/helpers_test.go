package ship

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testVersion is stamped into the test binary with -ldflags, as the
// Makefile does.
const testVersion = "9.9.9-shiptest"

var (
	binPath  string // the vmflow binary built by TestMain
	repoRoot string
)

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ship tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return 0, err
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "vmflow-ship-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "vmflow")
	bi := "github.com/vmflow/vmflow/internal/buildinfo"
	cmd := exec.Command("go", "build", "-o", binPath, "-ldflags",
		"-X "+bi+".version="+testVersion+" -X "+bi+".commit=0123456789abcdef0123456789abcdef01234567 -X "+bi+".date=2026-12-02T08:00:00Z",
		"./cmd/vmflow")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// portEnv moves every listener off the defaults (tests run in parallel
// with other vmflows): the API on a free port, the collectors on
// ephemeral ones.
func portEnv(apiPort int) []string {
	return []string{
		"VMFLOW_API_LISTEN=127.0.0.1:" + strconv.Itoa(apiPort),
		"VMFLOW_COLLECTOR_SFLOW_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_IPFIX_LISTEN=127.0.0.1:0",
		"VMFLOW_COLLECTOR_NETFLOW9_LISTEN=127.0.0.1:0",
	}
}

// lockedBuf collects a process's output.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns the number of lines containing s.
func (l *lockedBuf) count(s string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// proc is a running vmflow.
type proc struct {
	cmd    *exec.Cmd
	out    *lockedBuf
	base   string // http://127.0.0.1:PORT
	exited chan struct{}
	token  string // API token sent by do ("" none: anonymous)
}

// start runs bin with args in dir with env (added to a minimal
// environment) and waits until /api/v1/health answers.
func start(t *testing.T, bin, dir string, env []string, apiPort int, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	return startCmd(t, cmd, apiPort)
}

// startCmd starts cmd (a vmflow) and waits until /api/v1/health answers.
func startCmd(t *testing.T, cmd *exec.Cmd, apiPort int) *proc {
	t.Helper()
	out := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, out: out, base: "http://127.0.0.1:" + strconv.Itoa(apiPort), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := p.get(t, "/api/v1/health", nil); code == 200 {
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("vmflow exited before answering health:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vmflow did not answer health within 20 s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("vmflow did not stop within 15 s of SIGTERM")
	}
}

// get fetches path; a JSON body is decoded into out when out is not nil.
func (p *proc) get(t *testing.T, path string, out any) (int, string) {
	return p.do(t, http.MethodGet, path, out)
}

func (p *proc) do(t *testing.T, method, path string, out any) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, nil)
	require.NoError(t, err)
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil {
		require.NoError(t, json.Unmarshal(body, out), "%s %s: %s", method, path, body)
	}
	return resp.StatusCode, string(body)
}

// metric returns the value of the sample of /metrics whose line starts
// with name{labels} (or name when labels is ""); -1 when absent.
func (p *proc) metric(t *testing.T, series string) float64 {
	t.Helper()
	code, body := p.get(t, "/metrics", nil)
	require.Equal(t, 200, code)
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, series)), 64)
			require.NoError(t, err, l)
			return v
		}
	}
	return -1
}

// vmNames lists /api/v1/vms' names.
func (p *proc) vmNames(t *testing.T) []string {
	t.Helper()
	var out struct {
		VMs []struct {
			Name string `json:"name"`
		} `json:"vms"`
	}
	code, body := p.get(t, "/api/v1/vms", &out)
	require.Equal(t, 200, code, body)
	var names []string
	for _, v := range out.VMs {
		names = append(names, v.Name)
	}
	return names
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
}
