package collector

import (
	"math/bits"
	"net/netip"
	"sync"
)

// The queue between readers and workers.
//
// A listener owns QueueSize slots, each holding one datagram and its own
// reused buffer. A reader takes as many free slots as one recvmmsg call
// returned datagrams, copies them in, links them into a chunk and sends the
// chunk (three words) on a channel: one channel operation and one lock per
// recvmmsg batch, not per datagram. When no slot is free the newest
// datagrams of the batch are dropped (tail drop; the socket is never left
// unread). A worker handles a chunk's datagrams in order and gives the slots
// back with one lock. The channel holds QueueSize chunks, so a send never
// blocks: every chunk holds at least one of the QueueSize slots.

const (
	minSlotBuf = 2048
	// A slot keeps its buffer across datagrams up to this size; larger
	// (rare) datagrams get a buffer that is freed after use, so the queue's
	// memory stays near QueueSize * maxKeptBuf at worst.
	maxKeptBuf = 16 << 10
)

type slot struct {
	next    *slot
	d       Datagram
	buf     []byte
	arrival uint64
}

func (s *slot) fill(p Protocol, from, local netip.AddrPort, data []byte, now int64) {
	if cap(s.buf) < len(data) {
		n := max(minSlotBuf, 1<<bits.Len(uint(len(data)-1)))
		s.buf = make([]byte, n)
	}
	b := s.buf[:len(data)]
	copy(b, data)
	s.d = Datagram{Proto: p, From: from, Local: local, Data: b, Received: now}
}

func (s *slot) release() {
	s.d.Data = nil
	if cap(s.buf) > maxKeptBuf {
		s.buf = nil
	}
}

type chunk struct {
	head, tail *slot
	n          int
}

type slotPool struct {
	mu   sync.Mutex
	free *slot
	n    int
	size int
}

func newSlotPool(size int) *slotPool {
	p := &slotPool{size: size}
	slots := make([]slot, size)
	for i := range slots {
		slots[i].next = p.free
		p.free = &slots[i]
	}
	p.n = size
	return p
}

// take unlinks up to k free slots.
func (p *slotPool) take(k int) chunk {
	p.mu.Lock()
	var c chunk
	s := p.free
	for c.n < k && s != nil {
		if c.head == nil {
			c.head = s
		}
		c.tail = s
		s = s.next
		c.n++
	}
	if c.tail != nil {
		c.tail.next = nil
	}
	p.free = s
	p.n -= c.n
	p.mu.Unlock()
	return c
}

func (p *slotPool) put(c chunk) {
	if c.n == 0 {
		return
	}
	p.mu.Lock()
	c.tail.next = p.free
	p.free = c.head
	p.n += c.n
	p.mu.Unlock()
}

// inUse is the number of datagrams queued or being handled.
func (p *slotPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size - p.n
}
