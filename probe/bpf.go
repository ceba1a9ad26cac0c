package probe

import (
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

func filterProgram() []insn {
	jeq := func(v uint32, t, f string) insn {
		return insn{ins: bpf.JumpIf{Cond: bpf.JumpEqual, Val: v}, jt: t, jf: f}
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
			jset(0x07, "accept", "drop"),                    // FIN|SYN|RST
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
	)
}

// Filter returns the assembled filter.
func Filter() ([]bpf.RawInstruction, error) { return assemble(filterProgram()) }
