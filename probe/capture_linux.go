package probe

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// tapSock is one tap's AF_PACKET socket: the filter attached before it is
// bound (so no unfiltered frame is ever queued), kernel timestamps
// (SO_TIMESTAMPNS) on every frame, non-blocking and read through Go's
// netpoller.
type tapSock struct {
	name    string
	ifindex int
	fd      int
	f       *os.File
	rc      syscall.RawConn
	drops   uint64 // kernel drops already counted
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openTap(name string, ifindex int, filter []bpf.RawInstruction, rcvbuf int) (*tapSock, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap %s: socket: %w", name, err)
	}
	fail := func(stage string, err error) (*tapSock, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: %s: %w", name, stage, err)
	}
	if err := attachFilter(fd, filter); err != nil {
		return fail("attach filter", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	if rcvbuf > 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	return &tapSock{name: name, ifindex: ifindex, fd: fd, f: f, rc: rc}, nil
}

func (s *tapSock) close() error { return s.f.Close() }

// attachFilter attaches (or atomically replaces) fd's classic BPF filter.
func attachFilter(fd int, filter []bpf.RawInstruction) error {
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: (*unix.SockFilter)(unsafe.Pointer(&filter[0]))}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
}

// syncFilter attaches tr's filter if it changed (from any goroutine).
func (s *tapSock) syncFilter(tr *tracker) {
	_ = s.rc.Control(func(fd uintptr) { tr.syncFilter(int(fd), time.Now().UnixNano(), true) })
}

// kernelDrops returns the frames dropped since the last call
// (PACKET_STATISTICS resets on read).
func (s *tapSock) kernelDrops() uint64 {
	var n uint64
	_ = s.rc.Control(func(fd uintptr) {
		st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err == nil {
			n = uint64(st.Drops)
		}
	})
	return n
}

// reader holds one tap's receive state: buffers and the recvmsg header,
// reused for every frame (no allocation per frame).
type reader struct {
	buf [2048]byte
	oob [128]byte
	sa  unix.RawSockaddrLinklayer
	iov unix.Iovec
	msg unix.Msghdr
}

func (r *reader) init() {
	r.iov.Base = &r.buf[0]
	r.iov.SetLen(len(r.buf))
	r.msg.Name = (*byte)(unsafe.Pointer(&r.sa))
	r.msg.Iov = &r.iov
	r.msg.Iovlen = 1
	r.msg.Control = &r.oob[0]
}

// recv reads one frame: its length, or an errno (EAGAIN when none is queued).
func (r *reader) recv(fd uintptr) (int, syscall.Errno) {
	r.msg.Namelen = unix.SizeofSockaddrLinklayer
	r.msg.SetControllen(len(r.oob))
	r.msg.Flags = 0
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// timestamp finds SCM_TIMESTAMPNS in the control data (unix ns, 0 if absent).
func (r *reader) timestamp() int64 {
	c := r.oob[:r.msg.Controllen]
	for len(c) >= unix.SizeofCmsghdr {
		l := int(binary.NativeEndian.Uint64(c))
		lvl := int32(binary.NativeEndian.Uint32(c[8:]))
		typ := int32(binary.NativeEndian.Uint32(c[12:]))
		if l < unix.SizeofCmsghdr || l > len(c) {
			return 0
		}
		if lvl == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && l >= unix.SizeofCmsghdr+16 {
			sec := int64(binary.NativeEndian.Uint64(c[16:]))
			nsec := int64(binary.NativeEndian.Uint64(c[24:]))
			return sec*1e9 + nsec
		}
		adv := (l + 7) &^ 7
		if adv > len(c) {
			return 0
		}
		c = c[adv:]
	}
	return 0
}

// run reads frames until the socket is closed, handing each to tr.
func (s *tapSock) run(tr *tracker, m *metrics) {
	r := &reader{}
	r.init()
	var p pkt
	read := func(fd uintptr) bool {
		for {
			n, e := r.recv(fd)
			switch e {
			case 0:
			case unix.EAGAIN:
				tr.syncFilter(int(fd), time.Now().UnixNano(), false) // slots taken or freed during the burst
				return false
			case unix.EINTR:
				continue
			default:
				return true
			}
			m.frames.Inc()
			if n > len(r.buf) {
				n = len(r.buf)
			}
			p = pkt{}
			if !parse(r.buf[:n], &p) {
				m.parseErrors.Inc()
				continue
			}
			if p.ts = r.timestamp(); p.ts == 0 {
				p.ts = time.Now().UnixNano() // no kernel timestamp (never seen on Linux ≥ 2.6.22)
			}
			p.toVM = r.sa.Pkttype == unix.PACKET_OUTGOING
			tr.handle(&p)
		}
	}
	// Read returns when the socket is closed, or when read returned true
	// on a socket error (ENETDOWN when the tap goes away): the rescan then
	// closes the socket and reopens the tap if it is still there.
	_ = s.rc.Read(read)
}
