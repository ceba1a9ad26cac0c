// Package influxd starts a real InfluxDB 1.8 server (influxd) for tests.
//
// The binary is looked up on PATH, then in $(go env GOPATH)/bin. When it is
// missing the test is skipped, unless VMFLOW_INTEGRATION=1 is set, in which
// case it fails.
package influxd

import (
	"bytes"
	"context"
	"fmt"
	"github.com/vmflow/vmflow/internal/testenv/bin"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one influxd process with its own data directory.
type Server struct {
	t        testing.TB
	bin      string
	dir      string
	conf     string
	httpAddr string
	logPath  string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has exited.
	exited chan struct{}
}

// Binary returns the path of influxd, or "" when it cannot be found.
func Binary() string { return bin.Find("influxd") }

// Require returns the influxd path, skipping the test when it is missing
// (failing it when VMFLOW_INTEGRATION=1).
func Require(t testing.TB) string {
	t.Helper()
	return bin.Require(t, "influxd", "go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10")
}

// Start starts influxd in a temporary directory and waits until it answers
// /ping. It is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	exe := Require(t)
	s, err := launch(t, exe, t.TempDir())
	t.Cleanup(s.Stop)
	if err != nil {
		t.Fatalf("influxd: %v", err)
	}
	return s
}

var shared struct {
	mu  sync.Mutex
	s   *Server
	dir string
	err error
}

// Shared returns one influxd shared by the tests of a package (started on
// first use; give each test its own database). Call StopShared from
// TestMain after m.Run. Tests that stop or restart influxd must use Start.
func Shared(t testing.TB) *Server {
	t.Helper()
	exe := Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s == nil && shared.err == nil {
		dir, err := os.MkdirTemp("", "influxd-shared-")
		if err != nil {
			shared.err = err
		} else {
			shared.dir = dir
			shared.s, shared.err = launch(t, exe, dir)
		}
	}
	if shared.err != nil {
		t.Fatalf("influxd: %v", shared.err)
	}
	return shared.s
}

// StopShared stops the shared influxd and removes its directory.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s != nil {
		shared.s.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	shared.s, shared.dir, shared.err = nil, "", nil
}

func launch(t testing.TB, exe, dir string) (*Server, error) {
	s := &Server{
		t:        t,
		bin:      exe,
		dir:      dir,
		conf:     filepath.Join(dir, "influxdb.conf"),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", bin.FreePort(t)),
		logPath:  filepath.Join(dir, "influxd.log"),
	}
	rpc := fmt.Sprintf("127.0.0.1:%d", bin.FreePort(t))
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = %q

[meta]
  dir = %q

[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
  trace-logging-enabled = false

[coordinator]

[retention]
  enabled = true

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = %q
  auth-enabled = false
  log-enabled = false
  flux-enabled = true

[continuous_queries]
  enabled = true
  log-enabled = false
`, rpc, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), s.httpAddr)
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		return s, fmt.Errorf("write config: %w", err)
	}
	return s, s.start()
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(s.bin, "run", "-config", s.conf)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), "INFLUXDB_REPORTING_DISABLED=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("influxd exited during start-up; log:\n%s", s.tail())
		default:
		}
		resp, err := http.Get(s.URL() + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("influxd did not answer /ping within 60s; log:\n%s", s.tail())
}

func (s *Server) tail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// URL is the HTTP base URL, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.httpAddr }

// Dir is the server's data directory (meta, data, wal live below it).
func (s *Server) Dir() string { return s.dir }

// Log returns the end of influxd's log, for failure messages.
func (s *Server) Log() string { return s.tail() }

// Stop stops influxd (SIGTERM, then SIGKILL after 15 s). It may be called
// more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// PID is the process id of the running influxd (0 when stopped), e.g. to
// read its CPU time from /proc.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Restart starts influxd again on the same address and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("influxd restart: %v", err)
	}
}

// Query runs an InfluxQL statement through /query and returns the raw JSON.
func (s *Server) Query(db, q string) ([]byte, error) {
	form := url.Values{"q": {q}}
	if db != "" {
		form.Set("db", db)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || bytes.Contains(buf.Bytes(), []byte(`"error"`)) {
		return buf.Bytes(), fmt.Errorf("influxql %q: status %d: %s", q, resp.StatusCode, buf.String())
	}
	return buf.Bytes(), nil
}

// CreateDatabase creates a database (no-op when it exists).
func (s *Server) CreateDatabase(t testing.TB, db string) {
	t.Helper()
	if _, err := s.Query("", fmt.Sprintf("CREATE DATABASE %q", db)); err != nil {
		t.Fatalf("influxd: %v", err)
	}
}
