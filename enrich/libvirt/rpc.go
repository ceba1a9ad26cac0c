package libvirt

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the RPC layer.
var (
	ErrClosed           = errors.New("libvirt: connection closed")
	ErrKeepaliveTimeout = errors.New("libvirt: keepalive timeout, peer is dead")
	ErrBadPacket        = errors.New("libvirt: malformed packet")
)

func asError(err error, target **Error) bool { return errors.As(err, target) }

// EncodePacket frames one message: a 4-byte length that counts itself,
// the 24-byte header, then the XDR body.
func EncodePacket(h Header, body []byte) []byte {
	b := make([]byte, 4+headerSize, 4+headerSize+len(body))
	binary.BigEndian.PutUint32(b[0:], uint32(4+headerSize+len(body)))
	putHeader(b[4:], h)
	return append(b, body...)
}

func putHeader(b []byte, h Header) {
	binary.BigEndian.PutUint32(b[0:], h.Program)
	binary.BigEndian.PutUint32(b[4:], h.Version)
	binary.BigEndian.PutUint32(b[8:], uint32(h.Procedure))
	binary.BigEndian.PutUint32(b[12:], uint32(h.Type))
	binary.BigEndian.PutUint32(b[16:], h.Serial)
	binary.BigEndian.PutUint32(b[20:], uint32(h.Status))
}

// DecodePacket decodes one whole framed packet (length word included). The
// returned body aliases pkt.
func DecodePacket(pkt []byte) (Header, []byte, error) {
	var h Header
	if len(pkt) < 4+headerSize {
		return h, nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrBadPacket, len(pkt), 4+headerSize)
	}
	n := binary.BigEndian.Uint32(pkt)
	if err := checkLength(n); err != nil {
		return h, nil, err
	}
	if int(n) != len(pkt) {
		return h, nil, fmt.Errorf("%w: length word %d but packet has %d bytes", ErrBadPacket, n, len(pkt))
	}
	b := pkt[4:]
	h.Program = binary.BigEndian.Uint32(b[0:])
	h.Version = binary.BigEndian.Uint32(b[4:])
	h.Procedure = int32(binary.BigEndian.Uint32(b[8:]))
	h.Type = int32(binary.BigEndian.Uint32(b[12:]))
	h.Serial = binary.BigEndian.Uint32(b[16:])
	h.Status = int32(binary.BigEndian.Uint32(b[20:]))
	return h, b[headerSize:], nil
}

func checkLength(n uint32) error {
	if n < 4+headerSize {
		return fmt.Errorf("%w: length %d shorter than a header", ErrBadPacket, n)
	}
	if n > MaxPacket {
		return fmt.Errorf("%w: length %d over the %d byte limit", ErrBadPacket, n, MaxPacket)
	}
	return nil
}

// ReadPacket reads one framed packet from r into buf (grown as needed, never
// beyond MaxPacket) and returns the packet bytes.
func ReadPacket(r io.Reader, buf []byte) ([]byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if err := checkLength(n); err != nil {
		return nil, err
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	copy(buf, lb[:])
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// rpcOptions tune a conn.
type rpcOptions struct {
	KeepaliveInterval time.Duration // 0 disables our pings (we still answer)
	KeepaliveCount    int
	CallTimeout       time.Duration
	EventBuffer       int
	Observe           func(proc int32, d time.Duration, err error)
	// OnEventDrop is called when the event channel is full and an event
	// is dropped (the consumer must resync).
	OnEventDrop func()
}

type reply struct {
	h    Header
	body []byte
	err  error
}

// conn is the RPC layer over one transport connection: serial numbers,
// a reader goroutine that routes replies to waiting calls and events to a
// channel, and keepalive.
type conn struct {
	nc   net.Conn
	opts rpcOptions

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	serial  uint32
	pending map[uint32]chan reply
	closed  bool
	err     error

	done     chan struct{}
	events   chan Event
	lastRecv atomic.Int64 // unix nanos
	dropped  atomic.Uint64
	badMsgs  atomic.Uint64
}

func newConn(nc net.Conn, opts rpcOptions) *conn {
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 1024
	}
	if opts.KeepaliveCount <= 0 {
		opts.KeepaliveCount = 5
	}
	c := &conn{
		nc:      nc,
		opts:    opts,
		pending: make(map[uint32]chan reply),
		done:    make(chan struct{}),
		events:  make(chan Event, opts.EventBuffer),
	}
	c.lastRecv.Store(time.Now().UnixNano())
	go c.readLoop()
	if opts.KeepaliveInterval > 0 {
		go c.keepaliveLoop()
	}
	return c
}

// shutdown closes the transport and fails every pending call with err.
func (c *conn) shutdown(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = err
	pend := c.pending
	c.pending = nil
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, ch := range pend {
		ch <- reply{err: err}
	}
	close(c.done)
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var buf []byte
	for {
		pkt, err := ReadPacket(br, buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = fmt.Errorf("%w: %v", ErrClosed, err)
			}
			c.shutdown(err)
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		h, body, err := DecodePacket(pkt)
		if err != nil {
			c.shutdown(err)
			return
		}
		switch {
		case h.Program == KeepaliveProgram:
			if h.Type == TypeMessage && h.Procedure == KeepaliveProcPing {
				go c.sendKeepalive(KeepaliveProcPong)
			}
		case h.Program != RemoteProgram:
			c.badMsgs.Add(1)
		case h.Type == TypeReply || h.Type == TypeReplyWithFDs:
			c.mu.Lock()
			ch, ok := c.pending[h.Serial]
			delete(c.pending, h.Serial)
			c.mu.Unlock()
			if !ok {
				c.badMsgs.Add(1) // late reply of a timed-out call
				continue
			}
			r := reply{h: h}
			if h.Status == StatusError {
				r.err = decodeError(body)
			} else {
				r.body = append([]byte(nil), body...)
			}
			ch <- r
		case h.Type == TypeMessage:
			if h.Procedure == ProcConnectEventConnectionClosed {
				c.shutdown(fmt.Errorf("%w: daemon closed the connection", ErrClosed))
				return
			}
			ev, known, err := decodeEvent(h.Procedure, body)
			if !known || err != nil {
				c.badMsgs.Add(1)
				continue
			}
			select {
			case c.events <- ev:
			default:
				c.dropped.Add(1)
				if c.opts.OnEventDrop != nil {
					c.opts.OnEventDrop()
				}
			}
		default:
			c.badMsgs.Add(1)
		}
		// Reuse the read buffer unless it grew very large.
		if cap(pkt) <= 1<<20 {
			buf = pkt[:0]
		} else {
			buf = nil
		}
	}
}

// write sends one packet; a zero deadline means none. A write that cannot
// finish by its deadline (peer not reading) fails and ends the connection.
func (c *conn) write(pkt []byte, deadline time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(deadline)
	_, err := c.nc.Write(pkt)
	return err
}

func (c *conn) callDeadline(ctx context.Context) time.Time {
	var dl time.Time
	if c.opts.CallTimeout > 0 {
		dl = time.Now().Add(c.opts.CallTimeout)
	}
	if cd, ok := ctx.Deadline(); ok && (dl.IsZero() || cd.Before(dl)) {
		dl = cd
	}
	return dl
}

func (c *conn) sendKeepalive(proc int32) {
	pkt := EncodePacket(Header{Program: KeepaliveProgram, Version: KeepaliveProtocolVersion,
		Procedure: proc, Type: TypeMessage}, nil)
	// Bound the write so a peer that stopped reading is detected too.
	iv := c.opts.KeepaliveInterval
	if iv <= 0 {
		iv = 5 * time.Second
	}
	if err := c.write(pkt, time.Now().Add(iv*time.Duration(c.opts.KeepaliveCount))); err != nil {
		c.shutdown(fmt.Errorf("%w: keepalive write: %v", ErrClosed, err))
	}
}

func (c *conn) keepaliveLoop() {
	iv := c.opts.KeepaliveInterval
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			idle := now.Sub(time.Unix(0, c.lastRecv.Load()))
			if idle > iv*time.Duration(c.opts.KeepaliveCount) {
				c.shutdown(ErrKeepaliveTimeout)
				return
			}
			if idle >= iv {
				c.sendKeepalive(KeepaliveProcPing)
			}
		}
	}
}

// call sends a CALL of the remote program and waits for its reply body.
func (c *conn) call(ctx context.Context, proc int32, args []byte) ([]byte, error) {
	start := time.Now()
	body, err := c.doCall(ctx, proc, args)
	if c.opts.Observe != nil {
		c.opts.Observe(proc, time.Since(start), err)
	}
	return body, err
}

func (c *conn) doCall(ctx context.Context, proc int32, args []byte) ([]byte, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.closed {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.serial++
	serial := c.serial
	c.pending[serial] = ch
	c.mu.Unlock()

	pkt := EncodePacket(Header{Program: RemoteProgram, Version: RemoteProtocolVersion,
		Procedure: proc, Type: TypeCall, Serial: serial, Status: StatusOK}, args)
	if err := c.write(pkt, c.callDeadline(ctx)); err != nil {
		c.shutdown(fmt.Errorf("%w: write: %v", ErrClosed, err))
		return nil, c.closeErr()
	}
	var timeout <-chan time.Time
	if c.opts.CallTimeout > 0 {
		t := time.NewTimer(c.opts.CallTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		return r.body, nil
	case <-ctx.Done():
		c.forget(serial)
		return nil, ctx.Err()
	case <-timeout:
		c.forget(serial)
		return nil, fmt.Errorf("libvirt: procedure %d: no reply within %s", proc, c.opts.CallTimeout)
	}
}

func (c *conn) forget(serial uint32) {
	c.mu.Lock()
	if c.pending != nil {
		delete(c.pending, serial)
	}
	c.mu.Unlock()
}

func (c *conn) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return ErrClosed
}
