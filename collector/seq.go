package collector

// Loss estimation from export sequence numbers.
//
// The tracker keeps the next expected sequence number (the highest seen plus
// what that datagram counts: 1 for sFlow/NetFlow v9, its data records for
// IPFIX). A datagram ahead of it opens a gap whose size is counted as lost at
// once and remembered (a bounded list of recent gaps). A datagram behind it
// that falls inside a remembered gap was late, not lost: its units are
// subtracted from the loss again, so reordering within the window never
// shows as loss. A datagram behind it outside every gap is a duplicate and
// ignored. A jump forward beyond maxJump, a jump backwards beyond the
// window, an sFlow uptime going backwards while the sequence advances, or
// (behind the sequence) an uptime far older than reordering explains
// (60 s inside a gap, 1 s outside) means the exporter restarted:
// Restarts++, the tracker resynchronises and no loss is counted.
//
// An IPFIX message whose record count is unknown (records < 0: a data set
// whose template the decoder does not know yet, so its records could not be
// counted) sets the expected sequence to its own and lets the next message
// ahead of it resynchronise without counting the difference as loss.
//
// Late datagrams are "reordered" only when they also arrived (in socket
// order) after the datagram that opened their gap; datagrams overtaken only
// inside vmflow's own worker pool fill their gap silently.

const (
	seqMaxGaps = 64
	// In messages (scaled by records per message for IPFIX).
	seqMaxJump = 100000
	// A datagram further back than this (that arrived after the newest
	// one) means a restart.
	seqWindow = 4096
	// Gaps further back than this are forgotten (their loss is final).
	// Larger than seqWindow: a worker descheduled for a while still fills
	// its gap when it catches up.
	seqGapMemory = 1 << 16
	// A late sFlow datagram whose uptime is this much older than the
	// newest one's is taken for a restart rather than reordering.
	seqUptimeSlackMs = 60000
	// A datagram behind the expected sequence that fills no gap is a
	// duplicate only if its uptime is this close to the newest one's.
	seqDupUptimeMs = 1000
)

type seqGap struct{ lo, hi uint32 } // [lo, hi)

type seqTracker struct {
	init        bool
	free        bool // the newest message's record count was unknown
	expected    uint32
	lastSeq     uint32
	uptime      uint32
	highArrival uint64

	gaps  [seqMaxGaps]seqGap
	ngaps int

	lost      uint64 // units (datagrams or records)
	reordered uint64
	restarts  uint64
	dups      uint64

	// for records per message (IPFIX)
	msgs    uint64
	records uint64
}

// update feeds one datagram's sequence information. arrival is the
// datagram's receive order (monotonic per listener).
func (t *seqTracker) update(kind SeqKind, seq uint32, records int, uptime uint32, arrival uint64) {
	if kind == SeqNone {
		return
	}
	unknown := false
	if records < 0 {
		records, unknown = 0, true
	}
	if kind == SeqDatagrams {
		records, unknown = 1, false
	}
	r := uint32(records)
	if records > 0 {
		t.msgs++
		t.records += uint64(records)
	}
	if !t.init {
		t.resync(seq, r, unknown, uptime, arrival)
		t.init = true
		return
	}
	scale := int64(1)
	if kind == SeqRecords && t.msgs > 0 {
		scale = int64((t.records + t.msgs - 1) / t.msgs)
		if scale < 1 {
			scale = 1
		}
	}
	d := int64(int32(seq - t.expected))
	uptimeKnown := kind == SeqDatagrams && t.uptime != 0 && uptime != 0
	switch {
	case d >= 0:
		if d > seqMaxJump*scale || (uptimeKnown && uptime < t.uptime && t.uptime-uptime < 1<<31) {
			t.restart(seq, r, unknown, uptime, arrival)
			return
		}
		if d > 0 && !t.free {
			t.lost += uint64(d)
			t.addGap(t.expected, seq, scale)
		}
		t.free = unknown
		t.expected = seq + r
		t.lastSeq = seq
		t.uptime = uptime
		t.highArrival = arrival
	default:
		// Arrived before the newest datagram but handled after it: only
		// overtaken in our own worker pool, so never a restart.
		overtaken := arrival < t.highArrival
		if !overtaken && (-d > seqWindow*scale || (uptimeKnown && t.uptime-uptime > seqUptimeSlackMs)) {
			t.restart(seq, r, unknown, uptime, arrival)
			return
		}
		if unknown {
			// Late, of unknown size: take it to cover the rest of the
			// gap it falls in (what the next message did not).
			if hi, ok := t.gapEnd(seq); ok && t.fill(seq, hi-seq) {
				t.lost -= uint64(hi - seq)
			}
			return
		}
		if r == 0 {
			return // a late template-only message covers nothing
		}
		if t.fill(seq, r) {
			t.lost -= uint64(r)
			if !overtaken {
				t.reordered++
			}
			return
		}
		if !overtaken && uptimeKnown && t.uptime-uptime > seqDupUptimeMs {
			// Not late (no gap to fill) and older than any reordering:
			// the agent restarted with a sequence below the old one.
			t.restart(seq, r, unknown, uptime, arrival)
			return
		}
		t.dups++
	}
}

func (t *seqTracker) resync(seq, r uint32, unknown bool, uptime uint32, arrival uint64) {
	t.free = unknown
	t.expected = seq + r
	t.lastSeq = seq
	t.uptime = uptime
	t.highArrival = arrival
	t.ngaps = 0
}

func (t *seqTracker) restart(seq, r uint32, unknown bool, uptime uint32, arrival uint64) {
	t.restarts++
	t.resync(seq, r, unknown, uptime, arrival)
}

// addGap remembers [lo, hi), forgetting gaps that left the window and, when
// full, the oldest one (its loss then stays counted).
func (t *seqTracker) addGap(lo, hi uint32, scale int64) {
	limit := uint32(seqGapMemory * scale)
	j := 0
	for i := 0; i < t.ngaps; i++ {
		g := t.gaps[i]
		if hi-g.hi > limit {
			continue
		}
		t.gaps[j] = g
		j++
	}
	t.ngaps = j
	if t.ngaps == seqMaxGaps {
		copy(t.gaps[:], t.gaps[1:])
		t.ngaps--
	}
	t.gaps[t.ngaps] = seqGap{lo, hi}
	t.ngaps++
}

// gapEnd returns the end of the gap that contains seq.
func (t *seqTracker) gapEnd(seq uint32) (uint32, bool) {
	for i := 0; i < t.ngaps; i++ {
		g := t.gaps[i]
		if seq-g.lo < g.hi-g.lo {
			return g.hi, true
		}
	}
	return 0, false
}

// fill removes [seq, seq+r) from the gap containing it and reports whether
// there was one.
func (t *seqTracker) fill(seq, r uint32) bool {
	for i := 0; i < t.ngaps; i++ {
		g := t.gaps[i]
		size := g.hi - g.lo
		if seq-g.lo >= size || seq+r-g.lo > size {
			continue
		}
		left := seqGap{g.lo, seq}
		right := seqGap{seq + r, g.hi}
		switch {
		case left.lo == left.hi && right.lo == right.hi:
			copy(t.gaps[i:], t.gaps[i+1:t.ngaps])
			t.ngaps--
		case left.lo == left.hi:
			t.gaps[i] = right
		case right.lo == right.hi:
			t.gaps[i] = left
		default:
			if t.ngaps == seqMaxGaps {
				// No room to split: forget the oldest gap (or the
				// oldest part of this one); its loss stays counted.
				if i == 0 {
					t.gaps[0] = right
					return true
				}
				copy(t.gaps[:], t.gaps[1:t.ngaps])
				t.ngaps--
				i--
			}
			t.gaps[i] = left
			copy(t.gaps[i+2:t.ngaps+1], t.gaps[i+1:t.ngaps])
			t.gaps[i+1] = right
			t.ngaps++
		}
		return true
	}
	return false
}

// lostDatagrams estimates datagrams lost: the lost units for datagram
// sequences, lost records / records per message for record sequences.
func (t *seqTracker) lostDatagrams(kind SeqKind) uint64 {
	if kind != SeqRecords {
		return t.lost
	}
	if t.records == 0 {
		return 0
	}
	return (t.lost*t.msgs + t.records/2) / t.records
}
