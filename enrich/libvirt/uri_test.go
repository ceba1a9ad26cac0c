package libvirt

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseURI(t *testing.T) {
	cases := []struct {
		uri           string
		network, addr string
		tls           bool
		name          string
	}{
		{"test:///default?socket=/tmp/d/libvirt-sock", "unix", "/tmp/d/libvirt-sock", false, "test:///default"},
		{"test+unix:///abs/node.xml?socket=/s", "unix", "/s", false, "test:///abs/node.xml"},
		{"qemu+unix:///system?socket=/run/x/sock&foo=bar", "unix", "/run/x/sock", false, "qemu:///system?foo=bar"},
		{"qemu+tcp://hv1/system", "tcp", "hv1:16509", false, "qemu:///system"},
		{"qemu+tcp://root@hv1:1234/system", "tcp", "hv1:1234", false, "qemu:///system"},
		{"qemu+tls://hv2.example/system?no_verify=1", "tcp", "hv2.example:16514", true, "qemu:///system"},
		{"qemu://hv3/system", "tcp", "hv3:16514", true, "qemu:///system"},
		{"qemu+tcp://hv1/system?name=qemu:///session", "tcp", "hv1:16509", false, "qemu:///session"},
	}
	for _, c := range cases {
		t.Run(c.uri, func(t *testing.T) {
			tg, err := ParseURI(c.uri)
			require.NoError(t, err)
			assert.Equal(t, c.network, tg.Network)
			assert.Equal(t, c.addr, tg.Addrs[0])
			assert.Equal(t, c.tls, tg.TLS)
			assert.Equal(t, c.name, tg.Name)
		})
	}
	tg, err := ParseURI("qemu:///system")
	require.NoError(t, err)
	assert.Equal(t, "unix", tg.Network)
	assert.Contains(t, tg.Addrs[0], "/libvirt/")
	assert.Equal(t, "qemu:///system", tg.Name)

	for _, bad := range []string{"", "/just/a/path", "qemu+ssh://hv/system", "qemu+tcp:///system", "qemu+unix://hv/system"} {
		_, err := ParseURI(bad)
		assert.Error(t, err, bad)
	}
}
