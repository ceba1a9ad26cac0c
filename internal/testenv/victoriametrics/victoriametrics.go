// Package victoriametrics starts a real single-node VictoriaMetrics server
// for tests (an InfluxDB line-protocol compatible store).
//
// The binary (victoria-metrics) is looked up on PATH, then in
// $(go env GOPATH)/bin. When it is missing the test is skipped, unless
// VMFLOW_INTEGRATION=1 is set, in which case it fails.
package victoriametrics

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmflow/vmflow/internal/testenv/bin"
)

// Install is how to get the binary.
const Install = "go install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@v1.151.0"

// Server is one victoria-metrics process with its own data directory.
type Server struct {
	addr string
	proc *bin.Proc
}

// Start starts victoria-metrics in a temporary directory and waits until it
// answers /health. It is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	exe := bin.Require(t, "victoria-metrics", Install)
	dir := t.TempDir()
	s := &Server{addr: fmt.Sprintf("127.0.0.1:%d", bin.FreePort(t))}
	s.proc = bin.Start(t, exe, []string{
		"-storageDataPath=" + filepath.Join(dir, "data"),
		"-httpListenAddr=" + s.addr,
		"-retentionPeriod=100y",
		"-search.disableCache", // points written in the past are read back at once
		"-loggerLevel=WARN",
	}, filepath.Join(dir, "victoria-metrics.log"))
	s.proc.WaitReady(t, 30*time.Second, func() bool {
		resp, err := http.Get(s.URL() + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// URL is the HTTP base URL.
func (s *Server) URL() string { return "http://" + s.addr }

// Log is the end of the server's output.
func (s *Server) Log() string { return s.proc.Log() }

// Flush makes recently written points searchable (/internal/force_flush).
func (s *Server) Flush() error {
	resp, err := http.Get(s.URL() + "/internal/force_flush")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Get runs GET path?query and returns the status and body.
func (s *Server) Get(path string, q url.Values) (int, string, error) {
	u := s.URL() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	return resp.StatusCode, b.String(), err
}
