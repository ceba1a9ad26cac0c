package app

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMemoryLimit(t *testing.T) {
	mi := "MemTotal:        8000000 kB\nMemFree: 1 kB\n"
	auto := RuntimeConfig{}
	require.Equal(t, int64(8000000<<10/5*4), auto.memoryLimit("max\n", mi), "no cgroup limit: 80% of RAM")
	require.Equal(t, int64(2<<30/5*4), auto.memoryLimit("2147483648\n", mi), "cgroup limit: 80% of it")
	require.Equal(t, int64(0), auto.memoryLimit("", ""), "nothing known: no limit")
	require.Equal(t, int64(1800<<20), RuntimeConfig{MemoryLimitMB: 1800}.memoryLimit("2147483648", mi))
	require.Equal(t, int64(0), RuntimeConfig{MemoryLimitMB: -1}.memoryLimit("2147483648", mi))
	require.NoError(t, RuntimeConfig{MemoryLimitMB: -1}.Validate())
	require.ErrorContains(t, RuntimeConfig{MemoryLimitMB: -2}.Validate(), "runtime.memory_limit_mb")
}
