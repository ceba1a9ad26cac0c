package configs

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/alert"
)

// TestDemoRules: the demo's rules file is a valid alert rules file.
func TestDemoRules(t *testing.T) {
	rules, err := alert.ParseRules(DemoRules)
	require.NoError(t, err)
	require.Len(t, rules, 8)
}
