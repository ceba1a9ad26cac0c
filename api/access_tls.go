package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// listen binds api.listen: plain TCP, or TLS when api.tls.cert_file is
// set. Over TLS a plain HTTP request is answered 400 by net/http and
// nothing is served.
func (s *Server) listen() (net.Listener, error) {
	if s.access != nil {
		s.access.logMode()
	}
	if !s.cfg.TLS.Enabled() {
		return net.Listen("tcp", s.cfg.Listen)
	}
	tc, err := serverTLSConfig(s.cfg.TLS)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, tc), nil
}

// serverTLSConfig: TLS 1.2 or later with the AEAD suites only, the
// certificate re-read when its files change, client certificates verified
// against the client CA when asked for.
func serverTLSConfig(c TLSConfig) (*tls.Config, error) {
	cr := &certReloader{cert: c.CertFile, key: c.KeyFile}
	if err := cr.load(); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{ // TLS 1.2; 1.3 suites are not configurable and all good
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: cr.get,
	}
	if c.ClientAuth != "none" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("api.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api.tls.client_ca_file: %s holds no PEM certificate", c.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if c.ClientAuth == "require" {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}

// certReloader serves the certificate of two files, re-reading them when
// either changes (checked at most once a second, at a handshake). A pair
// that fails to load keeps the previous one.
type certReloader struct {
	cert, key string

	mu      sync.Mutex
	checked time.Time
	stamp   [2]time.Time
	sizes   [2]int64
	current *tls.Certificate
	lastErr error
}

func (r *certReloader) stat() ([2]time.Time, [2]int64, error) {
	var ts [2]time.Time
	var sz [2]int64
	for i, p := range []string{r.cert, r.key} {
		st, err := os.Stat(p)
		if err != nil {
			return ts, sz, err
		}
		ts[i], sz[i] = st.ModTime(), st.Size()
	}
	return ts, sz, nil
}

func (r *certReloader) load() error {
	ts, sz, err := r.stat()
	if err != nil {
		return fmt.Errorf("api.tls: %w", err)
	}
	crt, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return fmt.Errorf("api.tls: load %s and %s: %w", r.cert, r.key, err)
	}
	r.stamp, r.sizes, r.current = ts, sz, &crt
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.checked) >= time.Second || now.Before(r.checked) {
		r.checked = now
		if ts, sz, err := r.stat(); err == nil && (ts != r.stamp || sz != r.sizes) {
			r.lastErr = r.load() // on error the previous certificate stays
		}
	}
	if r.current == nil {
		return nil, errors.New("api.tls: no certificate")
	}
	return r.current, nil
}
