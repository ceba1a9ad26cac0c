package app

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// RuntimeConfig configures the Go runtime of the vmflow process.
type RuntimeConfig struct {
	// MemoryLimitMB is the Go runtime's soft memory limit in MiB
	// (runtime/debug.SetMemoryLimit, like GOMEMLIMIT): the GC works harder
	// as the heap nears it instead of letting it double (GOGC=100) past
	// the live state. 0: automatic, 80% of the cgroup's memory.max or, if
	// none, of the machine's RAM; -1: none. The GOMEMLIMIT environment
	// variable, when set, wins. It bounds the GC's headroom, not the state:
	// size the state with the README's bytes per pair.
	MemoryLimitMB int64 `mapstructure:"memory_limit_mb" yaml:"memory_limit_mb"`
}

// DefaultRuntimeConfig: automatic memory limit.
func DefaultRuntimeConfig() RuntimeConfig { return RuntimeConfig{} }

// Validate checks the runtime settings.
func (c RuntimeConfig) Validate() error {
	if c.MemoryLimitMB < -1 {
		return fmt.Errorf("runtime.memory_limit_mb: must be -1 (none), 0 (automatic) or a size in MiB, got %d", c.MemoryLimitMB)
	}
	return nil
}

// memoryLimit is the limit in bytes c asks for (0: none), given the
// cgroup's memory.max and /proc/meminfo's contents.
func (c RuntimeConfig) memoryLimit(cgroupMax, meminfo string) int64 {
	switch {
	case c.MemoryLimitMB < 0:
		return 0
	case c.MemoryLimitMB > 0:
		return c.MemoryLimitMB << 20
	}
	if v, err := strconv.ParseInt(strings.TrimSpace(cgroupMax), 10, 64); err == nil && v > 0 {
		return v / 5 * 4
	}
	for _, l := range strings.Split(meminfo, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 {
				return kb << 10 / 5 * 4
			}
		}
	}
	return 0
}

// applyMemoryLimit sets the Go runtime's memory limit from c unless
// GOMEMLIMIT is set; it returns the limit in force (bytes; 0: none).
func (c RuntimeConfig) applyMemoryLimit() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	cg, _ := os.ReadFile("/sys/fs/cgroup/memory.max")
	mi, _ := os.ReadFile("/proc/meminfo")
	lim := c.memoryLimit(string(cg), string(mi))
	if lim <= 0 {
		return 0
	}
	debug.SetMemoryLimit(lim)
	return lim
}
