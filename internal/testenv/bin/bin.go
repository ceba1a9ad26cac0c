// Package bin finds the external programs tests run (on PATH or in
// $(go env GOPATH)/bin) and picks free loopback ports for them.
package bin

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Find returns the path of name on PATH or in $(go env GOPATH)/bin, or "".
func Find(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, gp := range filepath.SplitList(gopath) {
		p := filepath.Join(gp, "bin", name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// Require returns the path of name; when it is missing the test is
// skipped, or fails when VMFLOW_INTEGRATION=1. install says how to get it.
func Require(t testing.TB, name, install string) string {
	t.Helper()
	p := Find(name)
	if p == "" {
		msg := name + " not found on PATH or in $(go env GOPATH)/bin; install it with: " + install
		if os.Getenv("VMFLOW_INTEGRATION") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Proc is a test's background process with its output in a log file.
type Proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Start starts path with args, output to logPath, in its own process
// group (killed if the test binary dies). It is stopped when the test ends.
func Start(t testing.TB, path string, args []string, logPath string) *Proc {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	p := &Proc{name: filepath.Base(path), logPath: logPath, cmd: exec.Command(path, args...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("%s: start: %v", p.name, err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.exited) }()
	t.Cleanup(p.Stop)
	return p
}

// WaitReady polls ready until it returns true, failing the test with the
// log when the process exits or timeout passes.
func (p *Proc) WaitReady(t testing.TB, timeout time.Duration, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			t.Fatalf("%s exited during start-up; log:\n%s", p.name, p.Log())
		default:
		}
		if ready() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v; log:\n%s", p.name, timeout, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log is the end of the process's output, for failure messages.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// Stop stops the process (SIGTERM, SIGKILL after 5 s); safe to call twice.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
