package main

import (
	"fmt"
	"io"

	"github.com/vmflow/vmflow/internal/buildinfo"
)

// printVersion is `vmflow --version`: one line, e.g.
//
//	vmflow v0.4.0 (commit 2dc37d3..., built 2026-12-02T08:00:00Z, go1.26.8, linux/amd64)
func printVersion(w io.Writer) {
	fmt.Fprintln(w, buildinfo.Get().String())
}
