package integration

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/internal/testenv/ovslab"
)

// TestOperatorSetupScript runs configs/ovs/setup-sflow-ipfix.sh (what the
// README tells operators to run) against a lab bridge and checks that sFlow
// and IPFIX datagrams arrive with the agent address and observation domain
// it was given; then --remove stops them.
func TestOperatorSetupScript(t *testing.T) {
	lab := ovslab.New(t, ovslab.Options{Hosts: []ovslab.HostOptions{{Name: "hv1", VMs: 2}}})
	h := lab.Host("hv1")
	sflow, err := net.ListenUDP("udp", &net.UDPAddr{})
	require.NoError(t, err)
	defer sflow.Close()
	ipfix, err := net.ListenUDP("udp", &net.UDPAddr{})
	require.NoError(t, err)
	defer ipfix.Close()

	script, err := filepath.Abs("../../configs/ovs/setup-sflow-ipfix.sh")
	require.NoError(t, err)
	env := append(os.Environ(),
		"OVS_RUNDIR="+h.Dir, // ovs-vsctl finds the lab's database (db.sock) there
		"SFLOW_PORT="+strconv.Itoa(sflow.LocalAddr().(*net.UDPAddr).Port),
		"IPFIX_PORT="+strconv.Itoa(ipfix.LocalAddr().(*net.UDPAddr).Port),
		"SFLOW_SAMPLING=1", "SFLOW_POLLING=1", "OBS_DOMAIN_ID=77", "IPFIX_ACTIVE_TIMEOUT=1",
	)
	cmd := exec.Command("bash", script, h.Bridge, h.CollectorAddr.String(), h.Addr.String())
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("%s", out)

	go func() { _, _ = lab.Ping(lab.VM("vm1"), lab.VM("vm2"), 5, 200*time.Millisecond) }()

	buf := make([]byte, 65536)
	require.NoError(t, sflow.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, from, err := sflow.ReadFromUDPAddrPort(buf)
	require.NoError(t, err, "no sFlow datagram")
	require.GreaterOrEqual(t, n, 12)
	assert.Equal(t, uint32(5), binary.BigEndian.Uint32(buf[0:4]))
	assert.Equal(t, h.Addr, netip.AddrFrom4([4]byte(buf[8:12])), "agent address")
	assert.Equal(t, h.Addr, from.Addr().Unmap())

	require.NoError(t, ipfix.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, _, err = ipfix.ReadFromUDPAddrPort(buf)
	require.NoError(t, err, "no IPFIX datagram")
	require.GreaterOrEqual(t, n, 16)
	assert.Equal(t, uint16(10), binary.BigEndian.Uint16(buf[0:2]))
	assert.Equal(t, uint32(77), binary.BigEndian.Uint32(buf[12:16]), "observation domain")

	cmd = exec.Command("bash", script, "--remove", h.Bridge)
	cmd.Env = env
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	got, err := lab.Vsctl(h, "get", "bridge", h.Bridge, "sflow", "ipfix")
	require.NoError(t, err)
	assert.Equal(t, "[]\n[]\n", string(got))
}
