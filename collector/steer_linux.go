//go:build linux

package collector

import (
	"fmt"
	"net"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// skfNetOff is SKF_NET_OFF: classic BPF loads at this offset read the
// network (IP) header instead of the data the program is given (for a
// reuseport program, the UDP payload).
const skfNetOff = 0xfff00000 // -0x100000

// steerProgram picks one of n sockets by a hash of the datagram's IP
// source address (IPv4, or the four words of an IPv6 address xor-ed), so
// that every datagram of an exporter address lands on the same socket,
// whatever its source port. The hash is murmur3's 32-bit finaliser, so
// that neighbouring addresses spread.
func steerProgram(n int) ([]bpf.RawInstruction, error) {
	net32 := func(off uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: skfNetOff + off, Size: 4} }
	xorShift := func(s uint32) []bpf.Instruction {
		return []bpf.Instruction{
			bpf.TAX{},
			bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: s},
			bpf.ALUOpX{Op: bpf.ALUOpXor},
		}
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: skfNetOff, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 2},
		net32(12), // IPv4 source
		bpf.Jump{Skip: 10},
		net32(8), // IPv6 source
		bpf.TAX{},
		net32(12),
		bpf.ALUOpX{Op: bpf.ALUOpXor},
		bpf.TAX{},
		net32(16),
		bpf.ALUOpX{Op: bpf.ALUOpXor},
		bpf.TAX{},
		net32(20),
		bpf.ALUOpX{Op: bpf.ALUOpXor},
	}
	prog = append(prog, xorShift(16)...)
	prog = append(prog, bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0x85ebca6b})
	prog = append(prog, xorShift(13)...)
	prog = append(prog, bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0xc2b2ae35})
	prog = append(prog, xorShift(16)...)
	prog = append(prog,
		bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(n)},
		bpf.RetA{},
	)
	return bpf.Assemble(prog)
}

// steerByAddress attaches steerProgram to the SO_REUSEPORT group of conn
// (n sockets): from then on the kernel, not its 4-tuple hash, picks the
// socket of each datagram. A program index past the group falls back to
// the kernel's hash, so a group that is still filling up is safe.
func steerByAddress(conn *net.UDPConn, n int) error {
	raw, err := steerProgram(n)
	if err != nil {
		return fmt.Errorf("steering program: %w", err)
	}
	filt := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filt[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filt)), Filter: &filt[0]}
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_ATTACH_REUSEPORT_CBPF: %w", serr)
	}
	return nil
}
