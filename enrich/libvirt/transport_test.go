package libvirt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/internal/testenv/libvirtd"
)

func domainNames(doms []Domain) []string {
	var out []string
	for _, d := range doms {
		out = append(out, d.Name)
	}
	return out
}

func TestLibvirtOverTCP(t *testing.T) {
	d := libvirtd.StartOpts(t, libvirtd.Options{TCP: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, "test+tcp://"+d.TCPAddr+"/default", DialOptions{})
	require.NoError(t, err)
	defer cl.Close()
	assert.Equal(t, "test:///default", cl.OpenName())
	doms, err := cl.ListAllDomains(ctx, 0)
	require.NoError(t, err)
	assert.Contains(t, domainNames(doms), "test")
}

// qemu:///system answers through the private daemon too (no VMs here).
func TestLibvirtQemuSystemURI(t *testing.T) {
	d := libvirtd.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, d.URI("qemu:///system"), DialOptions{ReadOnly: true})
	require.NoError(t, err)
	defer cl.Close()
	assert.Equal(t, "qemu:///system", cl.OpenName())
	_, err = cl.ListAllDomains(ctx, 0)
	require.NoError(t, err)
	// Read-only connections may not change anything.
	_, err = cl.DefineXML(ctx, eventDomainXML)
	require.Error(t, err)
}

// writeCert creates a certificate signed by parent (self-signed when nil).
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	return cert, key
}

func TestLibvirtOverTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vmflow test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "vmflow"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	d := libvirtd.StartOpts(t, libvirtd.Options{TLS: &libvirtd.TLSFiles{
		CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server-key.pem")}})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	uri := "test+tls://" + d.TLSAddr + "/default"
	cl, err := Dial(ctx, uri, DialOptions{TLS: TLSConfig{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}})
	require.NoError(t, err)
	doms, err := cl.ListAllDomains(ctx, 0)
	require.NoError(t, err)
	assert.Contains(t, domainNames(doms), "test")
	require.NoError(t, cl.Close())

	// Without the CA the server certificate is refused.
	_, err = Dial(ctx, uri, DialOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tls handshake")
}

// The daemon pings idle clients (keepalive_interval 1 s, count 3 in the
// test daemon) and drops those that do not answer; a client that answers
// survives a long idle period. A frozen daemon is detected by our pings.
func TestLibvirtKeepaliveWithRealDaemon(t *testing.T) {
	d := libvirtd.Start(t)
	ctx := context.Background()
	cl, err := Dial(ctx, d.URI("test:///default"), DialOptions{CallTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cl.Close()
	select {
	case <-cl.Done():
		t.Fatalf("daemon dropped an idle client that answers pings: %v", cl.Err())
	case <-time.After(5500 * time.Millisecond):
	}
	_, err = cl.Hostname(ctx)
	require.NoError(t, err)

	cl2, err := Dial(ctx, d.URI("test:///default"), DialOptions{KeepaliveInterval: 200 * time.Millisecond, KeepaliveCount: 3})
	require.NoError(t, err)
	defer cl2.Close()
	d.Pause()
	defer d.Resume()
	select {
	case <-cl2.Done():
		assert.ErrorIs(t, cl2.Err(), ErrKeepaliveTimeout)
	case <-time.After(5 * time.Second):
		t.Fatal("frozen daemon not detected by keepalive")
	}
}

// read_only: the same URI refuses changes when opened read-only and
// accepts them otherwise (go-libvirt opens with flags 0; wireConn sets
// VIR_CONNECT_RO).
func TestLibvirtReadOnlyRefusesChanges(t *testing.T) {
	d := libvirtd.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ro, err := Dial(ctx, d.URI("test:///default"), DialOptions{ReadOnly: true})
	require.NoError(t, err)
	defer ro.Close()
	_, err = ro.DefineXML(ctx, eventDomainXML)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read only")
	rw, err := Dial(ctx, d.URI("test:///default"), DialOptions{})
	require.NoError(t, err)
	defer rw.Close()
	_, err = rw.DefineXML(ctx, eventDomainXML)
	require.NoError(t, err)
}
