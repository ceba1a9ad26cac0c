//go:build linux

package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listenUDP binds one SO_REUSEPORT UDP socket with the requested receive
// buffer and returns it with the buffer size the kernel granted.
func listenUDP(ctx context.Context, addr string, rcvbuf int) (*net.UDPConn, int, error) {
	var sockErr error
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		err := c.Control(func(fd uintptr) {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				sockErr = fmt.Errorf("SO_REUSEPORT: %w", err)
				return
			}
			if rcvbuf > 0 {
				// SO_RCVBUFFORCE ignores net.core.rmem_max but needs
				// CAP_NET_ADMIN; SO_RCVBUF is capped by rmem_max.
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
					if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
						sockErr = fmt.Errorf("SO_RCVBUF: %w", err)
					}
				}
			}
		})
		if err != nil {
			return err
		}
		return sockErr
	}}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, 0, err
	}
	conn := pc.(*net.UDPConn)
	got := 0
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		})
	}
	return conn, got, nil
}

const (
	skMeminfoDrops = 8 // SK_MEMINFO_DROPS
	skMeminfoVars  = 9 // SK_MEMINFO_VARS
)

// socketDrops reads the kernel's drop count of a socket (SO_MEMINFO): the
// datagrams it discarded because the receive buffer was full.
func socketDrops(rc syscall.RawConn) (uint32, bool) {
	var mem [skMeminfoVars]uint32
	ok := false
	err := rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(mem))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
		ok = e == 0 && l >= (skMeminfoDrops+1)*4
	})
	if err != nil || !ok {
		return 0, false
	}
	return mem[skMeminfoDrops], true
}

// mmsghdr is struct mmsghdr: the Go struct's size rounds up to its
// alignment like the C one.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// mmsgReader receives batches of datagrams with recvmmsg into fixed
// buffers without allocating (x/net's ReadBatch allocates an address per
// datagram). With UDP GRO on, the kernel may hand over several datagrams
// of one flow as one buffer plus their size (a UDP_GRO control message);
// the reader splits them again, so callers always see single datagrams.
type mmsgReader struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny
	bufs  [][]byte
	ctrl  [][]byte // nil without GRO
	max   int      // largest datagram accepted

	segs      []rseg // the datagrams of the last read
	coalesced int    // how many of them came in coalesced buffers

	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool
	eachFn func(fd uintptr) bool
	handle func(n int) bool // each's callback
}

type rseg struct {
	data  []byte
	from  netip.AddrPort
	trunc bool
}

// udpGROMaxSegs is the most datagrams the kernel coalesces (UDP_GRO_CNT_MAX).
const udpGROMaxSegs = 64

func newMMsgReader(conn *net.UDPConn, batch, maxDatagram int, gro bool) (*mmsgReader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	size := maxDatagram
	segs := batch
	if gro {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
		}); err != nil {
			return nil, err
		}
		if serr == nil {
			size = 65535 // a coalesced buffer can be this large
			segs = batch * udpGROMaxSegs
		} else {
			gro = false // kernel without UDP GRO: plain datagrams
		}
	}
	r := &mmsgReader{
		rc:    rc,
		hdrs:  make([]mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrAny, batch),
		bufs:  make([][]byte, batch),
		segs:  make([]rseg, segs),
		max:   maxDatagram,
	}
	// Buffers 64 KiB apart would all map to the same cache sets (the
	// kernel writes, and the handler reads, the first bytes of each): an
	// odd number of cache lines between them spreads them.
	stride := size + 7*64
	arena := make([]byte, batch*stride)
	if gro {
		r.ctrl = make([][]byte, batch)
		carena := make([]byte, batch*64)
		for i := range r.ctrl {
			r.ctrl[i] = carena[i*64 : (i+1)*64 : (i+1)*64]
		}
	}
	for i := range r.hdrs {
		r.bufs[i] = arena[i*stride : i*stride+size : i*stride+size]
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.hdrs[i].hdr.Iov = &r.iovs[i]
		r.hdrs[i].hdr.SetIovlen(1)
	}
	r.readFn = r.doRead
	r.eachFn = r.doEach
	return r, nil
}

func (r *mmsgReader) doRead(fd uintptr) bool {
	for i := range r.hdrs {
		h := &r.hdrs[i]
		h.hdr.Namelen = unix.SizeofSockaddrAny
		h.hdr.Flags = 0
		h.len = 0
		if r.ctrl != nil {
			h.hdr.Control = &r.ctrl[i][0]
			h.hdr.SetControllen(len(r.ctrl[i]))
		}
	}
	// MSG_DONTWAIT: the call never blocks (the netpoller waits), so it
	// need not tell the scheduler it is in a system call.
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])),
		uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
		return false // wait in the netpoller
	}
	r.n, r.errno = int(n), e
	return true
}

// read blocks until at least one datagram arrived; it returns how many
// datagrams (after splitting coalesced buffers) datagram(i) serves. A
// closed socket returns net.ErrClosed.
func (r *mmsgReader) read() (int, error) {
	r.n, r.errno = 0, 0
	if err := r.rc.Read(r.readFn); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	return r.split(), nil
}

// each reads batches and calls handle with each batch's datagram count
// (datagram(i) serves them) until handle returns false (each returns nil)
// or a read fails (a closed socket: net.ErrClosed).
//
// Unlike a loop of read calls, it does not ask the socket again after a
// short batch: recvmmsg returns fewer datagrams than it may only when it
// found the queue empty, and every datagram queued after that wakes the
// netpoller (edge triggered), so the reader waits at once. That saves the
// system call that would only return EAGAIN, once per wakeup.
func (r *mmsgReader) each(handle func(n int) bool) error {
	r.handle, r.errno = handle, 0
	err := r.rc.Read(r.eachFn)
	r.handle = nil
	if err != nil {
		return err
	}
	if r.errno != 0 {
		return r.errno
	}
	return nil
}

func (r *mmsgReader) doEach(fd uintptr) bool {
	for {
		r.n, r.errno = 0, 0
		if !r.doRead(fd) {
			return false // EAGAIN: wait in the netpoller
		}
		if r.errno != 0 {
			return true
		}
		if !r.handle(r.split()) {
			return true
		}
		if r.n < len(r.hdrs) {
			return false // the queue was empty: wait for the next datagram
		}
	}
}

// split makes the last read's messages into datagrams (coalesced buffers
// split) and returns their count.
func (r *mmsgReader) split() int {
	m := 0
	r.coalesced = 0
	for i := 0; i < r.n; i++ {
		h := &r.hdrs[i]
		n := min(int(h.len), len(r.bufs[i]))
		data := r.bufs[i][:n]
		from := sockaddrToAddrPort(&r.names[i], h.hdr.Namelen)
		trunc := h.hdr.Flags&unix.MSG_TRUNC != 0
		gso := 0
		if r.ctrl != nil && !trunc {
			gso = groSize(r.ctrl[i][:min(int(h.hdr.Controllen), len(r.ctrl[i]))])
		}
		if gso <= 0 || gso >= n {
			r.segs[m] = rseg{data, from, trunc || n > r.max}
			m++
			continue
		}
		m0 := m
		for off := 0; off < n && m < len(r.segs); off += gso {
			seg := data[off:min(off+gso, n)]
			r.segs[m] = rseg{seg, from, len(seg) > r.max}
			m++
		}
		r.coalesced += m - m0
	}
	return m
}

// groSize returns the segment size of a UDP_GRO control message, or 0.
func groSize(ctrl []byte) int {
	for off := 0; off+unix.SizeofCmsghdr <= len(ctrl); {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[off]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || off+l > len(ctrl) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(2) {
			d := ctrl[off+unix.CmsgLen(0):]
			if l >= unix.CmsgLen(4) {
				return int(binary.NativeEndian.Uint32(d))
			}
			return int(binary.NativeEndian.Uint16(d))
		}
		off += unix.CmsgSpace(l - unix.CmsgLen(0))
	}
	return 0
}

// datagram returns the i-th datagram of the last read: payload, source,
// and whether it was truncated (larger than the accepted maximum).
func (r *mmsgReader) datagram(i int) ([]byte, netip.AddrPort, bool) {
	s := &r.segs[i]
	return s.data, s.from, s.trunc
}

func sockaddrToAddrPort(sa *unix.RawSockaddrAny, l uint32) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		if l < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}
		}
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), port)
	case unix.AF_INET6:
		if l < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

var errClosed = net.ErrClosed

func isClosed(err error) bool { return errors.Is(err, errClosed) }
