package probe

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// The classic BPF filter attached to every tap socket: the kernel passes
// only Ethernet frames (untagged, or with one 802.1Q tag in the frame)
// carrying
//
//   - TCP (IPv4, first fragment; IPv6 without extension headers) with SYN,
//     FIN or RST set,
//   - ICMPv4 echo request/reply, destination unreachable, time exceeded,
//     parameter problem; ICMPv6 types 1–4 (errors) and 128/129 (echo),
//
// and only the first snapLen bytes of them. Data segments and pure ACKs
// never reach user space.
const snapLen = 128

// label-resolving assembler: jumps name their targets.
type insn struct {
	label      string // this instruction's label ("" none)
	ins        bpf.Instruction
	jt, jf, ja string // jump targets by label (conditional jt/jf, or ja)
}

func assemble(prog []insn) ([]bpf.RawInstruction, error) {
	at := map[string]int{}
	for i, p := range prog {
		if p.label != "" {
			at[p.label] = i
		}
	}
	skip := func(from int, l string) (uint8, error) {
		if l == "" {
			return 0, nil
		}
		to, ok := at[l]
		if !ok || to <= from || to-from-1 > 255 {
			return 0, fmt.Errorf("bpf: bad jump to %q from %d", l, from)
		}
		return uint8(to - from - 1), nil
	}
	out := make([]bpf.Instruction, len(prog))
	for i, p := range prog {
		ins := p.ins
		switch j := ins.(type) {
		case bpf.JumpIf:
			var err error
			if j.SkipTrue, err = skip(i, p.jt); err != nil {
				return nil, err
			}
			if j.SkipFalse, err = skip(i, p.jf); err != nil {
				return nil, err
			}
			ins = j
		case bpf.Jump:
			s, err := skip(i, p.ja)
			if err != nil {
				return nil, err
			}
			j.Skip = uint32(s)
			ins = j
		}
		out[i] = ins
	}
	return bpf.Assemble(out)
}

// filterProgram is the static filter. Untagged IPv4 TCP segments without
// SYN/FIN/RST (pure ACKs and data) jump to its last instruction, "dyn4":
// drop in the static filter; in a tap's dynamic filter (ackFilter) the
// 4-tuple slots replace it, so that only the final ACKs of handshakes
// awaited at the tap pass.
func filterProgram() []insn {
	jeq := func(v uint32, t, f string) insn {
		return insn{ins: bpf.JumpIf{Cond: bpf.JumpEqual, Val: v}, jt: t, jf: f}
	}
	// dyn4: where an untagged IPv4 TCP segment without SYN/FIN/RST goes.
	dyn4 := func(sfx string) string {
		if sfx == "" {
			return "dyn4"
		}
		return "drop"
	}
	jset := func(v uint32, t, f string) insn {
		return insn{ins: bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: v}, jt: t, jf: f}
	}
	// l3 is the IPv4/IPv6 test for an L3 header at offset eth; labels
	// are suffixed so that the untagged and the 802.1Q copies coexist.
	l3 := func(eth uint32, sfx string) []insn {
		return []insn{
			{label: "l3" + sfx, ins: bpf.LoadAbsolute{Off: eth - 2, Size: 2}},
			jeq(0x0800, "ip4"+sfx, ""),
			jeq(0x86dd, "ip6"+sfx, "drop"),

			{label: "ip4" + sfx, ins: bpf.LoadAbsolute{Off: eth + 6, Size: 2}},
			jset(0x1fff, "drop", ""), // not the first fragment
			{ins: bpf.LoadAbsolute{Off: eth + 9, Size: 1}},
			jeq(6, "tcp4"+sfx, ""),
			jeq(1, "icmp4"+sfx, "drop"),
			{label: "tcp4" + sfx, ins: bpf.LoadMemShift{Off: eth}},
			{ins: bpf.LoadIndirect{Off: eth + 13, Size: 1}}, // TCP flags
			jset(0x07, "accept", dyn4(sfx)),                 // FIN|SYN|RST
			{label: "icmp4" + sfx, ins: bpf.LoadMemShift{Off: eth}},
			{ins: bpf.LoadIndirect{Off: eth, Size: 1}}, // ICMP type
			jeq(0, "accept", ""),
			jeq(8, "accept", ""),
			jeq(3, "accept", ""),
			jeq(11, "accept", ""),
			jeq(12, "accept", "drop"),

			{label: "ip6" + sfx, ins: bpf.LoadAbsolute{Off: eth + 6, Size: 1}}, // next header
			jeq(6, "tcp6"+sfx, ""),
			jeq(58, "icmp6"+sfx, "drop"),
			{label: "tcp6" + sfx, ins: bpf.LoadAbsolute{Off: eth + 40 + 13, Size: 1}},
			jset(0x07, "accept", "drop"),
			{label: "icmp6" + sfx, ins: bpf.LoadAbsolute{Off: eth + 40, Size: 1}},
			jeq(128, "accept", ""),
			jeq(129, "accept", ""),
			{ins: bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 1}, jt: "drop"},
			{ins: bpf.JumpIf{Cond: bpf.JumpLessOrEqual, Val: 4}, jt: "accept", jf: "drop"},
		}
	}
	prog := []insn{
		{ins: bpf.LoadAbsolute{Off: 12, Size: 2}},
		jeq(0x8100, "l3q", "l3"), // one 802.1Q tag (when the kernel left it in the frame)
	}
	prog = append(prog, l3(14, "")...)
	prog = append(prog, l3(18, "q")...)
	return append(prog,
		insn{label: "accept", ins: bpf.RetConstant{Val: snapLen}},
		insn{label: "drop", ins: bpf.RetConstant{Val: 0}},
		// the dynamic filter's slots follow (ackFilter); the static
		// filter ends in this unreachable instruction.
		insn{label: "dyn4", ins: bpf.RetConstant{Val: 0}},
	)
}

// Filter returns the assembled static filter.
func Filter() ([]bpf.RawInstruction, error) { return assemble(filterProgram()) }

// MaxAckSlots bounds probe.ack_slots (the slots' jumps must stay within a
// classic BPF conditional jump's 255 instructions).
const MaxAckSlots = 32

// slotLen is the instructions per 4-tuple slot.
const slotLen = 6

// ackFilter is one tap's dynamic filter: the static filter whose last
// instruction ("dyn4") is replaced by one 6-instruction block per awaited
// 4-tuple (ports, source and destination IPv4 compared), then drop and
// accept. The program holds only the slots in use, so that its size (and
// the kernel's cost to check and compile it at each attach: about 50 µs for
// the static filter here, 140 µs with 16 slots) stays small. It is built in
// place, without allocation.
type ackFilter struct {
	static []bpf.RawInstruction
	prog   []bpf.RawInstruction // static[:len-1] + slots + drop + accept
	keys   []tkey
	used   []bool
	n      int // slots in use
	built  bool
}

// raw instructions of a slot block
var (
	rawLdPorts = mustRaw(bpf.LoadIndirect{Off: 14, Size: 4}) // X = IPv4 header length
	rawLdSrc   = mustRaw(bpf.LoadAbsolute{Off: 14 + 12, Size: 4})
	rawLdDst   = mustRaw(bpf.LoadAbsolute{Off: 14 + 16, Size: 4})
	rawJeq     = mustRaw(bpf.JumpIf{Cond: bpf.JumpEqual})
	rawDrop    = mustRaw(bpf.RetConstant{Val: 0})
	rawAccept  = mustRaw(bpf.RetConstant{Val: snapLen})
)

func mustRaw(i bpf.Instruction) bpf.RawInstruction {
	r, err := i.Assemble()
	if err != nil {
		panic(err)
	}
	return r
}

func newAckFilter(static []bpf.RawInstruction, slots int) (*ackFilter, error) {
	if slots <= 0 {
		return nil, nil
	}
	if slots > MaxAckSlots {
		return nil, fmt.Errorf("ack filter: %d slots, at most %d", slots, MaxAckSlots)
	}
	prog := make([]bpf.RawInstruction, len(static)-1, len(static)-1+slots*slotLen+2)
	copy(prog, static)
	return &ackFilter{static: static, prog: prog, keys: make([]tkey, slots), used: make([]bool, slots)}, nil
}

// add puts k (client → server 4-tuple, IPv4) into a free slot: false when
// all are in use.
func (f *ackFilter) add(k tkey) bool {
	for i, u := range f.used {
		if !u {
			f.keys[i], f.used[i] = k, true
			f.n++
			f.built = false
			return true
		}
	}
	return false
}

// remove frees k's slot (if it has one).
func (f *ackFilter) remove(k tkey) bool {
	for i, u := range f.used {
		if u && f.keys[i] == k {
			f.used[i] = false
			f.n--
			f.built = false
			return true
		}
	}
	return false
}

// current is the program to attach: the static one when no slot is used.
func (f *ackFilter) current() []bpf.RawInstruction {
	if f.n == 0 {
		return f.static
	}
	if f.built {
		return f.prog
	}
	p := f.prog[:len(f.static)-1]
	j := 0
	for i, u := range f.used {
		if !u {
			continue
		}
		k := f.keys[i]
		a, b := k.a.As4(), k.b.As4()
		jp, js, jd := rawJeq, rawJeq, rawJeq
		jp.K, jp.Jf = uint32(k.ap)<<16|uint32(k.bp), 4
		js.K, js.Jf = binary.BigEndian.Uint32(a[:]), 2
		jd.K, jd.Jt = binary.BigEndian.Uint32(b[:]), uint8(slotLen*(f.n-j)-5) // → accept
		p = append(p, rawLdPorts, jp, rawLdSrc, js, rawLdDst, jd)
		j++
	}
	f.prog = append(p, rawDrop, rawAccept)
	f.built = true
	return f.prog
}
