package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vmflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a certificate; server ones for 127.0.0.1, client ones with
// the subject given.
func (ca *testCA) issue(t *testing.T, serial int64, subj pkix.Name, client bool) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subj,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if client {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path)) // as cert managers do: atomically
}

// startTLS starts a server with TLS from dir and returns its address.
func startTLS(t *testing.T, mutate func(*Config)) (*Server, string) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	mutate(&cfg)
	srv, err := New(cfg, Deps{Now: func() time.Time { return T }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); srv.Stop() })
	require.NoError(t, srv.Start(ctx))
	return srv, srv.Addr().String()
}

// TestTLSListener: HTTPS with the configured certificate, HSTS; a
// replaced certificate is served without restart; plain HTTP on the port
// is refused.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1 := ca.issue(t, 101, pkix.Name{CommonName: "vmflow"}, false)
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)
	_, addr := startTLS(t, func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	get := func() (serial int64, resp *http.Response) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/api/v1/health")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp
	}
	serial, resp := get()
	assert.Equal(t, int64(101), serial)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Strict-Transport-Security"), "max-age=31536000")
	assert.GreaterOrEqual(t, resp.TLS.Version, uint16(tls.VersionTLS12))

	// TLS 1.1 is refused.
	_, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11})
	assert.Error(t, err)

	// Replace the certificate: new connections get it, no restart.
	c2, k2 := ca.issue(t, 202, pkix.Name{CommonName: "vmflow"}, false)
	writeFile(t, certFile, c2)
	writeFile(t, keyFile, k2)
	deadline := time.Now().Add(5 * time.Second)
	for serial != 202 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		serial, _ = get()
	}
	assert.Equal(t, int64(202), serial, "the replaced certificate is served")

	// Plain HTTP on the TLS port gets no API answer.
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Write([]byte("GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	raw, _ := io.ReadAll(conn)
	conn.Close()
	assert.Contains(t, string(raw), "400 Bad Request")
	assert.Contains(t, string(raw), "HTTP request to an HTTPS server")
	assert.NotContains(t, string(raw), "uptime")
}

// TestClientCertificates: with client_auth=require a connection without a
// certificate is refused; a certificate of the client CA authenticates as
// its CN, with the role of its OU and the tenants of its O.
func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t), newTestCA(t)
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.pem")
	c1, k1 := ca.issue(t, 1, pkix.Name{CommonName: "vmflow"}, false)
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)
	writeFile(t, caFile, ca.pem)
	_, addr := startTLS(t, func(c *Config) {
		c.TLS.CertFile, c.TLS.KeyFile, c.TLS.ClientCAFile, c.TLS.ClientAuth = certFile, keyFile, caFile, "require"
		c.Auth.Anonymous = false
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	client := func(certPEM, keyPEM []byte) *http.Client {
		tc := &tls.Config{RootCAs: pool}
		if certPEM != nil {
			crt, err := tls.X509KeyPair(certPEM, keyPEM)
			require.NoError(t, err)
			tc.Certificates = []tls.Certificate{crt}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	}
	_, err := client(nil, nil).Get("https://" + addr + "/api/v1/health")
	assert.Error(t, err, "no client certificate: refused")
	oc, ok := other.issue(t, 9, pkix.Name{CommonName: "mallory", OrganizationalUnit: []string{"admin"}}, true)
	_, err = client(oc, ok).Get("https://" + addr + "/api/v1/health")
	assert.Error(t, err, "a certificate of another CA: refused")

	status := func(cl *http.Client, method, path string) int {
		req, _ := http.NewRequest(method, "https://"+addr+path, nil)
		resp, err := cl.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	opCert, opKey := ca.issue(t, 10, pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"operator"}}, true)
	op := client(opCert, opKey)
	assert.Equal(t, 200, status(op, "GET", "/api/v1/exporters"))
	assert.Equal(t, 403, status(op, "POST", "/api/v1/admin/reload"), "operator, not admin")
	tnCert, tnKey := ca.issue(t, 11, pkix.Name{CommonName: "bob", Organization: []string{"acme"}}, true)
	tn := client(tnCert, tnKey)
	assert.Equal(t, 200, status(tn, "GET", "/api/v1/health"), "viewer by default")
	assert.Equal(t, 403, status(tn, "GET", "/api/v1/exporters"), "tenant-scoped: O=acme")
}
