package influx

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
)

// Every point a collector writes carries its instance tag, in tag-key
// order (what InfluxDB's series key is), so that several collectors can
// share one database; without an instance the points are as before.
func TestEveryPointCarriesInstance(t *testing.T) {
	win := mkWindow(time.Unix(1_700_000_000, 0), 0)
	for _, inst := range []string{"collector-a", ""} {
		e := newEncoder()
		e.instance = inst
		e.prepare(win)
		var b []byte
		for i := range e.pairs {
			b = e.appendPair(b, i)
		}
		for i := range e.vms {
			b = e.appendVM(b, i)
		}
		require.NotEmpty(t, e.infos)
		for i := range e.infos {
			b = e.appendInfo(b, i)
		}
		b, n := appendExporters(b, time.Unix(1_700_000_000, 0), []collector.ExporterStatus{{Protocol: "sflow", Address: "10.0.0.1:6343", Agent: "10.0.0.1"}}, inst)
		require.Equal(t, 1, n)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		require.Greater(t, len(lines), 4)
		for _, l := range lines {
			if inst == "" {
				assert.NotContains(t, l, "instance=", l)
				continue
			}
			assert.Contains(t, l, ",instance="+inst, l)
			tags, _, _ := strings.Cut(strings.NewReplacer(`\,`, "_", `\ `, "_", `\=`, "_").Replace(l), " ")
			parts := strings.Split(tags, ",")[1:]
			keys := make([]string, len(parts))
			for i, p := range parts {
				keys[i], _, _ = strings.Cut(p, "=")
			}
			assert.IsIncreasing(t, keys, "tags in key order: %s", l)
		}
	}
}
