// Package decoder turns sFlow v5, IPFIX and NetFlow v9 datagrams into flat
// Records (one per sampled packet or flow record) and Counters. goflow2 types
// stay inside this package.
package decoder

import (
	"fmt"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// Decoder decodes datagrams of every supported export protocol. It is inert
// (starts nothing), holds no per-datagram state and is safe for concurrent
// use by several goroutines, each with its own Batch.
type Decoder struct {
	cfg   Config
	sflow sflowDecoder
	flow  *flowDecoder
	m     *metrics
}

// New builds a Decoder and registers its metrics (vmflow_decoder_*) on reg.
// reg may be nil (metrics are then kept but not exported). Several Decoders
// may share one registry: they then share the counters.
func New(cfg Config, reg prometheus.Registerer) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("decoder metrics: %w", err)
	}
	flow, err := newFlowDecoder(cfg.Flow, reg)
	if err != nil {
		return nil, err
	}
	return &Decoder{cfg: cfg, sflow: sflowDecoder{cfg: cfg.SFlow}, flow: flow, m: m}, nil
}

// Decode decodes one datagram of protocol src, received from `from` at
// `received` (unix ns), into b. It resets b first, then fills b.Header,
// b.Records and b.Counters. Records and Counters hold no references to data,
// which the caller may reuse as soon as Decode returns.
//
// On error (wrapped as "decode sflow: ..."; test the kind with errors.Is
// against ErrTruncated, ErrTooManyRecords, ...) the datagram was malformed
// somewhere: b may hold what decoded fine before the fault. The caller should
// discard the whole batch and count the datagram as a decode error (the
// decoder already counted it in vmflow_decoder_errors_total): a datagram that
// is wrong in one place cannot be trusted elsewhere, and accepting half of it
// would make sequence accounting ambiguous. b.Header is valid when it has a
// non-zero Version.
//
// For sFlow, steady-state decoding with a reused Batch allocates nothing on
// the fast path (decoder.sflow.fast_path, the default).
func (d *Decoder) Decode(src Source, from netip.AddrPort, data []byte, received int64, b *Batch) error {
	b.Reset()
	var err error
	switch src {
	case SourceSFlow:
		d.m.datagrams[SourceSFlow].Inc()
		var st sflowStats
		if d.cfg.SFlow.FastPath {
			err = d.sflow.decodeFast(from, data, received, b, &st)
		} else {
			err = d.sflow.decodeGoflow2(from, data, received, b, &st)
		}
		d.m.addSFlow(&st)
		b.Header.Skipped = st.totalSkipped()
		if err != nil {
			err = fmt.Errorf("decode sflow: %w", err)
		}
	case SourceIPFIX, SourceNetFlow9:
		if b.flow.hold {
			b.flow.pend.datagrams[src-SourceIPFIX]++
		} else {
			d.m.datagrams[src].Inc()
		}
		err = d.flow.Decode(src, from, data, received, b)
	default:
		err = fmt.Errorf("decode: source %d: %w", src, ErrUnknownSource)
		src = SourceUnknown
	}
	if err != nil {
		d.m.errors[src][classify(err)].Inc()
	}
	return err
}
