// Package configs holds the shipped configuration files; the ones the
// binary itself needs are embedded here.
package configs

import _ "embed"

// DemoRules is demo-rules.yaml: the alert rules `vmflow demo` uses.
//
//go:embed demo-rules.yaml
var DemoRules []byte
