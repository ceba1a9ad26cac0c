package collector

import (
	"net/netip"
	"time"
)

// Protocol is the export protocol a listener expects.
type Protocol uint8

const (
	ProtoSFlow Protocol = iota + 1
	ProtoIPFIX
	ProtoNetFlow9
)

// templated reports whether the protocol's data depend on templates sent
// earlier by the same exporter (IPFIX, NetFlow v9): such datagrams must be
// decoded in arrival order per exporter.
func (p Protocol) templated() bool { return p == ProtoIPFIX || p == ProtoNetFlow9 }

func (p Protocol) String() string {
	switch p {
	case ProtoSFlow:
		return "sflow"
	case ProtoIPFIX:
		return "ipfix"
	case ProtoNetFlow9:
		return "netflow9"
	}
	return "unknown"
}

// Datagram is one received UDP payload. Data aliases a reused buffer: it is
// valid only during Handle.
type Datagram struct {
	Proto    Protocol
	From     netip.AddrPort
	Local    netip.AddrPort
	Data     []byte
	Received int64 // unix ns
}

// SeqKind says what a sequence number counts.
type SeqKind uint8

const (
	SeqNone      SeqKind = iota
	SeqDatagrams         // sFlow datagram sequence, NetFlow v9 packet sequence: +1 per datagram
	SeqRecords           // IPFIX: +DataRecords per message
)

// Meta is what the handler learned of a datagram, for per-exporter state.
type Meta struct {
	Version   uint16
	Agent     netip.Addr // sFlow agent address (zero for IPFIX/NetFlow)
	SubAgent  uint32
	ObsDomain uint32
	SeqKind   SeqKind
	Sequence  uint32
	Uptime    uint32 // sFlow uptime ms: a decrease means the agent restarted
	// Records is what the sequence counts for this datagram (1 for
	// SeqDatagrams, the data record count for SeqRecords: data and options
	// data records, not templates).
	Records int
	// RecordsUnknown (SeqRecords) says Records is incomplete: the message
	// had data sets that could not be counted (their template is not known
	// yet). The next message's sequence is then taken as is, not as loss.
	RecordsUnknown bool
	Samples        int // flow + counter samples / flow records decoded
}

// WorkerHandler handles datagrams on one worker goroutine; it need not be
// safe for concurrent use.
type WorkerHandler interface {
	Handle(d *Datagram) (Meta, error)
}

// BatchFlusher may be implemented by a WorkerHandler that keeps some
// per-datagram work (metric counts) for the end of a run of datagrams: the
// collector calls Flush on the handler's goroutine after each received
// batch (or queued chunk) it handled, before the batch shows in its Handled
// count.
type BatchFlusher interface {
	Flush()
}

// Handler makes one WorkerHandler per worker goroutine.
type Handler interface {
	NewWorker() WorkerHandler
}

// ExporterStatus is one exporter's state, for GET /api/v1/exporters. An
// exporter is keyed by (protocol, UDP source address, sFlow agent+sub-agent
// or IPFIX/NetFlow observation domain).
type ExporterStatus struct {
	Protocol      string    `json:"protocol"`
	Address       string    `json:"address"` // UDP source address (ip:port)
	Agent         string    `json:"agent,omitempty"`
	SubAgent      uint32    `json:"sub_agent"`
	ObsDomain     uint32    `json:"observation_domain"`
	Datagrams     uint64    `json:"datagrams"`
	Samples       uint64    `json:"samples"`
	DecodeErrors  uint64    `json:"decode_errors"`
	LostDatagrams uint64    `json:"lost_datagrams"` // estimated from sequence gaps (IPFIX: lost records / records per message)
	LostRecords   uint64    `json:"lost_records"`   // IPFIX: records missing per the sequence numbers
	Reordered     uint64    `json:"reordered"`
	Restarts      uint64    `json:"restarts"`
	LastSequence  uint32    `json:"last_sequence"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
}
