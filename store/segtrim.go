package store

// trim reallocates the segment's slices that hold more than 1/16 spare
// capacity (the cold bytes are sized from a guess, merged buckets from an
// upper bound): segments live for up to an hour, their slack would be
// held as long.
func (s *segment) trim() {
	s.ents = clip(s.ents)
	s.bytes = clip(s.bytes)
	s.packets = clip(s.packets)
	s.samples = clip(s.samples)
	s.flows = clip(s.flows)
	s.wins = clip(s.wins)
	s.off = clip(s.off)
	s.cold = clip(s.cold)
}

func clip[T any](x []T) []T {
	if cap(x)-len(x) <= len(x)/16 {
		return x
	}
	return append(make([]T, 0, len(x)), x...)
}

// coldHint is the cold bytes to reserve for n rows, from the last encoded
// window's bytes per row (+3%); 96 per row before the first.
func (m *Memory) coldHint(n int) int {
	if m.coldPerRow == 0 {
		return n * 96
	}
	return int(float64(n) * m.coldPerRow * 1.03)
}
