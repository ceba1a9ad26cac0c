package libvirt

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakePeer is the daemon's end of a wireConn under test.
type fakePeer struct{ nc net.Conn }

func (p fakePeer) readFrame(t *testing.T) (program, proc uint32, body []byte) {
	t.Helper()
	var lb [4]byte
	_, err := io.ReadFull(p.nc, lb[:])
	require.NoError(t, err)
	n := binary.BigEndian.Uint32(lb[:])
	f := make([]byte, n-4)
	_, err = io.ReadFull(p.nc, f)
	require.NoError(t, err)
	return binary.BigEndian.Uint32(f[0:4]), binary.BigEndian.Uint32(f[8:12]), f[24:]
}

func frame(program, proc, typ uint32, body []byte) []byte {
	f := make([]byte, frameHeaderLen+len(body))
	binary.BigEndian.PutUint32(f[0:], uint32(len(f)))
	binary.BigEndian.PutUint32(f[4:], program)
	binary.BigEndian.PutUint32(f[8:], 1)
	binary.BigEndian.PutUint32(f[12:], proc)
	binary.BigEndian.PutUint32(f[16:], typ)
	copy(f[frameHeaderLen:], body)
	return f
}

func pipeWire(t *testing.T, ro bool, interval time.Duration, count int) (*wireConn, fakePeer) {
	a, b := net.Pipe()
	w := newWireConn(a, ro, interval, count)
	t.Cleanup(func() { w.kill(ErrClosed); b.Close() })
	return w, fakePeer{b}
}

// The daemon's PING is answered with PONG and never reaches go-libvirt; a
// silent daemon is pinged, then declared dead.
func TestWireKeepaliveAnswersPingAndDetectsDeadPeer(t *testing.T) {
	w, p := pipeWire(t, false, 50*time.Millisecond, 3)
	go func() {
		_, _ = p.nc.Write(frame(keepaliveProgram, keepaliveProcPing, msgTypeMessage, nil))
		_, _ = p.nc.Write(frame(remoteProgram, 59, 1, []byte{0, 0, 0, 1, 'h', 0, 0, 0}))
	}()
	got := make([]byte, 64)
	readDone := make(chan int, 1)
	go func() { n, _ := io.ReadAtLeast(w, got, frameHeaderLen+8); readDone <- n }()
	sawPong, sawPing := false, false
	for !(sawPong && sawPing) {
		prog, proc, _ := p.readFrame(t)
		require.Equal(t, uint32(keepaliveProgram), prog)
		sawPong = sawPong || proc == keepaliveProcPong
		sawPing = sawPing || proc == keepaliveProcPing
	}
	n := <-readDone
	assert.Equal(t, frameHeaderLen+8, n, "go-libvirt sees only the reply, not the ping")
	assert.Equal(t, uint32(remoteProgram), binary.BigEndian.Uint32(got[4:8]))
	go func() { _, _ = io.Copy(io.Discard, p.nc) }()
	select {
	case <-w.done:
		assert.ErrorIs(t, w.Err(), ErrKeepaliveTimeout)
	case <-time.After(3 * time.Second):
		t.Fatal("dead peer not detected")
	}
}

// A frame length outside libvirt's limits ends the connection before
// anything is allocated for it.
func TestWireHugeLengthIsRejectedWithoutAllocating(t *testing.T) {
	w, p := pipeWire(t, false, 0, 1)
	go func() {
		var lb [4]byte
		binary.BigEndian.PutUint32(lb[:], 0xffffff00)
		_, _ = p.nc.Write(lb[:])
	}()
	buf := make([]byte, 16)
	allocs := testing.AllocsPerRun(1, func() {
		_, err := w.Read(buf)
		require.ErrorIs(t, err, ErrBadPacket)
	})
	assert.LessOrEqual(t, allocs, 4.0)
	assert.Zero(t, cap(w.buf), "no frame buffer for a bogus length")
	<-w.done
}

// Our frames are only written between go-libvirt's: a PING that comes due
// while a call is half written waits for the frame's end.
func TestWireFramesNeverInterleave(t *testing.T) {
	w, p := pipeWire(t, false, 0, 1)
	call := frame(remoteProgram, 59, msgTypeCall, make([]byte, 100))
	go func() {
		_, _ = w.Write(call[:10])
		w.send(keepaliveFrame(keepaliveProcPing))
		_, _ = w.Write(call[10:])
	}()
	prog, proc, _ := p.readFrame(t)
	assert.Equal(t, uint32(remoteProgram), prog)
	assert.Equal(t, uint32(59), proc)
	prog, proc, _ = p.readFrame(t)
	assert.Equal(t, uint32(keepaliveProgram), prog)
	assert.Equal(t, uint32(keepaliveProcPing), proc)
}

// read_only sets VIR_CONNECT_RO in the CONNECT_OPEN call go-libvirt sends
// with flags 0.
func TestWireReadOnlySetsConnectOpenFlag(t *testing.T) {
	w, p := pipeWire(t, true, 0, 1)
	body := []byte{0, 0, 0, 1, 0, 0, 0, 4, 't', 'e', 's', 't', 0, 0, 0, 0} // name, flags 0
	go func() { _, _ = w.Write(frame(remoteProgram, procConnectOpen, msgTypeCall, body)) }()
	_, proc, got := p.readFrame(t)
	require.Equal(t, uint32(procConnectOpen), proc)
	assert.Equal(t, uint32(connectRO), binary.BigEndian.Uint32(got[len(got)-4:]))
}

// A call the daemon never answers fails after call_timeout (and ends the
// connection: go-libvirt calls cannot be abandoned).
func TestCallTimeoutEndsConnection(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	w := newWireConn(a, false, 0, 1)
	cl := &Client{w: w, opts: DialOptions{CallTimeout: 100 * time.Millisecond}}
	start := time.Now()
	err := cl.call(context.Background(), "connect_get_hostname", func() error {
		<-w.done // a reply that never comes; go-libvirt returns once the socket closes
		return io.EOF
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCallTimeout)
	assert.Contains(t, err.Error(), "no reply to connect_get_hostname within 100ms")
	assert.Less(t, time.Since(start), 2*time.Second)
}

// FuzzWireRead feeds arbitrary daemon output through the frame filter:
// it must end in an error or clean frames, never panic or over-allocate.
func FuzzWireRead(f *testing.F) {
	f.Add(frame(keepaliveProgram, keepaliveProcPing, msgTypeMessage, nil))
	f.Add(frame(remoteProgram, 59, 1, []byte{0, 0, 0, 1, 'h', 0, 0, 0}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		w := newWireConn(a, false, 0, 1)
		go func() { _, _ = b.Write(data); b.Close() }()
		buf := make([]byte, 4096)
		for {
			if _, err := w.Read(buf); err != nil {
				break
			}
		}
		assert.LessOrEqual(t, cap(w.buf), 2*len(data)+2<<20, "buffer follows the data received, not the length claimed")
		w.kill(ErrClosed)
	})
}

// A reply whose array count or string length claims more than the frame
// holds never reaches go-libvirt's decoder (which would allocate the
// claim): the call fails with ErrBadPacket and the connection ends.
func TestHostileReplyCountsAreRefusedBeforeDecoding(t *testing.T) {
	for name, body := range map[string][]byte{
		"list_all_domains count 2^31-1": {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		"hostname length 2^31-1":        {0x7f, 0xff, 0xff, 0xfc},
	} {
		t.Run(name, func(t *testing.T) {
			proc := uint32(procConnectListAll)
			if strings.HasPrefix(name, "hostname") {
				proc = procConnectGetHostname
			}
			w, p := pipeWire(t, false, 0, 1)
			go func() { _, _ = p.nc.Write(frame(remoteProgram, proc, msgTypeReply, body)) }()
			buf := make([]byte, 64)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := w.Read(buf)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrBadPacket)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
		})
	}
	// Every procedure's valid minimal reply passes; an unknown event is
	// dropped, an unknown reply refused.
	assert.NoError(t, checkBody(procConnectListAll, msgTypeReply, 0, []byte{0, 0, 0, 0, 0, 0, 0, 0}))
	assert.ErrorIs(t, checkBody(9999, msgTypeMessage, 0, nil), errUnknownProc)
}

// FuzzCheckBody: the reply walker never panics and never accepts a body
// whose claims exceed it.
func FuzzCheckBody(f *testing.F) {
	for _, p := range []uint32{procConnectListAll, procConnectGetAllStats, procDomainIfaceAddresses, procDomainGetCPUStats, procDomainMemoryStats, procAuthList, procEventLifecycle} {
		f.Add(p, uint32(msgTypeReply), uint32(0), []byte{0, 0, 0, 1, 0, 0, 0, 1, 'a', 0, 0, 0})
	}
	f.Add(uint32(1), uint32(msgTypeReply), uint32(msgStatusError), make([]byte, 40))
	f.Fuzz(func(t *testing.T, proc, typ, status uint32, body []byte) {
		_ = checkBody(proc%400, typ%4, status%3, body)
	})
}
