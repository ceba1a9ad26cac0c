package libvirt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// wireConn is the one piece of the protocol vmflow keeps for itself: a
// net.Conn between go-libvirt and the socket that adds what go-libvirt
// lacks (checked against go-libvirt v0.0.0-20261013170128-efbbdf578ac8):
//
//   - Keepalive (virkeepaliveprotocol.x). go-libvirt has no keepalive
//     program: it neither answers the daemon's pings nor notices a daemon
//     that froze with its socket open, and its calls have no timeout, so a
//     frozen daemon would hang the source forever. wireConn answers PING
//     with PONG, pings a silent daemon every KeepaliveInterval and closes
//     the connection after KeepaliveCount silent intervals; keepalive
//     frames never reach go-libvirt.
//   - A bound on frame lengths. go-libvirt allocates whatever length a
//     peer's frame header claims; wireConn rejects a frame outside
//     [28, 32 MiB + 4] (VIR_NET_MESSAGE_MAX) before allocating, ending the
//     connection with ErrBadPacket.
//   - Bounded XDR (validate.go). go-libvirt's decoder allocates whatever
//     an array count or string length claims; every frame's body is
//     checked against the reply layouts of the procedures vmflow calls
//     before go-libvirt decodes it.
//   - VIR_CONNECT_RO. go-libvirt's ConnectToURI always opens with flags 0;
//     for read_only connections wireConn sets the flag in the outgoing
//     CONNECT_OPEN call.
//
// Writes from go-libvirt pass through unchanged; wireConn tracks frame
// boundaries in the outgoing byte stream so that its own frames (PING,
// PONG) are only ever written between two of go-libvirt's.
type wireConn struct {
	net.Conn
	readOnly bool
	interval time.Duration
	count    int

	// Read side: only go-libvirt's reader goroutine calls Read.
	br    *bufio.Reader
	buf   []byte // reused frame buffer
	frame []byte // the frame being handed to go-libvirt
	off   int

	lastRx atomic.Int64 // unix nanoseconds of the last byte received

	// Write side.
	wmu      sync.Mutex
	need     int // bytes left of the outgoing frame being written
	lenBuf   [4]byte
	lenGot   int
	pending  []byte // our frames waiting for a frame boundary
	openSeen bool

	once  sync.Once
	done  chan struct{}
	cause atomic.Pointer[error]
}

// Protocol numbers wireConn needs (virnetprotocol.x, virkeepaliveprotocol.x,
// remote_protocol.x).
const (
	remoteProgram     = 0x20008086 // REMOTE_PROGRAM
	keepaliveProgram  = 0x6b656570 // KEEPALIVE_PROGRAM ("keep")
	keepaliveProcPing = 1
	keepaliveProcPong = 2
	procConnectOpen   = 1  // REMOTE_PROC_CONNECT_OPEN
	msgTypeCall       = 0  // VIR_NET_CALL
	msgTypeMessage    = 2  // VIR_NET_MESSAGE
	frameHeaderLen    = 28 // length word + virNetMessageHeader
	// MaxPacket bounds a whole frame including its length word: libvirt
	// 9.x uses VIR_NET_MESSAGE_MAX = 32 MiB (older releases 16 MiB).
	MaxPacket = 32<<20 + 4
	// featureProgramKeepalive is VIR_DRV_FEATURE_PROGRAM_KEEPALIVE: asking
	// CONNECT_SUPPORTS_FEATURE for it makes the daemon start pinging us.
	featureProgramKeepalive = 10
	connectRO               = 1 // VIR_CONNECT_RO
)

// Errors that end a connection.
var (
	ErrClosed           = errors.New("libvirt: connection closed")
	ErrKeepaliveTimeout = errors.New("libvirt: keepalive timeout, peer is dead")
	ErrBadPacket        = errors.New("libvirt: malformed packet")
	ErrCallTimeout      = errors.New("libvirt: call timeout")
)

func newWireConn(nc net.Conn, readOnly bool, interval time.Duration, count int) *wireConn {
	w := &wireConn{Conn: nc, readOnly: readOnly, interval: interval, count: count,
		br: bufio.NewReaderSize(nc, 64<<10), done: make(chan struct{})}
	if w.count < 1 {
		w.count = 1
	}
	w.lastRx.Store(time.Now().UnixNano())
	if interval > 0 {
		go w.keepalive()
	}
	return w
}

// kill ends the connection with err as its cause (the first cause wins).
func (w *wireConn) kill(err error) {
	w.once.Do(func() {
		w.cause.Store(&err)
		close(w.done)
		_ = w.Conn.Close()
	})
}

// Err is why the connection ended (nil while up).
func (w *wireConn) Err() error {
	if p := w.cause.Load(); p != nil {
		return *p
	}
	return nil
}

// Close is go-libvirt's (or our) orderly close.
func (w *wireConn) Close() error {
	w.kill(fmt.Errorf("%w: closed by client", ErrClosed))
	return nil
}

func (w *wireConn) Read(p []byte) (int, error) {
	for w.off >= len(w.frame) {
		if err := w.readFrame(); err != nil {
			if w.Err() == nil {
				w.kill(err)
			}
			return 0, w.Err()
		}
	}
	n := copy(p, w.frame[w.off:])
	w.off += n
	return n, nil
}

// readFrame reads the next frame; keepalive frames are handled here and
// not returned.
func (w *wireConn) readFrame() error {
	for {
		var lb [4]byte
		if _, err := io.ReadFull(w.br, lb[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n < frameHeaderLen || n > MaxPacket {
			return fmt.Errorf("%w: frame length %d", ErrBadPacket, n)
		}
		// Grow the buffer with the data actually received (1 MiB steps),
		// not with what the header claims.
		f := append(w.buf[:0], lb[:]...)
		for len(f) < int(n) {
			k := min(int(n)-len(f), 1<<20)
			f = slices.Grow(f, k)
			m, err := io.ReadFull(w.br, f[len(f):len(f)+k])
			f = f[:len(f)+m]
			w.buf = f[:0]
			if err != nil {
				return err
			}
		}
		w.buf = f[:0]
		w.lastRx.Store(time.Now().UnixNano())
		prog, proc := binary.BigEndian.Uint32(f[4:8]), binary.BigEndian.Uint32(f[12:16])
		typ, status := binary.BigEndian.Uint32(f[16:20]), binary.BigEndian.Uint32(f[24:28])
		switch {
		case prog == keepaliveProgram:
			if proc == keepaliveProcPing {
				w.send(keepaliveFrame(keepaliveProcPong))
			}
			continue
		case prog != remoteProgram:
			continue // QEMU or LXC program messages: vmflow asks for none
		}
		if err := checkBody(proc, typ, status, f[frameHeaderLen:]); err != nil {
			if typ == msgTypeMessage && errors.Is(err, errUnknownProc) {
				continue // an event vmflow did not register for
			}
			return fmt.Errorf("%w: procedure %d: %v", ErrBadPacket, proc, err)
		}
		w.frame, w.off = f, 0
		return nil
	}
}

func keepaliveFrame(proc uint32) []byte {
	f := make([]byte, frameHeaderLen)
	binary.BigEndian.PutUint32(f[0:], frameHeaderLen)
	binary.BigEndian.PutUint32(f[4:], keepaliveProgram)
	binary.BigEndian.PutUint32(f[8:], 1) // KEEPALIVE_PROTOCOL_VERSION
	binary.BigEndian.PutUint32(f[12:], proc)
	binary.BigEndian.PutUint32(f[16:], msgTypeMessage)
	return f // serial 0, status OK
}

func (w *wireConn) keepalive() {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		silent := time.Since(time.Unix(0, w.lastRx.Load()))
		if silent >= w.interval*time.Duration(w.count) {
			w.kill(fmt.Errorf("%w: no answer for %s", ErrKeepaliveTimeout, silent.Round(time.Millisecond)))
			return
		}
		if silent >= w.interval {
			w.send(keepaliveFrame(keepaliveProcPing))
		}
	}
}

// send writes one of our own frames at the next frame boundary.
func (w *wireConn) send(f []byte) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.need == 0 && w.lenGot == 0 {
		_, _ = w.Conn.Write(f)
		return
	}
	w.pending = append(w.pending, f...)
}

func (w *wireConn) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	out := p
	if w.readOnly && !w.openSeen && w.need == 0 && w.lenGot == 0 && len(p) >= frameHeaderLen {
		n := int(binary.BigEndian.Uint32(p[0:4]))
		if binary.BigEndian.Uint32(p[4:8]) == remoteProgram && binary.BigEndian.Uint32(p[12:16]) == procConnectOpen &&
			binary.BigEndian.Uint32(p[16:20]) == msgTypeCall && n >= frameHeaderLen+4 && len(p) >= n {
			// remote_connect_open_args { remote_string name; unsigned flags; }:
			// flags is the frame's last word.
			out = append([]byte(nil), p...)
			binary.BigEndian.PutUint32(out[n-4:n], binary.BigEndian.Uint32(out[n-4:n])|connectRO)
			w.openSeen = true
		}
	}
	n, err := w.Conn.Write(out)
	w.track(out[:n])
	if err == nil && w.need == 0 && w.lenGot == 0 && len(w.pending) > 0 {
		_, err = w.Conn.Write(w.pending)
		w.pending = w.pending[:0]
	}
	return n, err
}

// track follows frame boundaries in the outgoing stream.
func (w *wireConn) track(b []byte) {
	for len(b) > 0 {
		if w.need > 0 {
			k := min(w.need, len(b))
			w.need -= k
			b = b[k:]
			continue
		}
		k := copy(w.lenBuf[w.lenGot:], b)
		w.lenGot += k
		b = b[k:]
		if w.lenGot == 4 {
			w.need = int(binary.BigEndian.Uint32(w.lenBuf[:])) - 4
			w.lenGot = 0
			if w.need < 0 {
				w.need = 0
			}
		}
	}
}

// preDialed hands go-libvirt a connection we dialed ourselves (our URI
// parsing, TLS files and libvirt's TLS check byte).
type preDialed struct{ c net.Conn }

func (p preDialed) Dial() (net.Conn, error) { return p.c, nil }
