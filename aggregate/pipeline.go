package aggregate

import (
	"net/netip"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
)

var (
	_ collector.Handler       = (*Pipeline)(nil)
	_ collector.WorkerHandler = (*PipelineWorker)(nil)

	emptyIndex = &enrich.Index{}
)

// Decoder is what the pipeline needs of *decoder.Decoder.
type Decoder interface {
	Decode(src decoder.Source, from netip.AddrPort, data []byte, received int64, b *decoder.Batch) error
}

// Pipeline is the hot path glue: collector.Handler that decodes each
// datagram, attributes its records with the current inventory index and
// adds them to an aggregation worker; sFlow counter samples go to the
// aggregator's port table (ports.go: the latest counters per port for
// Ports, and the per-window deltas).
type Pipeline struct {
	dec Decoder
	enr *enrich.Enricher
	agg *Aggregator
}

// NewPipeline wires decoder, enricher and aggregator. dec is normally a
// *decoder.Decoder. The port metrics are the aggregator's (registered by
// New); reg is kept for callers and unused.
func NewPipeline(dec Decoder, enr *enrich.Enricher, agg *Aggregator, reg prometheus.Registerer) *Pipeline {
	_ = reg
	return &Pipeline{dec: dec, enr: enr, agg: agg}
}

// NewWorker implements collector.Handler: one per collector goroutine.
func (p *Pipeline) NewWorker() collector.WorkerHandler {
	return &PipelineWorker{p: p, agg: p.agg.NewWorker()}
}

// PipelineWorker handles datagrams on one collector goroutine.
type PipelineWorker struct {
	p     *Pipeline
	agg   *Worker
	batch decoder.Batch
}

// Aggregator returns the worker's aggregation worker.
func (w *PipelineWorker) Aggregator() *Worker { return w.agg }

func sourceOf(p collector.Protocol) decoder.Source {
	switch p {
	case collector.ProtoSFlow:
		return decoder.SourceSFlow
	case collector.ProtoIPFIX:
		return decoder.SourceIPFIX
	case collector.ProtoNetFlow9:
		return decoder.SourceNetFlow9
	}
	return decoder.SourceUnknown
}

// Handle decodes one datagram and aggregates its records. A decode error
// is returned (the collector counts it and the batch is discarded).
func (w *PipelineWorker) Handle(d *collector.Datagram) (collector.Meta, error) {
	b := &w.batch
	if err := w.p.dec.Decode(sourceOf(d.Proto), d.From, d.Data, d.Received, b); err != nil {
		return metaOf(&b.Header), err
	}
	if len(b.Records) > 0 {
		idx := emptyIndex
		if w.p.enr != nil {
			idx = w.p.enr.Index()
		}
		w.agg.AddBatch(idx, b.Records)
		if w.p.agg.swports.unnamed.Load() > 0 { // ports to attribute by ifIndex (ports.go)
			w.p.agg.swports.learnIfIndex(idx, b.Records)
		}
	}
	if len(b.Measurements) > 0 { // the probe's (latency.go): never traffic
		idx := emptyIndex
		if w.p.enr != nil {
			idx = w.p.enr.Index()
		}
		w.agg.AddMeasurements(idx, b.Measurements)
	}
	if len(b.Counters) > 0 {
		w.p.agg.AddCounters(b.Counters)
	}
	return metaOf(&b.Header), nil
}

func metaOf(h *decoder.Header) collector.Meta {
	m := collector.Meta{
		Version:   h.Version,
		SubAgent:  h.SubAgent,
		ObsDomain: h.ObsDomain,
		Sequence:  h.Sequence,
		Uptime:    h.Uptime,
		Samples:   h.Samples,
	}
	switch h.Source {
	case decoder.SourceSFlow:
		m.Agent = h.Agent
		m.SeqKind = collector.SeqDatagrams
		m.Records = 1
	case decoder.SourceNetFlow9:
		m.SeqKind = collector.SeqDatagrams
		m.Records = 1
	case decoder.SourceIPFIX:
		m.SeqKind = collector.SeqRecords
		m.Records = h.DataRecords
		// DataRecords counts data and options data records, including
		// those skipped by direction or the records limit (which also
		// count in Skipped, without being Samples). Skipped beyond those
		// can only be data sets whose template is unknown (or reserved
		// set IDs): their records were not counted, so the sequence
		// advanced by more than DataRecords.
		m.RecordsUnknown = h.Skipped > h.DataRecords-h.Samples
	}
	return m
}

// PortCounters is the latest counter record of one exporter interface.
type PortCounters struct {
	Exporter netip.Addr `json:"exporter"`
	Agent    netip.Addr `json:"agent"`
	SubAgent uint32     `json:"sub_agent"`
	IfIndex  uint32     `json:"if_index"`
	Name     string     `json:"name,omitempty"` // OVS port name, when sent
	Host     string     `json:"host,omitempty"` // resolved at read time
	VM       string     `json:"vm,omitempty"`   // VM whose tap is Name on Host
	Updated  time.Time  `json:"updated"`

	IfType     uint32 `json:"if_type"`
	IfSpeed    uint64 `json:"if_speed"`
	IfStatus   uint32 `json:"if_status"`
	InOctets   uint64 `json:"in_octets"`
	InUcast    uint64 `json:"in_ucast"`
	InMcast    uint64 `json:"in_mcast"`
	InBcast    uint64 `json:"in_bcast"`
	InDiscard  uint64 `json:"in_discards"`
	InErrors   uint64 `json:"in_errors"`
	OutOctets  uint64 `json:"out_octets"`
	OutUcast   uint64 `json:"out_ucast"`
	OutMcast   uint64 `json:"out_mcast"`
	OutBcast   uint64 `json:"out_bcast"`
	OutDiscard uint64 `json:"out_discards"`
	OutErrors  uint64 `json:"out_errors"`
	HasOFPort  bool   `json:"has_of_port"`
	DatapathID uint64 `json:"datapath_id,omitempty"`
	OFPort     uint32 `json:"of_port,omitempty"`
}

// Ports returns the latest counters of every port seen (the aggregator's
// port table), with host and VM resolved from the current index; sorted
// by agent, sub-agent, ifIndex.
func (p *Pipeline) Ports() []PortCounters {
	t := p.agg.swports
	t.mu.Lock()
	latest := make([]PortCounters, 0, len(t.m))
	for _, ps := range t.m {
		latest = append(latest, ps.last)
	}
	t.mu.Unlock()
	var idx *enrich.Index
	if p.enr != nil {
		idx = p.enr.Index()
	}
	out := make([]PortCounters, 0, len(latest))
	for _, pc := range latest {
		if idx != nil {
			if h, ok := idx.HostOfObservation(pc.Agent, pc.SubAgent); ok {
				pc.Host = h
				if pc.Name != "" {
					if port, ok := idx.ByTap(h, pc.Name); ok {
						pc.VM = port.VM.Name
					}
				}
			}
		}
		out = append(out, pc)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if c := a.Agent.Compare(b.Agent); c != 0 {
			return c < 0
		}
		if a.SubAgent != b.SubAgent {
			return a.SubAgent < b.SubAgent
		}
		return a.IfIndex < b.IfIndex
	})
	return out
}
