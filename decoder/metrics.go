package decoder

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors returned (wrapped) by Decode; test with errors.Is. Each maps to the
// reason label of vmflow_decoder_errors_total.
var (
	ErrTruncated           = errors.New("truncated")                      // a length runs past the end of the datagram, sample or record
	ErrBadVersion          = errors.New("unsupported version")            // not sFlow v5
	ErrBadAddress          = errors.New("unsupported agent address type") // sFlow agent address type not 1 (IPv4) or 2 (IPv6)
	ErrTooManySamples      = errors.New("too many samples")               // sample count above decoder.sflow.max_samples
	ErrTooManyRecords      = errors.New("too many records")               // record count above decoder.sflow.max_records
	ErrBadLength           = errors.New("bad length")                     // sample/record length not a multiple of 4
	ErrMalformed           = errors.New("malformed")                      // a record shorter than its fields, or a goflow2 decode error
	ErrUnknownSampleFormat = errors.New("unknown sample format")          // sFlow sample format other than 1-5 (goflow2 rejects these too)
	ErrUnknownSource       = errors.New("unknown source")                 // Decode called with an unknown Source
)

type reason uint8

const (
	reasonTruncated reason = iota
	reasonBadVersion
	reasonBadAddress
	reasonTooManySamples
	reasonTooManyRecords
	reasonBadLength
	reasonMalformed
	reasonUnknownSampleFormat
	reasonUnknownSource
	reasonOther
	numReasons
)

var reasonErrs = [...]error{
	reasonTruncated:           ErrTruncated,
	reasonBadVersion:          ErrBadVersion,
	reasonBadAddress:          ErrBadAddress,
	reasonTooManySamples:      ErrTooManySamples,
	reasonTooManyRecords:      ErrTooManyRecords,
	reasonBadLength:           ErrBadLength,
	reasonMalformed:           ErrMalformed,
	reasonUnknownSampleFormat: ErrUnknownSampleFormat,
	reasonUnknownSource:       ErrUnknownSource,
}

var reasonNames = [numReasons]string{
	reasonTruncated:           "truncated",
	reasonBadVersion:          "bad_version",
	reasonBadAddress:          "bad_agent_address",
	reasonTooManySamples:      "too_many_samples",
	reasonTooManyRecords:      "too_many_records",
	reasonBadLength:           "bad_length",
	reasonMalformed:           "malformed",
	reasonUnknownSampleFormat: "unknown_sample_format",
	reasonUnknownSource:       "unknown_source",
	reasonOther:               "other",
}

func classify(err error) reason {
	for i, e := range reasonErrs {
		if errors.Is(err, e) {
			return reason(i)
		}
	}
	return reasonOther
}

// Sample kinds (label kind of vmflow_decoder_samples_total).
const (
	sampleFlow = iota
	sampleExpandedFlow
	sampleCounter
	sampleExpandedCounter
	sampleDrop
	numSampleKinds
)

var sampleKindNames = [numSampleKinds]string{"flow", "expanded_flow", "counter", "expanded_counter", "drop"}

// Record kinds (label kind of vmflow_decoder_records_total): records decoded
// and used.
const (
	recRawHeader = iota
	recSampledIPv4
	recSampledIPv6
	recExtSwitch
	recTunnelEgress
	recTunnelIngress
	recVNIEgress
	recVNIIngress
	recIfCounters
	recEthCounters
	recOFPort
	recPortName
	numRecordKinds
)

var recordKindNames = [numRecordKinds]string{
	"raw_header", "sampled_ipv4", "sampled_ipv6", "extended_switch",
	"ipv4_tunnel_egress", "ipv4_tunnel_ingress", "vni_egress", "vni_ingress",
	"if_counters", "ethernet_counters", "openflow_port", "port_name",
}

// Skip kinds (label kind of vmflow_decoder_skipped_total): well-formed data
// the decoder does not use.
const (
	skipFlowRecord      = iota // flow record format we do not use (skipped by length)
	skipCounterRecord          // counter record format we do not use
	skipHeaderProtocol         // raw packet header of a protocol other than Ethernet/IPv4/IPv6
	skipDuplicateRecord        // second record of the same format in one sample (the first wins)
	skipDropSample             // drop sample (format 5): validated, not turned into records
	skipNoPacketRecord         // flow sample without a raw header or sampled IPv4/IPv6 record: no Record emitted
	numSkipKinds
)

var skipKindNames = [numSkipKinds]string{
	"flow_record", "counter_record", "header_protocol", "duplicate_record", "drop_sample", "no_packet_record",
}

const numSources = 4 // SourceUnknown..SourceNetFlow9

// metrics are the decoder's Prometheus counters, resolved once so the hot
// path only does atomic adds.
//
// The Decoder front counts datagrams and errors for every source
// (vmflow_decoder_datagrams_total, vmflow_decoder_errors_total); the
// IPFIX/NetFlow decoder should not count those two again.
type metrics struct {
	datagrams [numSources]prometheus.Counter
	errors    [numSources][numReasons]prometheus.Counter
	samples   [numSampleKinds]prometheus.Counter // sflow
	records   [numRecordKinds]prometheus.Counter // sflow
	skipped   [numSkipKinds]prometheus.Counter   // sflow
	host      hostMetrics                        // sflow host structures (sflow_host.go)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	datagrams := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_decoder_datagrams_total",
		Help: "Datagrams handed to the decoder, by export protocol.",
	}, []string{"source"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_decoder_errors_total",
		Help: "Datagrams that failed to decode, by export protocol and reason.",
	}, []string{"source", "reason"})
	samples := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_decoder_samples_total",
		Help: "Samples decoded, by export protocol and sample kind.",
	}, []string{"source", "kind"})
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_decoder_records_total",
		Help: "Records inside samples decoded and used, by export protocol and record kind.",
	}, []string{"source", "kind"})
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmflow_decoder_skipped_total",
		Help: "Well-formed samples or records the decoder does not use, by export protocol and kind.",
	}, []string{"source", "kind"})
	if reg != nil {
		var err error
		if datagrams, err = register(reg, datagrams); err != nil {
			return nil, err
		}
		if errs, err = register(reg, errs); err != nil {
			return nil, err
		}
		if samples, err = register(reg, samples); err != nil {
			return nil, err
		}
		if records, err = register(reg, records); err != nil {
			return nil, err
		}
		if skipped, err = register(reg, skipped); err != nil {
			return nil, err
		}
	}
	m := &metrics{}
	var err error
	if m.host, err = newHostMetrics(reg); err != nil {
		return nil, err
	}
	for s := Source(0); s < numSources; s++ {
		m.datagrams[s] = datagrams.WithLabelValues(s.String())
		for r := reason(0); r < numReasons; r++ {
			m.errors[s][r] = errs.WithLabelValues(s.String(), reasonNames[r])
		}
	}
	sf := SourceSFlow.String()
	for i := range m.samples {
		m.samples[i] = samples.WithLabelValues(sf, sampleKindNames[i])
	}
	for i := range m.records {
		m.records[i] = records.WithLabelValues(sf, recordKindNames[i])
	}
	for i := range m.skipped {
		m.skipped[i] = skipped.WithLabelValues(sf, skipKindNames[i])
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description (several Decoders may share one registry).
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return c, nil
}

// sflowStats counts one datagram's samples and records; added to the metrics
// once per datagram to keep atomic traffic low.
type sflowStats struct {
	samples [numSampleKinds]uint32
	records [numRecordKinds]uint32
	skipped [numSkipKinds]uint32
	host    hostStats // sflow_host.go
}

func (m *metrics) addSFlow(st *sflowStats) {
	m.host.add(&st.host)
	for i, n := range st.samples {
		if n != 0 {
			m.samples[i].Add(float64(n))
		}
	}
	for i, n := range st.records {
		if n != 0 {
			m.records[i].Add(float64(n))
		}
	}
	for i, n := range st.skipped {
		if n != 0 {
			m.skipped[i].Add(float64(n))
		}
	}
}

func (st *sflowStats) totalSkipped() int {
	n := 0
	for _, v := range st.skipped {
		n += int(v)
	}
	return n
}
