package api

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vmflow/vmflow/api/auth/oidc"
)

// Config is the HTTP API's configuration (key "api").
type Config struct {
	// Listen is the TCP address to serve on.
	Listen string `mapstructure:"listen" yaml:"listen"`
	// ReadTimeout bounds reading a whole request; WriteTimeout bounds
	// handling and writing the response.
	ReadTimeout  time.Duration `mapstructure:"read_timeout" yaml:"read_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout" yaml:"write_timeout"`
	// MaxLimit is the largest accepted ?limit= for /api/v1/pairs.
	MaxLimit int `mapstructure:"max_limit" yaml:"max_limit"`
	// CapacityBPS is the link capacity (bit/s) the capacity-planning route
	// computes runout dates against, unless ?capacity_bps= is given.
	CapacityBPS float64 `mapstructure:"capacity_bps" yaml:"capacity_bps"`
	// Access control (access_config.go).
	Auth   AuthConfig   `mapstructure:"auth" yaml:"auth"`
	TLS    TLSConfig    `mapstructure:"tls" yaml:"tls"`
	Audit  AuditConfig  `mapstructure:"audit" yaml:"audit"`
	Limits LimitsConfig `mapstructure:"limits" yaml:"limits"`
	OIDC   oidc.Config  `mapstructure:"oidc" yaml:"oidc"`
}

// DefaultLimit is /api/v1/pairs's limit when none is given (capped by MaxLimit).
const DefaultLimit = 50

// DefaultConfig listens on loopback only.
func DefaultConfig() Config {
	return Config{
		Listen:       "127.0.0.1:8080",
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 30 * time.Second,
		MaxLimit:     1000,
		CapacityBPS:  10e9,
		Auth:         defaultAuthConfig(),
		TLS:          defaultTLSConfig(),
		Limits:       defaultLimitsConfig(),
		OIDC:         oidc.DefaultConfig(),
	}
}

// Validate checks the settings; errors name the key.
func (c Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("api.listen: must not be empty"))
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("api.listen: %q is not host:port: %w", c.Listen, err))
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("api.read_timeout: must be > 0, got %s", c.ReadTimeout))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("api.write_timeout: must be > 0, got %s", c.WriteTimeout))
	}
	if c.MaxLimit < 1 {
		errs = append(errs, fmt.Errorf("api.max_limit: must be >= 1, got %d", c.MaxLimit))
	}
	if !(c.CapacityBPS > 0) {
		errs = append(errs, fmt.Errorf("api.capacity_bps: must be > 0, got %g", c.CapacityBPS))
	}
	errs = append(errs, c.validateAccess())
	return errors.Join(errs...)
}
