package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLdflagsWinOverBuildInfo(t *testing.T) {
	old := [3]string{version, commit, date}
	t.Cleanup(func() { version, commit, date = old[0], old[1], old[2] })
	version, commit, date = "v9.8.7", "0123456789abcdef", "2026-12-02T08:00:00Z"
	in := Get()
	assert.Equal(t, "v9.8.7", in.Version)
	assert.Equal(t, "0123456789abcdef", in.Commit)
	assert.Equal(t, "2026-12-02T08:00:00Z", in.BuildDate)
	assert.Equal(t, runtime.Version(), in.GoVersion)
	assert.True(t, strings.HasPrefix(in.String(), "vmflow v9.8.7 (commit 0123456789abcdef"), in.String())

	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(in.Collector()))
	n, err := testutil.GatherAndCount(reg, "vmflow_build_info")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	labels := map[string]string{}
	for _, l := range mfs[0].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	assert.Equal(t, "v9.8.7", labels["version"])
	assert.Equal(t, runtime.Version(), labels["goversion"])
}

func TestPlainBuildSaysDevel(t *testing.T) {
	old := [3]string{version, commit, date}
	t.Cleanup(func() { version, commit, date = old[0], old[1], old[2] })
	version, commit, date = "", "", ""
	in := Get()
	assert.NotEmpty(t, in.Version) // "devel" in a test binary
	assert.Contains(t, in.String(), runtime.Version())
}
