package libvirt

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// Target is where and how to reach a libvirt daemon for one URI.
type Target struct {
	Network string   // "unix" or "tcp"
	Addrs   []string // socket paths (tried in order) or host:port
	TLS     bool
	Host    string // server host name (TLS server name), empty for unix
	// Name is what goes into CONNECT_OPEN: the URI with the transport,
	// user, host, port and the client-side parameters removed, as
	// libvirt's remote driver does ("qemu+tcp://hv1/system" ->
	// "qemu:///system").
	Name string
	// NoVerify is the URI's no_verify=1 (skip TLS certificate checks).
	NoVerify bool
}

// Parameters the remote driver consumes itself and does not forward.
var clientParams = map[string]bool{
	"name": true, "command": true, "socket": true, "auth": true, "netcat": true,
	"keyfile": true, "no_verify": true, "no_tty": true, "pkipath": true,
	"known_hosts": true, "known_hosts_verify": true, "sshauth": true,
	"mode": true, "proxy": true, "tls_priority": true,
}

// Default ports of libvirtd's TCP and TLS listeners.
const (
	defaultTCPPort = "16509"
	defaultTLSPort = "16514"
)

// ParseURI turns a libvirt connection URI into a dial target.
//
//	test:///default?socket=/tmp/x/libvirt-sock   unix socket given explicitly
//	qemu:///system                                 /run/libvirt/libvirt-sock (or virtqemud-sock)
//	qemu+unix:///system?socket=/path               unix socket
//	qemu+tcp://hv1[:16509]/system                  plain TCP
//	qemu+tls://hv1[:16514]/system, qemu://hv1/system  TLS
//
// ssh, libssh and ext transports are not supported.
func ParseURI(raw string) (Target, error) {
	var t Target
	u, err := url.Parse(raw)
	if err != nil {
		return t, fmt.Errorf("parse libvirt uri %q: %w", raw, err)
	}
	if u.Scheme == "" {
		return t, fmt.Errorf("parse libvirt uri %q: no driver scheme", raw)
	}
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	host := u.Hostname()
	if transport == "" {
		if host == "" {
			transport = "unix"
		} else {
			transport = "tls"
		}
	}
	q := u.Query()
	t.NoVerify = q.Get("no_verify") == "1"

	switch transport {
	case "unix":
		if host != "" {
			return t, fmt.Errorf("libvirt uri %q: unix transport takes no host", raw)
		}
		t.Network = "unix"
		if s := q.Get("socket"); s != "" {
			t.Addrs = []string{s}
		} else {
			t.Addrs = defaultSockets(driver)
		}
	case "tcp", "tls":
		if host == "" {
			return t, fmt.Errorf("libvirt uri %q: %s transport needs a host", raw, transport)
		}
		port := u.Port()
		if port == "" {
			port = defaultTCPPort
			if transport == "tls" {
				port = defaultTLSPort
			}
		}
		t.Network = "tcp"
		t.Addrs = []string{net.JoinHostPort(host, port)}
		t.TLS = transport == "tls"
		t.Host = host
	default:
		return t, fmt.Errorf("libvirt uri %q: transport %q not supported (unix, tcp, tls)", raw, transport)
	}

	if n := q.Get("name"); n != "" {
		t.Name = n
		return t, nil
	}
	// Rebuild the name: driver scheme, path, forwarded params only.
	fwd := url.Values{}
	for k, vs := range q {
		if !clientParams[k] {
			fwd[k] = vs
		}
	}
	nu := url.URL{Scheme: driver, Path: u.Path, RawQuery: fwd.Encode()}
	if nu.Path == "" {
		nu.Path = "/"
	}
	// url.URL omits "//" for an empty host; libvirt wants "driver:///path".
	t.Name = driver + "://" + nu.EscapedPath()
	if nu.RawQuery != "" {
		t.Name += "?" + nu.RawQuery
	}
	return t, nil
}

func defaultSockets(driver string) []string {
	dirs := []string{"/run/libvirt", "/var/run/libvirt"}
	var out []string
	for _, d := range dirs {
		out = append(out, d+"/libvirt-sock")
		// Modular daemons (libvirt >= 5.6): virtqemud-sock, virtxend-sock, ...
		if driver != "" && driver != "test" {
			out = append(out, d+"/virt"+driver+"d-sock")
		}
	}
	// Keep only sockets that exist, when any do.
	var exist []string
	for _, p := range out {
		if _, err := os.Stat(p); err == nil {
			exist = append(exist, p)
		}
	}
	if len(exist) > 0 {
		return exist
	}
	return out[:1]
}
