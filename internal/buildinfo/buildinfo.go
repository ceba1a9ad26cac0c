// Package buildinfo tells which vmflow this is: version, commit, build date
// and Go version. The Makefile sets version, commit and date with -ldflags
// (-X github.com/vmflow/vmflow/internal/buildinfo.version=...); a plain
// `go build` or `go install` falls back to what the Go toolchain recorded
// (runtime/debug.ReadBuildInfo: the module version and the VCS revision and
// time).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by -ldflags -X; empty in a plain build.
var (
	version string
	commit  string
	date    string
)

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`    // "v0.3.0", "v0.3.0-5-gabc1234-dirty", or "devel"
	Commit    string `json:"commit"`     // full VCS revision, "" when unknown
	Modified  bool   `json:"modified"`   // built from a work tree with uncommitted changes
	BuildDate string `json:"build_date"` // RFC 3339 (the commit time when not set by ldflags)
	GoVersion string `json:"go_version"` // "go1.26.8"
	Platform  string `json:"platform"`   // "linux/amd64"
}

// Get returns the build's identity.
func Get() Info {
	in := Info{
		Version:   version,
		Commit:    commit,
		BuildDate: date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				if in.BuildDate == "" {
					in.BuildDate = s.Value
				}
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	return in
}

// String is the one-line form `vmflow --version` prints.
func (in Info) String() string {
	c := in.Commit
	if c == "" {
		c = "unknown"
	}
	if in.Modified {
		c += "-dirty"
	}
	d := in.BuildDate
	if d == "" {
		d = "unknown"
	}
	return fmt.Sprintf("vmflow %s (commit %s, built %s, %s, %s)", in.Version, c, d, in.GoVersion, in.Platform)
}

// Collector is the vmflow_build_info gauge: always 1, the build in labels
// (the usual Prometheus idiom, so that dashboards can join on it).
func (in Info) Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vmflow_build_info",
		Help: "vmflow's build: always 1, with version, commit, build date and Go version as labels.",
		ConstLabels: prometheus.Labels{
			"version":    in.Version,
			"commit":     in.Commit,
			"build_date": in.BuildDate,
			"goversion":  in.GoVersion,
		},
	})
	g.Set(1)
	return g
}
