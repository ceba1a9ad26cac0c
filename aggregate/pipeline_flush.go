package aggregate

import (
	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
)

var _ collector.BatchFlusher = (*PipelineWorker)(nil)

// countDeferrer is implemented by *decoder.Decoder: per-datagram metric
// counts can wait in the worker's batch until the collector's batch of
// datagrams is handled.
type countDeferrer interface {
	DeferCounts(b *decoder.Batch)
	FlushCounts(b *decoder.Batch)
}

// Flush implements collector.BatchFlusher (the collector calls it after
// each received batch): the decoder's held counts go to its metrics. From
// the first Flush on the decoder holds them in the worker's batch, so a
// worker used without a collector counts each datagram at once.
func (w *PipelineWorker) Flush() {
	if c, ok := w.p.dec.(countDeferrer); ok {
		c.FlushCounts(&w.batch)
		c.DeferCounts(&w.batch)
	}
}
