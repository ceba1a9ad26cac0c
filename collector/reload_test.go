package collector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A reload narrows and widens the allowlist of a running collector; an
// invalid list is refused and the old one stays.
func TestSetAllowedExportersWhileRunning(t *testing.T) {
	cfg := testConfig()
	h := &fakeHandler{}
	c, _, addr := startCollector(t, cfg, h)

	send(t, "127.0.0.2:0", addr, sflowDatagram([4]byte{1, 1, 1, 1}, 0, 1, 1, 1))
	require.Eventually(t, func() bool { return c.Stats()[ProtoSFlow].Handled == 1 }, 10*time.Second, 5*time.Millisecond)

	require.NoError(t, c.SetAllowedExporters([]string{"127.0.0.1"}))
	send(t, "127.0.0.2:0", addr, sflowDatagram([4]byte{1, 1, 1, 1}, 0, 2, 2, 1))
	require.Eventually(t, func() bool { return c.Stats()[ProtoSFlow].DroppedNotAllowed == 1 }, 10*time.Second, 5*time.Millisecond)

	err := c.SetAllowedExporters([]string{"not-a-cidr"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "collector.allowed_exporters[0]")
	send(t, "127.0.0.2:0", addr, sflowDatagram([4]byte{1, 1, 1, 1}, 0, 3, 3, 1))
	require.Eventually(t, func() bool { return c.Stats()[ProtoSFlow].DroppedNotAllowed == 2 }, 10*time.Second, 5*time.Millisecond, "the old list is kept")

	require.NoError(t, c.SetAllowedExporters(nil))
	send(t, "127.0.0.2:0", addr, sflowDatagram([4]byte{1, 1, 1, 1}, 0, 4, 4, 1))
	require.Eventually(t, func() bool { return c.Stats()[ProtoSFlow].Handled == 2 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, uint64(2), c.Stats()[ProtoSFlow].DroppedNotAllowed)
}
