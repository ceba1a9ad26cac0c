package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProbeSubcommandChecksItsKeys(t *testing.T) {
	code, _, errOut := runCmd(t, nil, "probe", "--config", shipped, "--check")
	assert.Equal(t, 0, code, errOut)
	code, _, errOut = runCmd(t, []string{"VMFLOW_PROBE_TAPS=("}, "probe", "--config", shipped, "--check")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "probe.taps")
	code, _, errOut = runCmd(t, []string{"VMFLOW_PROBE_MAX_PENDING=1"}, "probe", "--config", shipped, "--check")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "probe.max_pending")
	code, _, _ = runCmd(t, nil, "probe", "--nope")
	assert.Equal(t, 2, code)
}

// The probe runs and stops on the context; no taps match here, so it
// only sends its templates to the collector.
func TestProbeSubcommandRunsAndStops(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("VMFLOW_INTEGRATION") == "1" {
			t.Fatal("needs root (AF_PACKET): make test runs as root")
		}
		t.Skip("needs root (AF_PACKET)")
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer udp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	env := []string{"VMFLOW_PROBE_COLLECTOR=" + udp.LocalAddr().String(), "VMFLOW_PROBE_TAPS=^no-such-tap$", "VMFLOW_PROBE_METRICS_LISTEN="}
	go func() {
		var out, errOut bytes.Buffer
		done <- run(ctx, []string{"probe", "--config", shipped}, env, &out, &errOut)
	}()
	buf := make([]byte, 2048)
	require.NoError(t, udp.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, _, err := udp.ReadFromUDP(buf)
	require.NoError(t, err, "the probe sends its templates at start")
	assert.Equal(t, []byte{0, 10}, buf[:2], "IPFIX")
	assert.Greater(t, n, 16)
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(10 * time.Second):
		t.Fatal("the probe did not stop")
	}
}
