package enrich

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const invA = `
vms:
  - name: alpha
    interfaces: [{mac: "52:54:00:00:00:01", ips: [10.0.0.1]}]
`

const invB = `
vms:
  - name: bravo
    interfaces: [{mac: "52:54:00:00:00:02", ips: [10.0.0.2]}]
`

// A reload points the static source at another file: the index follows
// at once; a missing or broken file changes nothing; switching the
// static source on or off is refused (restart).
func TestSetStaticSwitchesFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	require.NoError(t, os.WriteFile(a, []byte(invA), 0o644))
	require.NoError(t, os.WriteFile(b, []byte(invB), 0o644))
	cfg := DefaultConfig()
	cfg.Static = StaticConfig{File: a, Reload: time.Hour}
	e, err := New(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(e.Stop)
	names := func() []string {
		var out []string
		for _, vm := range e.Index().VMs() {
			out = append(out, vm.Name)
		}
		return out
	}
	assert.Equal(t, []string{"alpha"}, names())

	require.NoError(t, e.SetStatic(StaticConfig{File: b, Reload: 200 * time.Millisecond}))
	assert.Equal(t, []string{"bravo"}, names(), "the new file is in the index when SetStatic returns")
	assert.Equal(t, b, e.Sources()[0].URI)

	// The new interval is in force: an edit of b is picked up.
	require.NoError(t, os.WriteFile(b, []byte(invA), 0o644))
	require.Eventually(t, func() bool { n := names(); return len(n) == 1 && n[0] == "alpha" }, 5*time.Second, 20*time.Millisecond)

	err = e.SetStatic(StaticConfig{File: filepath.Join(dir, "missing.yaml"), Reload: time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "enrich.static.file")
	assert.Equal(t, b, e.Sources()[0].URI, "a missing file keeps the old one")
	assert.ErrorIs(t, e.SetStatic(StaticConfig{}), ErrStaticToggled)
}
