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

	TCPAddr string // "127.0.0.1:port" when Options.TCP
	TLSAddr string // "127.0.0.1:port" when Options.TLS is set

	t      testing.TB
	conf   string
	listen bool
	cmd    *exec.Cmd
	done   chan struct{}
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

// TLSFiles are the PEM files of the daemon's TLS listener.
type TLSFiles struct {
	CA, Cert, Key string
}

// Options add listeners to the daemon (unix sockets are always on).
type Options struct {
	TCP bool      // plain TCP listener, auth none (tcp://127.0.0.1:port)
	TLS *TLSFiles // TLS listener, auth none, client certificates not required
	// KeepaliveInterval/Count: the daemon's pings to clients (defaults 1 s, 3).
	KeepaliveInterval, KeepaliveCount int
}

// Start starts a daemon with unix sockets only and registers its cleanup.
func Start(t testing.TB) *Daemon { return StartOpts(t, Options{}) }

// StartOpts starts a daemon with opts and registers its cleanup.
func StartOpts(t testing.TB, opts Options) *Daemon {
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
keepalive_interval = %d
keepalive_count = %d
`, dir, d.Log, or(opts.KeepaliveInterval, 1), or(opts.KeepaliveCount, 3))
	listen := false
	if opts.TCP {
		d.TCPAddr = freeAddr(t)
		_, port, _ := net.SplitHostPort(d.TCPAddr)
		conf += fmt.Sprintf("listen_tcp = 1\nauth_tcp = \"none\"\ntcp_port = %q\n", port)
		listen = true
	}
	if opts.TLS != nil {
		d.TLSAddr = freeAddr(t)
		_, port, _ := net.SplitHostPort(d.TLSAddr)
		conf += fmt.Sprintf("listen_tls = 1\nauth_tls = \"none\"\ntls_port = %q\n"+
			"tls_no_verify_certificate = 1\nca_file = %q\ncert_file = %q\nkey_file = %q\n",
			port, opts.TLS.CA, opts.TLS.Cert, opts.TLS.Key)
		listen = true
	}
	conf = strings.Replace(conf, "listen_tls = 0\nlisten_tcp = 0\n", "", 1)
	if listen {
		conf += "listen_addr = \"127.0.0.1\"\n"
	}
	if !opts.TCP {
		conf += "listen_tcp = 0\n"
	}
	if opts.TLS == nil {
		conf += "listen_tls = 0\n" // the daemon's default is 1
	}
	d.listen = listen
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
	args := []string{"-f", d.conf, "-p", pid}
	if d.listen {
		args = append(args, "--listen")
	}
	var cmd *exec.Cmd
	if us, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		script := `mount -t tmpfs tmpfs /run/libvirt 2>/dev/null || mkdir -p /run/libvirt && mount -t tmpfs tmpfs /run/libvirt; exec "$0" "$@"`
		cmd = exec.Command(us, append([]string{"--mount", "--propagation", "private", "sh", "-c", script, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
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
		if d.ready() {
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

func (d *Daemon) ready() bool {
	for _, a := range [][2]string{{"unix", d.Socket}, {"tcp", d.TCPAddr}, {"tcp", d.TLSAddr}} {
		if a[1] == "" {
			continue
		}
		c, err := net.DialTimeout(a[0], a[1], 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// Pause freezes the daemon (SIGSTOP): its sockets stay open but it stops
// answering, like a hung host. Resume undoes it.
func (d *Daemon) Pause() {
	if d.cmd != nil {
		_ = d.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused daemon (SIGCONT).
func (d *Daemon) Resume() {
	if d.cmd != nil {
		_ = d.cmd.Process.Signal(syscall.SIGCONT)
	}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func or(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
