package collector

import (
	"encoding/binary"
	"net"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"
)

func TestGROSize(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	v := make([]byte, 4)
	binary.NativeEndian.PutUint32(v, 1332)
	assert.Equal(t, 1332, groSize(cmsg(unix.SOL_UDP, unix.UDP_GRO, v)))
	other := cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16))
	assert.Equal(t, 1332, groSize(append(other, cmsg(unix.SOL_UDP, unix.UDP_GRO, v)...)), "after another message")
	assert.Equal(t, 0, groSize(other))
	assert.Equal(t, 0, groSize(nil))
	bad := cmsg(unix.SOL_UDP, unix.UDP_GRO, v)
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).Len = 0
	assert.Equal(t, 0, groSize(bad), "zero length does not loop")
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).Len = 4096
	assert.Equal(t, 0, groSize(bad), "length past the buffer")
}

func TestSocketDropsCounted(t *testing.T) {
	conn, _, err := listenUDP(t.Context(), "127.0.0.1:0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	before, ok := socketDrops(rc)
	assert.True(t, ok)
	out, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for range 200 { // nobody reads: a 4 KiB buffer overflows
		_, _ = out.Write(make([]byte, 1000))
	}
	after, ok := socketDrops(rc)
	assert.True(t, ok)
	assert.Greater(t, after-before, uint32(100))
}
