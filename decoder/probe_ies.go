package decoder

// IPFIX information elements of the vmflow probe (`vmflow probe`), shared
// by the probe's exporter and this decoder.
//
// The probe's records are measurements, never traffic: a data set whose
// template holds any element of ProbePEN is decoded into Batch.Measurements
// (see probe_decode.go) and never into Batch.Records, so it adds no bytes
// and no packets to any pair.
//
// Standard elements: observationTimeMicroseconds (324), sourceMacAddress
// (56), destinationMacAddress (80), sourceIPv4Address (8) /
// sourceIPv6Address (27), destinationIPv4Address (12) /
// destinationIPv6Address (28), sourceTransportPort (7),
// destinationTransportPort (11), protocolIdentifier (4), ingressInterface
// (10, the tap's ifindex) and icmpTypeCodeIPv4 (32) / icmpTypeCodeIPv6 (139).
// The source is always the initiator: the client of a TCP connection, the
// sender of an ICMP echo request, the sender of the first FIN or RST, the
// sender of an ICMP error.
const (
	// ProbePEN is the enterprise number of the probe's elements: 32473,
	// the number IANA reserves for documentation and examples (RFC 5612).
	// vmflow has no registered number; 32473 can never collide with a
	// real vendor's elements.
	ProbePEN uint32 = 32473

	// IEProbeEvent (unsigned8): ProbeEvent*.
	IEProbeEvent uint16 = 1
	// IEProbeSide (unsigned8): ProbeSide*, where the tap that saw it is.
	IEProbeSide uint16 = 2
	// IEProbeOutcome (unsigned8): ProbeOutcome* (meaning by event).
	IEProbeOutcome uint16 = 3
	// IEProbeRTTMicroseconds (unsigned32): handshake: SYN → SYN-ACK (or
	// → RST) at the tap; echo: request → reply. 0 when not answered.
	IEProbeRTTMicroseconds uint16 = 4
	// IEProbeSYNRetransmissions (unsigned8): SYNs of the attempt beyond the first.
	IEProbeSYNRetransmissions uint16 = 5
	// IEProbeAckMicroseconds (unsigned32): handshake, at the server's tap:
	// SYN-ACK sent → the client's final ACK arrived (the round trip back
	// to the client). 0 when not measured (older probes, the client's tap,
	// IPv6, no free filter slot, ACK not seen).
	IEProbeAckMicroseconds uint16 = 6

	// Standard elements used by the probe that the flow decoder does not map.
	IEObservationTimeMicroseconds uint16 = 324
	IEIngressInterface            uint16 = 10
)

// Probe events.
const (
	ProbeEventHandshake uint8 = 1 // a TCP connection attempt
	ProbeEventClose     uint8 = 2 // the first FIN or RST of a connection
	ProbeEventEcho      uint8 = 3 // an ICMP echo request
	ProbeEventICMPError uint8 = 4 // an ICMP error (unreachable, time exceeded, ...)
)

// Probe sides: where the tap that measured is.
const (
	// ProbeSideClient: the tap of the initiator (the SYN or echo request
	// left the VM behind this tap). SYN → SYN-ACK here is the network round
	// trip plus the server's stack.
	ProbeSideClient uint8 = 1
	// ProbeSideServer: the tap of the responder. SYN → SYN-ACK here is the
	// server guest's own share.
	ProbeSideServer uint8 = 2
)

// Probe outcomes.
const (
	ProbeOutcomeEstablished uint8 = 1 // handshake: SYN-ACK seen; echo: reply seen
	ProbeOutcomeRefused     uint8 = 2 // handshake: RST answered the SYN
	ProbeOutcomeTimedOut    uint8 = 3 // handshake/echo: no answer within the probe's timeout
	ProbeOutcomeFIN         uint8 = 4 // close by FIN
	ProbeOutcomeRST         uint8 = 5 // close by RST
	// ProbeOutcomeUnreachable: handshake: an ICMP error (destination
	// unreachable, time exceeded, ...) quoting the SYN ended the attempt.
	ProbeOutcomeUnreachable uint8 = 6
)
