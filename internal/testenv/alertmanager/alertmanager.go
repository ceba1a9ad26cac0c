// Package alertmanager starts a real Prometheus Alertmanager (the Debian
// prometheus-alertmanager package, API v2) on loopback with clustering off,
// and talks to its API: alerts, silences.
//
// When the binary is missing the test is skipped, unless
// VMFLOW_INTEGRATION=1 is set, in which case it fails.
package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vmflow/vmflow/internal/testenv/bin"
)

const install = "apt-get install prometheus-alertmanager (scripts/install-deps.sh)"

// Server is one Alertmanager process.
type Server struct {
	// URL is the base URL (http://127.0.0.1:PORT).
	URL  string
	proc *bin.Proc
}

// Require returns the path of prometheus-alertmanager (skip, or fail
// with VMFLOW_INTEGRATION=1, when missing).
func Require(t testing.TB) string {
	t.Helper()
	return bin.Require(t, "prometheus-alertmanager", install)
}

// CheckConfig runs amtool check-config on a file and returns its output.
func CheckConfig(t testing.TB, path string) (string, error) {
	t.Helper()
	amtool := bin.Require(t, "amtool", install)
	out, err := exec.Command(amtool, "check-config", path).CombinedOutput()
	return string(out), err
}

// Start writes config (an alertmanager.yml) and starts Alertmanager on a
// free loopback port with its own storage, waiting until /-/ready answers.
// It is stopped when the test ends.
func Start(t testing.TB, config string) *Server {
	t.Helper()
	path := Require(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(bin.FreePort(t))
	s := &Server{URL: "http://" + addr}
	s.proc = bin.Start(t, path, []string{
		"--config.file=" + conf,
		"--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--cluster.listen-address=",
		"--log.level=debug",
	}, filepath.Join(dir, "alertmanager.log"))
	s.proc.WaitReady(t, 30*time.Second, func() bool {
		resp, err := http.Get(s.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// Log is the end of Alertmanager's log, for failure messages.
func (s *Server) Log() string { return s.proc.Log() }

// Stop stops Alertmanager; safe to call twice.
func (s *Server) Stop() { s.proc.Stop() }

// Alert is one alert as GET /api/v2/alerts returns it.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Status       struct {
		State       string   `json:"state"` // active, suppressed, unprocessed
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

func (s *Server) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alertmanager %s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// Alerts lists every alert Alertmanager holds (active, silenced,
// inhibited; not the expired ones).
func (s *Server) Alerts(t testing.TB) []Alert {
	t.Helper()
	var a []Alert
	if err := s.do(http.MethodGet, "/api/v2/alerts", nil, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// Matcher is one silence matcher (equality unless IsRegex).
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

// Equal is the matcher name="value".
func Equal(name, value string) Matcher { return Matcher{Name: name, Value: value, IsEqual: true} }

// CreateSilence creates a silence from now for d and returns its id.
func (s *Server) CreateSilence(t testing.TB, d time.Duration, comment string, m ...Matcher) string {
	t.Helper()
	now := time.Now().UTC()
	in := map[string]any{
		"matchers":  m,
		"startsAt":  now.Add(-time.Second),
		"endsAt":    now.Add(d),
		"createdBy": "vmflow test",
		"comment":   comment,
	}
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := s.do(http.MethodPost, "/api/v2/silences", in, &out); err != nil {
		t.Fatal(err)
	}
	return out.SilenceID
}
