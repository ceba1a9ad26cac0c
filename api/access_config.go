package api

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// AuthConfig is who may use the API (key api.auth).
type AuthConfig struct {
	// TokensFile holds the API tokens (JSON lines, hashed; see
	// `vmflow token create`); re-read when it changes. "": no tokens.
	TokensFile string `mapstructure:"tokens_file" yaml:"tokens_file" cfgload:"path"`
	// Anonymous lets requests without credentials in as a read-only
	// viewer named "anonymous".
	Anonymous bool `mapstructure:"anonymous" yaml:"anonymous"`
	// AnonymousNonLoopback allows Anonymous on a listen address that is
	// not loopback (otherwise a configuration error).
	AnonymousNonLoopback bool `mapstructure:"anonymous_non_loopback" yaml:"anonymous_non_loopback"`
	// TenantExternalIPs shows tenant-scoped identities the IP of external
	// (non-VM) peers; otherwise they are the opaque "(external)".
	TenantExternalIPs bool `mapstructure:"tenant_external_ips" yaml:"tenant_external_ips"`
}

// TLSConfig serves the API over HTTPS (key api.tls).
type TLSConfig struct {
	// CertFile and KeyFile (PEM) turn TLS on; both re-read when they change.
	CertFile string `mapstructure:"cert_file" yaml:"cert_file" cfgload:"path"`
	KeyFile  string `mapstructure:"key_file" yaml:"key_file" cfgload:"path"`
	// ClientCAFile (PEM) verifies client certificates; ClientAuth is
	// none, optional (a certificate, when sent, must verify) or require.
	ClientCAFile string `mapstructure:"client_ca_file" yaml:"client_ca_file" cfgload:"path"`
	ClientAuth   string `mapstructure:"client_auth" yaml:"client_auth"`
	// HSTSMaxAge is the Strict-Transport-Security max-age sent over TLS
	// (0: no header).
	HSTSMaxAge time.Duration `mapstructure:"hsts_max_age" yaml:"hsts_max_age"`
}

// Enabled tells whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// AuditConfig is the audit log (key api.audit).
type AuditConfig struct {
	// File receives one JSON line per authenticated request and per
	// change; "-" is standard output, "" turns the audit log off.
	File string `mapstructure:"file" yaml:"file" cfgload:"path"`
}

// LimitsConfig bounds what one identity can make the server do (key
// api.limits).
type LimitsConfig struct {
	// Rate is each identity's sustained requests per second, Burst its
	// bucket (0 rate: unlimited). Over it: 429 with Retry-After.
	Rate  float64 `mapstructure:"rate" yaml:"rate"`
	Burst int     `mapstructure:"burst" yaml:"burst"`
	// TenantRate and TenantBurst are the same for tenant-scoped
	// identities (and for failed authentication, per client address).
	TenantRate  float64 `mapstructure:"tenant_rate" yaml:"tenant_rate"`
	TenantBurst int     `mapstructure:"tenant_burst" yaml:"tenant_burst"`
	// MaxBodyBytes is the largest request body accepted (413 beyond).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes" yaml:"max_body_bytes"`
	// RequestTimeout bounds one request's handling (its context).
	RequestTimeout time.Duration `mapstructure:"request_timeout" yaml:"request_timeout"`
	// TenantMaxRange is the longest time range a tenant-scoped identity
	// may query; TenantMaxLimit its largest ?limit=/?top=.
	TenantMaxRange time.Duration `mapstructure:"tenant_max_range" yaml:"tenant_max_range"`
	TenantMaxLimit int           `mapstructure:"tenant_max_limit" yaml:"tenant_max_limit"`
}

func defaultAuthConfig() AuthConfig {
	// Anonymous viewer on by default: the default listen address is
	// loopback, and Validate refuses it anywhere else unless
	// anonymous_non_loopback says so.
	return AuthConfig{Anonymous: true}
}

func defaultTLSConfig() TLSConfig {
	return TLSConfig{ClientAuth: "none", HSTSMaxAge: 365 * 24 * time.Hour}
}

func defaultLimitsConfig() LimitsConfig {
	return LimitsConfig{Rate: 100, Burst: 1000, TenantRate: 10, TenantBurst: 100, MaxBodyBytes: 1 << 20, RequestTimeout: 30 * time.Second, TenantMaxRange: 7 * 24 * time.Hour, TenantMaxLimit: 200}
}

// isLoopback tells whether a listen address binds loopback only.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c Config) validateAccess() error {
	errs := []error{c.OIDC.Validate()}
	if c.Auth.Anonymous && !c.Auth.AnonymousNonLoopback && c.Listen != "" && !isLoopback(c.Listen) {
		errs = append(errs, fmt.Errorf("api.auth.anonymous: anonymous access on the non-loopback address %s needs api.auth.anonymous_non_loopback: true (or turn anonymous off and use tokens)", c.Listen))
	}
	t := c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("api.tls.cert_file and api.tls.key_file: set both or neither"))
	}
	switch t.ClientAuth {
	case "none":
	case "optional", "require":
		if t.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("api.tls.client_auth: %s needs api.tls.client_ca_file", t.ClientAuth))
		}
		if !t.Enabled() {
			errs = append(errs, fmt.Errorf("api.tls.client_auth: %s needs api.tls.cert_file and key_file", t.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("api.tls.client_auth: must be none, optional or require, got %q", t.ClientAuth))
	}
	if t.HSTSMaxAge < 0 {
		errs = append(errs, fmt.Errorf("api.tls.hsts_max_age: must be >= 0, got %s", t.HSTSMaxAge))
	}
	l := c.Limits
	if l.Rate < 0 {
		errs = append(errs, fmt.Errorf("api.limits.rate: must be >= 0, got %g", l.Rate))
	}
	if l.Rate > 0 && l.Burst < 1 {
		errs = append(errs, fmt.Errorf("api.limits.burst: must be >= 1 with a rate, got %d", l.Burst))
	}
	if l.TenantRate < 0 {
		errs = append(errs, fmt.Errorf("api.limits.tenant_rate: must be >= 0, got %g", l.TenantRate))
	}
	if l.TenantRate > 0 && l.TenantBurst < 1 {
		errs = append(errs, fmt.Errorf("api.limits.tenant_burst: must be >= 1 with a rate, got %d", l.TenantBurst))
	}
	if l.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("api.limits.max_body_bytes: must be >= 1, got %d", l.MaxBodyBytes))
	}
	if l.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("api.limits.request_timeout: must be > 0, got %s", l.RequestTimeout))
	}
	if l.TenantMaxRange <= 0 {
		errs = append(errs, fmt.Errorf("api.limits.tenant_max_range: must be > 0, got %s", l.TenantMaxRange))
	}
	if l.TenantMaxLimit < 1 {
		errs = append(errs, fmt.Errorf("api.limits.tenant_max_limit: must be >= 1, got %d", l.TenantMaxLimit))
	}
	return errors.Join(errs...)
}
