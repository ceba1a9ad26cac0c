// Package libvirtd starts a private libvirtd for tests: its own socket
// directory, no authentication, killed when the test ends.
//
// As root, libvirtd's drivers take locks under /run/libvirt (e.g.
// /run/libvirt/network/driver.pid), so a second daemon on the machine
// fails to start. When `unshare` is available the daemon therefore runs in
// a private mount namespace with a fresh tmpfs on /run/libvirt; otherwise it
// runs directly (and then only one test daemon can run at a time).
package libvirtd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Daemon is a running private libvirtd.
type Daemon struct {
	Dir    string // temp dir holding config, sockets, log
	Socket string // read-write unix socket path
	Log    string // log file of the daemon

	t    testing.TB
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

// Require returns the libvirtd binary path, or fails (VMFLOW_INTEGRATION=1)
// or skips the test when it is missing.
func Require(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("libvirtd")
	if err != nil {
		for _, c := range []string{"/usr/sbin/libvirtd", "/usr/local/sbin/libvirtd"} {
			if _, e := os.Stat(c); e == nil {
				return c
			}
		}
		if os.Getenv("VMFLOW_INTEGRATION") == "1" {
			t.Fatalf("libvirtd not found (install libvirt-daemon-system): %v", err)
		}
		t.Skipf("libvirtd not found; set VMFLOW_INTEGRATION=1 to make this a failure")
	}
	return p
}

// Start starts a daemon and registers its cleanup.
func Start(t testing.TB) *Daemon {
	t.Helper()
	Require(t)
	dir, err := os.MkdirTemp("", "vmflow-libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	// unix socket paths are limited to 108 bytes: keep the dir short.
	d := &Daemon{Dir: dir, Socket: filepath.Join(dir, "libvirt-sock"), Log: filepath.Join(dir, "libvirtd.log"),
		conf: filepath.Join(dir, "libvirtd.conf"), t: t}
	conf := fmt.Sprintf(`unix_sock_dir = %q
unix_sock_rw_perms = "0777"
unix_sock_ro_perms = "0777"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tls = 0
listen_tcp = 0
max_clients = 200
max_workers = 20
log_outputs = "3:file:%s"
`, dir, d.Log)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(d.Log); err == nil {
				t.Logf("libvirtd log (tail):\n%s", tail(string(b), 3000))
			}
		}
		os.RemoveAll(dir)
	})
	d.Restart()
	return d
}

// URI returns a vmflow/libvirt URI for driver path (e.g. "test:///default"
// or "test:///abs/node.xml") through this daemon's socket.
func (d *Daemon) URI(driverURI string) string {
	sep := "?"
	if strings.Contains(driverURI, "?") {
		sep = "&"
	}
	return driverURI + sep + "socket=" + d.Socket
}

// Kill stops the daemon hard (SIGKILL) and waits for it. Safe to call twice.
func (d *Daemon) Kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.cmd = nil
	// A killed daemon leaves its sockets behind; remove them so the next
	// start (same dir) can bind.
	for _, s := range []string{"libvirt-sock", "libvirt-sock-ro", "libvirt-admin-sock"} {
		os.Remove(filepath.Join(d.Dir, s))
	}
}

// Restart starts the daemon (again) with the same config and socket dir and
// waits until it accepts connections.
func (d *Daemon) Restart() {
	d.t.Helper()
	if d.cmd != nil {
		d.Kill()
	}
	bin := Require(d.t)
	pid := filepath.Join(d.Dir, "libvirtd.pid")
	var cmd *exec.Cmd
	if us, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		script := `mount -t tmpfs tmpfs /run/libvirt 2>/dev/null || mkdir -p /run/libvirt && mount -t tmpfs tmpfs /run/libvirt; exec "$0" -f "$1" -p "$2"`
		cmd = exec.Command(us, "--mount", "--propagation", "private", "sh", "-c", script, bin, d.conf, pid)
	} else {
		cmd = exec.Command(bin, "-f", d.conf, "-p", pid)
	}
	out, err := os.OpenFile(filepath.Join(d.Dir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		d.t.Fatalf("start libvirtd: %v", err)
	}
	d.cmd = cmd
	d.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); out.Close(); close(done) }(d.done)

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			b, _ := os.ReadFile(filepath.Join(d.Dir, "stderr.log"))
			l, _ := os.ReadFile(d.Log)
			d.cmd = nil
			d.t.Fatalf("libvirtd exited during start:\n%s\n%s", tail(string(b), 2000), tail(string(l), 2000))
		default:
		}
		if c, err := net.DialTimeout("unix", d.Socket, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.Kill()
	d.t.Fatalf("libvirtd did not open %s within 20s", d.Socket)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
