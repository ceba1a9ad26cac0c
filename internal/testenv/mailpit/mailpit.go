// Package mailpit starts a real SMTP server with an HTTP API (mailpit,
// github.com/axllent/mailpit) on loopback for tests, and reads what it
// received.
//
// The binary is looked up on PATH, then in $(go env GOPATH)/bin. When it is
// missing the test is skipped, unless VMFLOW_INTEGRATION=1 is set, in which
// case it fails (install: go install github.com/axllent/mailpit@v1.33.1).
package mailpit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmflow/vmflow/internal/testenv/bin"
)

// Options select mailpit's SMTP security.
type Options struct {
	// TLS gives the SMTP server a fresh self-signed certificate for
	// 127.0.0.1 and localhost (Server.CAFile verifies it): STARTTLS is
	// offered, or TLS from the first byte with RequireTLS.
	TLS             bool
	RequireSTARTTLS bool
	RequireTLS      bool
	// AuthAcceptAny accepts any user name and password (AUTH is only
	// offered over TLS unless AuthAllowInsecure).
	AuthAcceptAny     bool
	AuthAllowInsecure bool
	// Auth, when set, are the only user names and passwords accepted.
	Auth map[string]string
}

// Server is one mailpit process.
type Server struct {
	SMTPHost string
	SMTPPort int
	// URL is the HTTP API base (http://127.0.0.1:PORT).
	URL string
	// CAFile is the PEM certificate of the server (Options.TLS).
	CAFile string
	proc   *bin.Proc
}

// Address is one mailbox of a message.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Message is one message as mailpit lists it.
type Message struct {
	ID      string    `json:"ID"`
	From    Address   `json:"From"`
	To      []Address `json:"To"`
	Subject string    `json:"Subject"`
	Snippet string    `json:"Snippet"`
	Created time.Time `json:"Created"`
}

// Full is one message with its bodies.
type Full struct {
	Message
	Text string `json:"Text"`
	HTML string `json:"HTML"`
}

// Require returns mailpit's path, skipping the test when it is missing
// (failing it when VMFLOW_INTEGRATION=1).
func Require(t testing.TB) string {
	t.Helper()
	return bin.Require(t, "mailpit", "go install github.com/axllent/mailpit@v1.33.1")
}

// Start starts mailpit on two free loopback ports and waits until its API
// answers. It is stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	path := Require(t)
	dir := t.TempDir()
	s := &Server{SMTPHost: "127.0.0.1", SMTPPort: bin.FreePort(t)}
	httpAddr := "127.0.0.1:" + strconv.Itoa(bin.FreePort(t))
	s.URL = "http://" + httpAddr
	args := []string{
		"--listen", httpAddr,
		"--smtp", net.JoinHostPort(s.SMTPHost, strconv.Itoa(s.SMTPPort)),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns",
	}
	if opts.TLS || opts.RequireTLS || opts.RequireSTARTTLS {
		cert, key := writeCert(t, dir)
		s.CAFile = cert
		args = append(args, "--smtp-tls-cert", cert, "--smtp-tls-key", key)
	}
	if opts.RequireSTARTTLS {
		args = append(args, "--smtp-require-starttls")
	}
	if opts.RequireTLS {
		args = append(args, "--smtp-require-tls")
	}
	if opts.AuthAcceptAny {
		args = append(args, "--smtp-auth-accept-any")
	}
	if len(opts.Auth) > 0 {
		var b strings.Builder
		for u, pw := range opts.Auth {
			b.WriteString(u + ":" + pw + "\n")
		}
		f := filepath.Join(dir, "auth")
		if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--smtp-auth-file", f)
	}
	if opts.AuthAllowInsecure {
		args = append(args, "--smtp-auth-allow-insecure")
	}
	s.proc = bin.Start(t, path, args, filepath.Join(dir, "mailpit.log"))
	s.proc.WaitReady(t, 30*time.Second, func() bool {
		if _, err := s.list(); err != nil {
			return false
		}
		c, err := net.DialTimeout("tcp", s.SMTPAddr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// SMTPAddr is host:port of the SMTP server.
func (s *Server) SMTPAddr() string { return net.JoinHostPort(s.SMTPHost, strconv.Itoa(s.SMTPPort)) }

// Log is mailpit's output, for failure messages.
func (s *Server) Log() string { return s.proc.Log() }

// Stop stops mailpit; safe to call twice.
func (s *Server) Stop() { s.proc.Stop() }

func (s *Server) getJSON(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit GET %s: status %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (s *Server) list() ([]Message, error) {
	var r struct {
		Messages []Message `json:"messages"`
	}
	err := s.getJSON("/api/v1/messages?limit=500", &r)
	return r.Messages, err
}

// Messages lists the messages received, newest first.
func (s *Server) Messages(t testing.TB) []Message {
	t.Helper()
	m, err := s.list()
	if err != nil {
		t.Fatalf("mailpit: %v", err)
	}
	return m
}

// Get returns one message with its text and HTML bodies.
func (s *Server) Get(t testing.TB, id string) Full {
	t.Helper()
	var f Full
	if err := s.getJSON("/api/v1/message/"+url.PathEscape(id), &f); err != nil {
		t.Fatalf("mailpit: %v", err)
	}
	return f
}

// Headers returns one message's headers.
func (s *Server) Headers(t testing.TB, id string) map[string][]string {
	t.Helper()
	var h map[string][]string
	if err := s.getJSON("/api/v1/message/"+url.PathEscape(id)+"/headers", &h); err != nil {
		t.Fatalf("mailpit: %v", err)
	}
	return h
}

// WaitFor polls until a message matches (returning it) or timeout passes
// (failing the test with what arrived).
func (s *Server) WaitFor(t testing.TB, timeout time.Duration, match func(Message) bool) Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs, err := s.list()
		if err == nil {
			for _, m := range msgs {
				if match(m) {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			var subj []string
			for _, m := range msgs {
				subj = append(subj, strconv.Quote(m.Subject))
			}
			t.Fatalf("mailpit: no matching message within %v; received: [%s] (err %v)", timeout, strings.Join(subj, ", "), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Clear deletes every message.
func (s *Server) Clear(t testing.TB) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, s.URL+"/api/v1/messages", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("mailpit: clear: %v", err)
	}
	resp.Body.Close()
}

// writeCert writes a self-signed certificate and key for 127.0.0.1 and
// localhost.
func writeCert(t testing.TB, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "mailpit test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}
