//go:build pprof

// Built with -tags pprof (scripts/bench-e2e.sh with BENCH_E2E_PPROF=1),
// vmflow serves net/http/pprof on $PPROF_LISTEN (e.g. 127.0.0.1:6060) for
// heap and CPU profiles under load. Not in release builds.
package main

import (
	"net/http"
	_ "net/http/pprof" //nolint:gosec // debug build only
	"os"
)

func init() {
	if addr := os.Getenv("PPROF_LISTEN"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }() //nolint:gosec // debug build only
	}
}
