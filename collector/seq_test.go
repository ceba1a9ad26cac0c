package collector

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

type seqStep struct {
	seq     uint32
	records int
	uptime  uint32
	arrival uint64 // 0: the step's position (arrived in this order)
}

func steps(seqs ...uint32) []seqStep {
	out := make([]seqStep, len(seqs))
	for i, s := range seqs {
		out[i] = seqStep{seq: s, records: 1}
	}
	return out
}

func TestSeqTracker(t *testing.T) {
	type want struct {
		lost, lostDatagrams, reordered, restarts, dups uint64
	}
	many := []uint32{1}
	for i := uint32(1); i <= seqMaxGaps+8; i++ {
		many = append(many, 1+2*i) // gaps of one: 2, 4, ..., 2*(seqMaxGaps+8)
	}
	cases := []struct {
		name  string
		kind  SeqKind
		steps []seqStep
		want  want
	}{
		{"in order", SeqDatagrams, steps(1, 2, 3, 4, 5), want{}},
		{"gap", SeqDatagrams, steps(1, 2, 5, 6), want{lost: 2, lostDatagrams: 2}},
		{"two gaps", SeqDatagrams, steps(10, 12, 20), want{lost: 8, lostDatagrams: 8}},
		{"reordered on the wire", SeqDatagrams, steps(1, 3, 2, 4), want{reordered: 1}},
		{"overtaken in the worker pool", SeqDatagrams,
			[]seqStep{{1, 1, 0, 1}, {3, 1, 0, 3}, {2, 1, 0, 2}, {4, 1, 0, 4}}, want{}},
		{"late datagrams fill a gap piece by piece", SeqDatagrams, steps(1, 6, 3, 2, 5), want{lost: 1, lostDatagrams: 1, reordered: 3}},
		{"late fills then gap stays", SeqDatagrams, steps(1, 6, 3, 2, 5, 4, 7), want{reordered: 4}},
		{"duplicate", SeqDatagrams, steps(1, 2, 2, 3), want{dups: 1}},
		{"restart: big jump backwards", SeqDatagrams, steps(100000, 100001, 100002, 1, 2, 3), want{restarts: 1}},
		{"restart: jump forward too far", SeqDatagrams, steps(1, 2, 2000000, 2000001), want{restarts: 1}},
		{"restart: uptime decreases with sequence forward", SeqDatagrams,
			[]seqStep{{1, 1, 5000, 0}, {2, 1, 6000, 0}, {3, 1, 100, 0}, {4, 1, 1100, 0}}, want{restarts: 1}},
		{"restart: small step back with a much older uptime", SeqDatagrams,
			[]seqStep{{50, 1, 200000, 0}, {51, 1, 201000, 0}, {1, 1, 500, 0}, {2, 1, 1500, 0}}, want{restarts: 1}},
		{"restart: small step back outside any gap", SeqDatagrams,
			[]seqStep{{10, 1, 20000, 0}, {11, 1, 21000, 0}, {1, 1, 10, 0}, {2, 1, 1010, 0}}, want{restarts: 1}},
		{"duplicate with its own uptime is no restart", SeqDatagrams,
			[]seqStep{{1, 1, 1000, 0}, {2, 1, 2000, 0}, {2, 1, 2000, 0}, {3, 1, 3000, 0}}, want{dups: 1}},
		{"late inside a gap with an older uptime is reordering", SeqDatagrams,
			[]seqStep{{1, 1, 1000, 0}, {3, 1, 30000, 0}, {2, 1, 2000, 0}}, want{reordered: 1}},
		{"uptime wraps: no restart", SeqDatagrams,
			[]seqStep{{1, 1, 0xFFFFFF00, 0}, {2, 1, 0x10, 0}}, want{}},
		{"sequence wraps", SeqDatagrams, steps(0xFFFFFFFE, 0xFFFFFFFF, 0, 1), want{}},
		{"sequence wraps with a gap", SeqDatagrams, steps(0xFFFFFFFF, 2), want{lost: 2, lostDatagrams: 2}},
		{"late beyond the remembered gaps stays lost", SeqDatagrams, append(steps(many...), seqStep{2, 1, 0, 0}),
			want{lost: seqMaxGaps + 8, lostDatagrams: seqMaxGaps + 8, dups: 1}},
		{"late within the remembered gaps is subtracted", SeqDatagrams, append(steps(many...), seqStep{2 * (seqMaxGaps + 8), 1, 0, 0}),
			want{lost: seqMaxGaps + 7, lostDatagrams: seqMaxGaps + 7, reordered: 1}},
		{"overtaken far back in the worker pool is no restart", SeqDatagrams,
			[]seqStep{{1, 1, 100, 1}, {10000, 1, 5000, 10000}, {2, 1, 101, 2}, {10001, 1, 5001, 10001}},
			want{lost: 9997, lostDatagrams: 9997}},
		{"overtaken with an old uptime outside any gap is no restart", SeqDatagrams,
			[]seqStep{{1, 1, 100, 1}, {2, 1, 90000, 3}, {1, 1, 100, 2}},
			want{dups: 1}},
		{"ipfix in order", SeqRecords,
			[]seqStep{{0, 10, 0, 0}, {10, 10, 0, 0}, {20, 5, 0, 0}, {25, 10, 0, 0}}, want{}},
		{"ipfix template-only messages do not advance", SeqRecords,
			[]seqStep{{0, 0, 0, 0}, {0, 10, 0, 0}, {10, 0, 0, 0}, {10, 10, 0, 0}}, want{}},
		{"ipfix lost message", SeqRecords,
			[]seqStep{{0, 10, 0, 0}, {10, 10, 0, 0}, {30, 10, 0, 0}, {40, 10, 0, 0}},
			want{lost: 10, lostDatagrams: 1}},
		{"ipfix reordered message", SeqRecords,
			[]seqStep{{0, 10, 0, 0}, {20, 10, 0, 0}, {10, 10, 0, 0}, {30, 10, 0, 0}}, want{reordered: 1}},
		{"ipfix restart", SeqRecords,
			[]seqStep{{500000, 10, 0, 0}, {500010, 10, 0, 0}, {0, 10, 0, 0}, {10, 10, 0, 0}}, want{restarts: 1}},
		{"netflow v9 gap", SeqDatagrams, steps(7, 8, 9, 12), want{lost: 2, lostDatagrams: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tr seqTracker
			for i, s := range tc.steps {
				arr := s.arrival
				if arr == 0 {
					arr = uint64(i + 1)
				}
				tr.update(tc.kind, s.seq, s.records, s.uptime, arr)
			}
			got := want{tr.lost, tr.lostDatagrams(tc.kind), tr.reordered, tr.restarts, tr.dups}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSeqTrackerSplitWhenFull(t *testing.T) {
	// Fill the gap list, then split one gap in the middle: the oldest gap
	// is forgotten, the loss of the filled datagram is subtracted.
	var tr seqTracker
	seq := uint32(1)
	tr.update(SeqDatagrams, seq, 1, 0, 1)
	for i := 0; i < seqMaxGaps; i++ {
		seq += 4 // gaps of 3
		tr.update(SeqDatagrams, seq, 1, 0, uint64(i+2))
	}
	assert.Equal(t, uint64(3*seqMaxGaps), tr.lost)
	// the middle of the newest gap
	tr.update(SeqDatagrams, seq-2, 1, 0, 1000)
	assert.Equal(t, uint64(3*seqMaxGaps-1), tr.lost)
	assert.Equal(t, seqMaxGaps, tr.ngaps)
	// both remaining halves are still known
	tr.update(SeqDatagrams, seq-3, 1, 0, 1001)
	tr.update(SeqDatagrams, seq-1, 1, 0, 1002)
	assert.Equal(t, uint64(3*seqMaxGaps-3), tr.lost)
	assert.Equal(t, uint64(3), tr.reordered)
}

func TestSeqTrackerNoneIgnored(t *testing.T) {
	var tr seqTracker
	tr.update(SeqNone, 5, 1, 0, 1)
	tr.update(SeqNone, 50, 1, 0, 2)
	assert.Zero(t, tr.lost)
	assert.False(t, tr.init)
}
