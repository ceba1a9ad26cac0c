// Package collector receives sFlow v5, IPFIX and NetFlow v9 datagrams over
// UDP and hands them to a Handler, keeping per-exporter state.
//
// Each enabled protocol has a listener: Sockets SO_REUSEPORT UDP sockets
// (large SO_RCVBUF, SO_RCVBUFFORCE when allowed, UDP GRO when enabled),
// each read by one goroutine with recvmmsg into fixed buffers. A reader
// copies a batch into free slots of a fixed pool (QueueSize slots with
// reused buffers) and queues them as chunks of up to 64 datagrams; Workers
// goroutines, each with its own WorkerHandler, call Handle per datagram and
// return the slots. When no slot is free the newest datagrams are dropped
// (counted as reason="queue_full"); the sockets are never left unread.
// Nothing on this path allocates in steady state.
//
// After Handle, the worker updates the exporter the datagram came from,
// keyed by (protocol, UDP source IP, sFlow agent and sub-agent, observation
// domain): datagrams, samples, decode errors, first/last seen, and the loss
// estimated from sequence numbers (see seq.go: gaps count as lost at once
// and are subtracted again when a late datagram fills them; restarts are
// detected from big jumps and sFlow uptime). IPFIX and NetFlow v9 numbers
// count per observation domain by the RFCs, but Open vSwitch numbers all
// domains of an exporting process with one counter (and sends statistics
// in domain 0), so the domains of one exporter address are also tracked as
// one session; when that explains the numbers better, the session's loss is
// shown (on its busiest domain) instead of the domains' own (exporters.go).
// An IPFIX message whose records could not be counted (template not known
// yet, Meta.RecordsUnknown) is no evidence of loss. Exporters idle for
// ExporterTimeout are removed.
//
// Metrics (label protocol): vmflow_collector_datagrams_total, _bytes_total,
// _handled_datagrams_total, _samples_total, _dropped_total{reason=
// queue_full|decode_error|not_allowed|truncated|handler_panic},
// _socket_drops_total, _read_errors_total, _gro_datagrams_total,
// _queue_datagrams, _queue_capacity_datagrams,
// _socket_receive_buffer_bytes, _exporters, _lost_datagrams; and
// vmflow_collector_exporters_untracked_total.
package collector
