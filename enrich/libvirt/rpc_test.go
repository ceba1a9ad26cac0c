package libvirt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPacketRoundTrip(t *testing.T) {
	h := Header{Program: RemoteProgram, Version: 1, Procedure: ProcConnectGetHostname, Type: TypeReply, Serial: 42, Status: StatusOK}
	var w xdrWriter
	w.str("hv-1")
	pkt := EncodePacket(h, w.b)
	require.Equal(t, uint32(len(pkt)), binary.BigEndian.Uint32(pkt), "length word counts itself")
	require.Len(t, pkt, 4+24+8, "4 length + 24 header + 4 strlen + 4 padded bytes")

	got, body, err := DecodePacket(pkt)
	require.NoError(t, err)
	assert.Equal(t, h, got)
	r := &xdrReader{b: body}
	assert.Equal(t, "hv-1", r.str())
	require.NoError(t, r.err)

	// Through ReadPacket from a stream holding two packets back to back.
	stream := bytes.NewReader(append(append([]byte{}, pkt...), pkt...))
	for i := 0; i < 2; i++ {
		p, err := ReadPacket(stream, nil)
		require.NoError(t, err)
		assert.Equal(t, pkt, p)
	}
	_, err = ReadPacket(stream, nil)
	assert.ErrorIs(t, err, io.EOF)
}

func TestDecodePacketMalformed(t *testing.T) {
	good := EncodePacket(Header{Program: RemoteProgram, Version: 1, Type: TypeReply}, []byte{0, 0, 0, 1})
	cases := map[string][]byte{
		"empty":            {},
		"short header":     good[:20],
		"length too small": func() []byte { b := append([]byte{}, good...); binary.BigEndian.PutUint32(b, 8); return b }(),
		"length mismatch": func() []byte {
			b := append([]byte{}, good...)
			binary.BigEndian.PutUint32(b, uint32(len(b)+4))
			return b
		}(),
		"huge length": func() []byte { b := append([]byte{}, good...); binary.BigEndian.PutUint32(b, 0xfffffff0); return b }(),
	}
	for name, pkt := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := DecodePacket(pkt)
			assert.ErrorIs(t, err, ErrBadPacket)
		})
	}
}

func TestReadPacketHugeLengthDoesNotAllocate(t *testing.T) {
	var lb [4]byte
	binary.BigEndian.PutUint32(lb[:], 0x7fffffff)
	allocs := testing.AllocsPerRun(10, func() {
		_, err := ReadPacket(bytes.NewReader(lb[:]), nil)
		if !errors.Is(err, ErrBadPacket) {
			t.Fatalf("want ErrBadPacket, got %v", err)
		}
	})
	assert.Less(t, allocs, 10.0, "a huge length word must be refused before allocating")

	// A plausible length with a truncated body is an unexpected EOF.
	pkt := EncodePacket(Header{Program: RemoteProgram}, make([]byte, 100))
	_, err := ReadPacket(bytes.NewReader(pkt[:60]), nil)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestXDRReaderBounds(t *testing.T) {
	// A string claiming 1 GiB in a 12-byte body.
	var w xdrWriter
	w.u32(1 << 30)
	w.u32(0)
	w.u32(0)
	r := &xdrReader{b: w.b}
	assert.Equal(t, "", r.str())
	assert.Error(t, r.err)

	// An interface-address list claiming 2000 entries with no data.
	w = xdrWriter{}
	w.u32(2000)
	_, err := decodeInterfaceAddrs(w.b)
	assert.ErrorIs(t, err, ErrShort)

	// Over the protocol limit.
	w = xdrWriter{}
	w.u32(domainIfaceMax + 1)
	_, err = decodeInterfaceAddrs(w.b)
	assert.Error(t, err)
}

func TestDecodeInterfaceAddrs(t *testing.T) {
	var w xdrWriter
	w.u32(2)
	w.str("vnet0")
	hw := "52:54:00:00:00:01"
	w.optStr(&hw)
	w.u32(2)
	w.i32(0)
	w.str("10.0.0.5")
	w.u32(24)
	w.i32(1)
	w.str("fe80::1")
	w.u32(64)
	w.str("lo")
	w.optStr(nil)
	w.u32(0)
	got, err := decodeInterfaceAddrs(w.b)
	require.NoError(t, err)
	want := []InterfaceAddrs{
		{Name: "vnet0", HWAddr: hw, Addrs: []IPAddr{
			{Addr: netip.MustParseAddr("10.0.0.5"), Prefix: 24},
			{Addr: netip.MustParseAddr("fe80::1"), Prefix: 64}}},
		{Name: "lo"},
	}
	assert.Equal(t, want, got)
}

// fakeDaemon answers calls on the server end of a pipe.
type fakeDaemon struct {
	t  *testing.T
	nc net.Conn
}

func (f *fakeDaemon) read() (Header, []byte, error) {
	pkt, err := ReadPacket(f.nc, nil)
	if err != nil {
		return Header{}, nil, err
	}
	return DecodePacket(pkt)
}

func (f *fakeDaemon) send(h Header, body []byte) {
	_, _ = f.nc.Write(EncodePacket(h, body))
}

func pipeClient(t *testing.T, opts rpcOptions) (*Client, *fakeDaemon) {
	a, b := net.Pipe()
	cl := &Client{c: newConn(a, opts)}
	t.Cleanup(func() { cl.c.shutdown(ErrClosed); b.Close() })
	return cl, &fakeDaemon{t: t, nc: b}
}

func errorBody(code int32, msg string) []byte {
	var w xdrWriter
	w.i32(code)
	w.i32(10)
	w.optStr(&msg)
	w.i32(2)
	w.u32(0) // dom
	w.u32(0)
	w.u32(0)
	w.u32(0) // str1..3
	w.i32(0)
	w.i32(0)
	w.u32(0) // net
	return w.b
}

func TestErrorReplyCarriesLibvirtMessage(t *testing.T) {
	cl, fd := pipeClient(t, rpcOptions{})
	go func() {
		h, _, err := fd.read()
		if err != nil {
			return
		}
		h.Type, h.Status = TypeReply, StatusError
		fd.send(h, errorBody(ErrNoDomain, "Domain not found: no domain with matching name 'x'"))
	}()
	_, err := cl.LookupByName(context.Background(), "x")
	require.Error(t, err)
	assert.True(t, IsErrorCode(err, ErrNoDomain))
	assert.Contains(t, err.Error(), "no domain with matching name 'x'")
}

func TestRepliesRoutedBySerialAndEventsDelivered(t *testing.T) {
	cl, fd := pipeClient(t, rpcOptions{})
	go func() {
		// Read two calls, send an event, then answer them in reverse order.
		h1, _, err := fd.read()
		if err != nil {
			return
		}
		h2, _, err := fd.read()
		if err != nil {
			return
		}
		var ev xdrWriter
		ev.i32(3)
		ev.domain(Domain{Name: "vm1", ID: 4})
		ev.i32(LifecycleStarted)
		ev.i32(0)
		fd.send(Header{Program: RemoteProgram, Version: 1, Procedure: ProcDomainEventCallbackLifecycle, Type: TypeMessage}, ev.b)
		for _, h := range []Header{h2, h1} {
			var w xdrWriter
			w.str(map[uint32]string{h1.Serial: "first", h2.Serial: "second"}[h.Serial])
			h.Type = TypeReply
			fd.send(h, w.b)
		}
	}()
	res := make(chan string, 2)
	for i := 0; i < 2; i++ {
		go func() {
			s, err := cl.Hostname(context.Background())
			if err != nil {
				s = err.Error()
			}
			res <- s
		}()
		time.Sleep(20 * time.Millisecond) // keep serial order deterministic
	}
	got := []string{<-res, <-res}
	assert.ElementsMatch(t, []string{"first", "second"}, got)
	select {
	case ev := <-cl.Events():
		assert.Equal(t, EventLifecycle, ev.Kind)
		assert.Equal(t, "vm1", ev.Domain.Name)
		assert.Equal(t, int32(LifecycleStarted), ev.Event)
		assert.Equal(t, int32(3), ev.CallbackID)
	case <-time.After(2 * time.Second):
		t.Fatal("event not delivered")
	}
}

func TestKeepaliveAnswersPingAndDetectsDeadPeer(t *testing.T) {
	cl, fd := pipeClient(t, rpcOptions{KeepaliveInterval: 50 * time.Millisecond, KeepaliveCount: 3})
	// The daemon pings; the client must pong.
	fd.send(Header{Program: KeepaliveProgram, Version: 1, Procedure: KeepaliveProcPing, Type: TypeMessage}, nil)
	sawPong, sawPing := false, false
	deadline := time.Now().Add(2 * time.Second)
	for !(sawPong && sawPing) && time.Now().Before(deadline) {
		_ = fd.nc.SetReadDeadline(deadline)
		h, _, err := fd.read()
		require.NoError(t, err)
		require.Equal(t, uint32(KeepaliveProgram), h.Program)
		sawPong = sawPong || h.Procedure == KeepaliveProcPong
		sawPing = sawPing || h.Procedure == KeepaliveProcPing // its own ping after silence
	}
	assert.True(t, sawPong, "client answers the daemon's ping")
	assert.True(t, sawPing, "client pings a silent daemon")
	// Now stay silent (but keep draining): the client must give up.
	go func() { _, _ = io.Copy(io.Discard, fd.nc) }()
	select {
	case <-cl.Done():
		assert.ErrorIs(t, cl.Err(), ErrKeepaliveTimeout)
	case <-time.After(3 * time.Second):
		t.Fatal("dead peer not detected")
	}
	_, err := cl.Hostname(context.Background())
	assert.Error(t, err, "calls on a dead connection fail at once")
}

func TestMalformedReplyEndsConnectionWithError(t *testing.T) {
	cl, fd := pipeClient(t, rpcOptions{})
	go func() {
		if _, _, err := fd.read(); err != nil {
			return
		}
		var lb [4]byte
		binary.BigEndian.PutUint32(lb[:], 0xffffff00) // huge length
		_, _ = fd.nc.Write(lb[:])
	}()
	_, err := cl.Hostname(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrBadPacket)
	<-cl.Done()
}

func TestCallTimeout(t *testing.T) {
	cl, fd := pipeClient(t, rpcOptions{CallTimeout: 100 * time.Millisecond})
	go func() { _, _ = io.Copy(io.Discard, fd.nc) }()
	_, err := cl.Hostname(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no reply within")
}

// FuzzDecodePacket feeds arbitrary bytes to every decoder a daemon's reply
// reaches: framing, error bodies, event messages and address lists.
func FuzzDecodePacket(f *testing.F) {
	var w xdrWriter
	w.str("host")
	f.Add(EncodePacket(Header{Program: RemoteProgram, Version: 1, Procedure: ProcConnectGetHostname, Type: TypeReply}, w.b))
	f.Add(EncodePacket(Header{Program: RemoteProgram, Version: 1, Type: TypeReply, Status: StatusError}, errorBody(42, "nope")))
	var ev xdrWriter
	ev.i32(1)
	ev.domain(Domain{Name: "d"})
	ev.i32(2)
	ev.i32(0)
	f.Add(EncodePacket(Header{Program: RemoteProgram, Version: 1, Procedure: ProcDomainEventCallbackLifecycle, Type: TypeMessage}, ev.b))
	f.Add([]byte{0, 0, 0, 4})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadPacket(bytes.NewReader(data), nil)
		h, body, err := DecodePacket(data)
		if err != nil {
			body = data
		}
		_ = decodeError(body)
		_, _, _ = decodeEvent(h.Procedure, body)
		for _, p := range []int32{ProcDomainEventCallbackLifecycle, ProcDomainEventCallbackDeviceAdded, ProcDomainEventCallbackDeviceRemoved} {
			_, _, _ = decodeEvent(p, body)
		}
		_, _ = decodeInterfaceAddrs(body)
		r := &xdrReader{b: body}
		n := r.count(domainListMax, 24)
		for i := 0; i < n && r.err == nil; i++ {
			r.domain()
		}
	})
}

func TestDecodeDeviceEvents(t *testing.T) {
	dom := Domain{Name: "vm9", UUID: [16]byte{1, 2, 3}, ID: 9}
	// remote_domain_event_callback_device_removed_msg: callbackID, then the
	// legacy msg struct { dom; devAlias }.
	var rm xdrWriter
	rm.i32(7)
	rm.domain(dom)
	rm.str("net1")
	ev, known, err := decodeEvent(ProcDomainEventCallbackDeviceRemoved, rm.b)
	require.NoError(t, err)
	require.True(t, known)
	assert.Equal(t, Event{Kind: EventDeviceRemoved, CallbackID: 7, Domain: dom, DevAlias: "net1"}, ev)

	// remote_domain_event_callback_device_added_msg: callbackID, dom, devAlias.
	ev, known, err = decodeEvent(ProcDomainEventCallbackDeviceAdded, rm.b)
	require.NoError(t, err)
	require.True(t, known)
	assert.Equal(t, Event{Kind: EventDeviceAdded, CallbackID: 7, Domain: dom, DevAlias: "net1"}, ev)

	_, known, _ = decodeEvent(ProcDomainEventCallbackDeviceAdded+1000, rm.b)
	assert.False(t, known, "other event messages are ignored")
	_, _, err = decodeEvent(ProcDomainEventCallbackLifecycle, rm.b[:10])
	assert.Error(t, err, "truncated event")
}
