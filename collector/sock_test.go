package collector

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
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

// each waits after a short batch without asking the socket again: a
// datagram that arrives later, however much later, must still wake it, and
// a full batch is followed by another read at once.
func TestMMsgReaderEachWakesAfterShortBatch(t *testing.T) {
	conn, _, err := listenUDP(t.Context(), "127.0.0.1:0", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newMMsgReader(conn, 4, 2048, false)
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	got := make(chan int, 64)
	done := make(chan error, 1)
	go func() {
		done <- r.each(func(n int) bool {
			got <- n
			return true
		})
	}()
	recv := func(want int) {
		t.Helper()
		total := 0
		deadline := time.After(5 * time.Second)
		for total < want {
			select {
			case n := <-got:
				total += n
			case <-deadline:
				t.Fatalf("received %d of %d datagrams", total, want)
			}
		}
		assert.Equal(t, want, total)
	}
	for _, burst := range []int{1, 1, 3, 10, 1} { // short, short, short, full batches, short
		time.Sleep(20 * time.Millisecond) // the reader is waiting again
		for range burst {
			_, _ = out.Write([]byte("datagram"))
		}
		recv(burst)
	}
	conn.Close()
	select {
	case err := <-done:
		assert.True(t, isClosed(err), "%v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("each did not return on close")
	}
}
