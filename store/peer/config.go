// Package peer lets a query node (a vmflow with no collectors) answer the
// recent windows from the collectors' own APIs (GET /peer/v1/windows) and
// older ones from the shared store (InfluxDB): see Federated and the
// README, "More than one collector".
package peer

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config is the query section of vmflow's configuration.
type Config struct {
	// Peers are the API base URLs of the collector instances
	// (http://collector-1:8080). Non-empty makes this vmflow a query node:
	// it serves the API and console from InfluxDB, merging instances, and
	// from the peers for the last Recent.
	Peers []string `mapstructure:"peers" yaml:"peers"`
	// Recent is how far back the peers answer instead of InfluxDB: more
	// than the collectors' write lag (influx.window + influx.flush_interval
	// + a queued batch), less than their store.memory.full_resolution.
	Recent time.Duration `mapstructure:"recent" yaml:"recent"`
	// Timeout of one request to a peer.
	Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
	// TokenFile holds an API token (viewer, no tenant) of the collectors,
	// sent as "Authorization: Bearer" to every peer; empty: none (the
	// collectors then must allow anonymous viewers).
	TokenFile string `mapstructure:"token_file" yaml:"token_file" cfgload:"path"`
}

// DefaultConfig is no peers (not a query node), 1 minute from the peers.
func DefaultConfig() Config {
	return Config{Recent: time.Minute, Timeout: 10 * time.Second}
}

// Enabled tells whether this vmflow is a query node.
func (c Config) Enabled() bool { return len(c.Peers) > 0 }

// Validate checks the section; errors name the key.
func (c Config) Validate() error {
	var errs []error
	for i, p := range c.Peers {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("query.peers[%d]: must be an http(s) URL, got %q", i, p))
		}
	}
	if c.Recent < 0 || c.Recent > time.Hour {
		errs = append(errs, fmt.Errorf("query.recent: must be in 0..1h, got %s", c.Recent))
	}
	if c.Timeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("query.timeout: must be >= 100ms, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}
