package aggregate

import (
	"errors"
	"net/netip"
	"sort"
	"sync"
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
// adds them to an aggregation worker. It also keeps the latest interface
// counters (sFlow counter samples) per port for Ports.
type Pipeline struct {
	dec Decoder
	enr *enrich.Enricher
	agg *Aggregator

	maxPorts int

	mu      sync.Mutex
	workers []*PipelineWorker

	counterSamples prometheus.Counter
	portsDropped   prometheus.Counter
}

// NewPipeline wires decoder, enricher and aggregator. dec is normally a
// *decoder.Decoder. Metrics go to reg (nil: none); a metric already
// registered by another Pipeline on reg is shared.
func NewPipeline(dec Decoder, enr *enrich.Enricher, agg *Aggregator, reg prometheus.Registerer) *Pipeline {
	p := &Pipeline{
		dec:      dec,
		enr:      enr,
		agg:      agg,
		maxPorts: agg.cfg.MaxPorts,
		counterSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_counter_samples_total", Help: "Interface counter records (sFlow counter samples) stored for the port view."}),
		portsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmflow_aggregate_ports_dropped_total", Help: "Interface counter records of new ports not stored because aggregate.max_ports was reached."}),
	}
	if reg != nil {
		p.counterSamples = registerOrReuse(reg, p.counterSamples)
		p.portsDropped = registerOrReuse(reg, p.portsDropped)
		p.registerPortsGauge(reg)
	}
	return p
}

func registerOrReuse(reg prometheus.Registerer, c prometheus.Counter) prometheus.Counter {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(prometheus.Counter); ok {
				return ex
			}
		}
	}
	return c
}

func (p *Pipeline) registerPortsGauge(reg prometheus.Registerer) {
	_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmflow_aggregate_ports", Help: "Interface counter entries kept (all workers).",
	}, func() float64 {
		n := 0
		p.mu.Lock()
		ws := append([]*PipelineWorker(nil), p.workers...)
		p.mu.Unlock()
		for _, w := range ws {
			w.portsMu.Lock()
			n += len(w.ports)
			w.portsMu.Unlock()
		}
		return float64(n)
	}))
}

// NewWorker implements collector.Handler: one per collector goroutine.
func (p *Pipeline) NewWorker() collector.WorkerHandler {
	w := &PipelineWorker{p: p, agg: p.agg.NewWorker(), ports: map[portKey]*PortCounters{}}
	p.mu.Lock()
	p.workers = append(p.workers, w)
	p.mu.Unlock()
	return w
}

type portKey struct {
	Agent    netip.Addr
	SubAgent uint32
	IfIndex  uint32
}

// PipelineWorker handles datagrams on one collector goroutine.
type PipelineWorker struct {
	p     *Pipeline
	agg   *Worker
	batch decoder.Batch

	portsMu sync.Mutex
	ports   map[portKey]*PortCounters
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
	}
	if len(b.Counters) > 0 {
		w.storeCounters(b.Counters)
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

// storeCounters keeps the latest counters per (agent, sub-agent, ifIndex).
// Counter samples are rare (one per port per polling interval), so a
// per-worker lock costs nothing; the port name string is only allocated
// when it changes.
func (w *PipelineWorker) storeCounters(cs []decoder.Counters) {
	w.portsMu.Lock()
	defer w.portsMu.Unlock()
	for i := range cs {
		c := &cs[i]
		if !c.HasIf && !c.HasOFPort && c.PortNameLen == 0 {
			continue
		}
		agent := c.Agent
		if !agent.IsValid() {
			agent = c.Exporter
		}
		k := portKey{Agent: agent, SubAgent: c.SubAgent, IfIndex: c.IfIndex}
		pc, ok := w.ports[k]
		if !ok {
			if len(w.ports) >= w.p.maxPorts {
				w.p.portsDropped.Inc()
				continue
			}
			pc = &PortCounters{Agent: agent, SubAgent: c.SubAgent, IfIndex: c.IfIndex}
			w.ports[k] = pc
		}
		w.p.counterSamples.Inc()
		pc.Exporter = c.Exporter
		pc.Updated = time.Unix(0, c.Received)
		if c.HasIf {
			pc.IfType, pc.IfSpeed, pc.IfStatus = c.IfType, c.IfSpeed, c.IfStatus
			pc.InOctets, pc.InUcast, pc.InMcast, pc.InBcast = c.InOctets, c.InUcast, c.InMcast, c.InBcast
			pc.InDiscard, pc.InErrors = c.InDiscard, c.InErrors
			pc.OutOctets, pc.OutUcast, pc.OutMcast, pc.OutBcast = c.OutOctets, c.OutUcast, c.OutMcast, c.OutBcast
			pc.OutDiscard, pc.OutErrors = c.OutDiscard, c.OutErrors
		}
		if c.HasOFPort {
			pc.HasOFPort, pc.DatapathID, pc.OFPort = true, c.DatapathID, c.OFPort
		}
		if n := c.PortName[:c.PortNameLen]; len(n) > 0 && string(n) != pc.Name {
			pc.Name = string(n)
		}
	}
}

// Ports returns the latest counters of every port seen, newest record per
// port across workers, with host and VM resolved from the current index;
// sorted by agent, sub-agent, ifIndex.
func (p *Pipeline) Ports() []PortCounters {
	p.mu.Lock()
	ws := append([]*PipelineWorker(nil), p.workers...)
	p.mu.Unlock()
	latest := map[portKey]PortCounters{}
	for _, w := range ws {
		w.portsMu.Lock()
		for k, pc := range w.ports {
			if old, ok := latest[k]; !ok || pc.Updated.After(old.Updated) {
				latest[k] = *pc
			}
		}
		w.portsMu.Unlock()
	}
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
