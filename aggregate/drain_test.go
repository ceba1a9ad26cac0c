package aggregate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/decoder"
)

// drainSink logs Write and Drain calls, in order, into a shared log.
type drainSink struct {
	name string
	mu   *sync.Mutex
	log  *[]string
	err  error
	wins []*Window
}

func (s *drainSink) Write(w *Window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wins = append(s.wins, w)
	*s.log = append(*s.log, s.name+".write")
}

func (s *drainSink) Drain(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.log = append(*s.log, s.name+".drain")
	return s.err
}

// TestStopFlushesOpenWindowThenDrains: cancelling the context given to
// Start (a signal) neither closes the window nor stops the aggregator;
// Stop writes the open window to every sink, and Drain then drains every
// Drainer sink in order, each after it got the last window. A sink's
// error is reported without skipping the sinks after it.
func TestStopFlushesOpenWindowThenDrains(t *testing.T) {
	enr := testEnricher(t)
	var mu sync.Mutex
	var log []string
	s1 := &drainSink{name: "s1", mu: &mu, log: &log, err: errors.New("boom")}
	plain := &fakeSink{}
	s2 := &drainSink{name: "s2", mu: &mu, log: &log}
	cfg := DefaultConfig()
	cfg.Window = time.Hour // the ticker never closes a window during the test
	a, err := New(cfg, enr, nil, s1, plain)
	require.NoError(t, err)
	a.AddSink(s2)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, a.Start(ctx))
	w := a.NewWorker()
	w.Add(enr.Index(), &sample(expA, macA1, macB1, ipA1, ipB1).bytes(1234).Record)
	cancel() // SIGTERM: the aggregator keeps the window open
	time.Sleep(20 * time.Millisecond)
	w.Add(enr.Index(), &sample(expA, macA1, macB1, ipA1, ipB1).bytes(66).Record)
	mu.Lock()
	require.Empty(t, log, "nothing written before Stop")
	mu.Unlock()

	a.Stop()
	dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
	defer dcancel()
	err = a.Drain(dctx)
	require.ErrorContains(t, err, "boom")
	assert.Equal(t, []string{"s1.write", "s2.write", "s1.drain", "s2.drain"}, log)
	require.Len(t, plain.all(), 1)
	for _, got := range [][]*Window{s1.wins, s2.wins, plain.all()} {
		require.Len(t, got, 1)
		p := pairOf(got[0], "a1", "b1", decoder.SourceSFlow)
		require.NotNil(t, p)
		assert.Equal(t, 1300.0, p.Stats.Bytes, "both records, also the one after the signal")
	}
}
