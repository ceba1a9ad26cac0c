// Package aggregate attributes every decoded record to a directed pair of
// endpoints and sums it into per-pair statistics over time windows.
//
// # Endpoints
//
// The inner packet decides (for VXLAN/Geneve the decoder's Record already
// holds the inner packet, with the VNI). Each side is looked up by MAC
// (Index.ByMAC), then by (VNI, IP) (Index.ByIP) — or IP first with
// aggregate.prefer = "ip". A side that is no known VM is keyed by its IP
// and still counted, never dropped. A side with neither a known MAC nor an
// IP (ARP, LLDP, other non-IP frames from unknown MACs) is the "non-IP"
// endpoint (zero EndpointKey, shown with an empty ip and its last MAC) and
// counted in vmflow_aggregate_non_ip_records_total.
//
// The source side also feeds address learning (enrich/learn.go): a known
// VM MAC seen with a source IP the index does not list is reported,
// rate-limited per worker, without affecting counting.
//
// # Count each packet once
//
// Open vSwitch samples a packet where it enters a bridge (sFlow and bridge
// IPFIX both sample at ingress). A VM-to-VM packet between two hypervisors
// enters the source VM's bridge from the VM's tap, then the destination's
// bridge from the tunnel or patch port: it is sampled on both. The
// observation point of a record is its exporter identity (sFlow agent
// address and sub-agent; IPFIX/NetFlow exporter address and observation
// domain), mapped to a hypervisor by the inventory (Index.HostOfObservation).
// A host is "observed" when the inventory lists at least one exporter for it.
//
// With aggregate.count = "source-host" (the default) a record is counted
// only when:
//
//  1. the source is a known VM on an observed host: the observation host
//     is the source VM's host. Every packet a VM sends enters its own
//     host's bridge exactly once, from its tap, so it is counted exactly
//     once, where it was sent, whatever crosses later;
//  2. else, the destination is a known VM on an observed host: the
//     observation host is the destination VM's host. A packet from outside
//     (or from a VM on an unobserved host) may cross other monitored
//     bridges on its way in (a network node, a gateway hypervisor), but it
//     enters the destination's bridge exactly once, last, so it is counted
//     there;
//  3. else (neither side is a VM on an observed host, or the record's
//     exporter maps to no host): every observation counts. This is the
//     limit of the rule: traffic between two non-VM endpoints that crosses
//     several monitored bridges is counted once per bridge; an exporter
//     missing from the inventory's hosts counts everything it sees
//     (vmflow_aggregate_unmapped_exporter_records_total shows it) and can
//     double count with the mapped exporter of the same path. On a single
//     hypervisor, or with no hosts section, nothing is ever suppressed.
//
// Records not counted by the rule are counted in
// vmflow_aggregate_suppressed_total{reason="duplicate_observation"}.
// aggregate.count = "all" disables the rule (every observation counts).
//
// Live migration. The VM keeps its VMID, so its pairs continue. While the
// index says host B, a VM's packets sampled on its previous host A are
// still counted for aggregate.migration_grace (default 10 s) after the
// Enricher saw the move (VM.PrevHost, VM.MovedAt): this keeps samples and
// IPFIX flow records that A exported late (batching, active timeouts), and
// covers the index being switched a moment before the VM really moved.
// The price: during the grace, a packet from the moving VM to a VM on A is
// sampled at B (the sender's tap) and at A (tunnel ingress) and counted
// twice. Packets the VM sends before the index learns of the move are
// suppressed as duplicate observations (the lag is the inventory's event
// delay, under a second with libvirt events). migration_grace = 0 turns the
// grace off.
//
// # sFlow and IPFIX from the same bridge
//
// A PairKey includes the export protocol, so sFlow, IPFIX and NetFlow v9
// views of the same traffic are kept side by side and never add up.
// Readers pick one with Select: "sflow", "ipfix", "netflow9", or "auto" =
// for each pair, in each window, the most precise protocol that has it
// (ipfix > netflow9 > sflow).
//
// # Estimates
//
// Each record is scaled by its sampling rate N (0 is treated as 1 and
// counted in vmflow_aggregate_sampling_rate_missing_total). For a record of
// b bytes and p packets: Bytes += N·b, Packets += N·p, and the variance
// estimates BytesVar += N·(N−1)·b², PacketsVar += N·(N−1)·p² (the
// Horvitz–Thompson variance of 1-in-N packet sampling; 0 for N = 1). The
// 95% interval is estimate ± 1.96·√variance, its lower end clamped at the
// bytes/packets actually observed (SampledBytes/SampledPackets).
//
// Flows is the number of distinct 5-tuples (protocol, addresses, ports,
// plus VNI) per pair per window, exact across collector workers; summing
// windows sums these counts. TCP SYN (SYN without ACK), SYNACK, RST and FIN
// are scaled packet counts; they are exact for packet samples (sFlow). For
// flow records (IPFIX/NetFlow) the flags are the union over the flow: a
// record with SYN counts one SYN (×N) whether or not ACK is also set, and
// SYNACK is only counted for single-packet records. ICMP errors are ICMPv4
// types 3, 11, 12 and ICMPv6 types 1–4. Top destination ports (TCP, UDP,
// SCTP) are kept per pair with the space-saving algorithm (TopPortsN
// entries, by scaled bytes). Window.DstPorts counts, per source VM and
// protocol, the distinct (protocol, destination port) over every distinct
// flow of the window, all peers and workers together (exact up to 64,
// then a HyperLogLog of 2^10 registers, ±3.3%, reused across windows);
// the alert engine's fan-out by ports reads it.
//
// # Windows
//
// Windows are aligned to wall-clock multiples of aggregate.window; the
// first window starts when the aggregator starts and the last one ends when
// it stops, so rates over (End − Start) are right. A record belongs to the
// window open when it is added. Each collector worker adds into its own
// shard (a per-worker lock that only the window close contends); at close
// the shards are merged and one immutable *Window goes to every sink, also
// when there was no traffic. aggregate.max_pairs bounds the pairs per shard
// per window: records of further new pairs go to one overflow pair per
// protocol (endpoint VM "(overflow)") and are counted in
// vmflow_aggregate_overflow_records_total.
package aggregate
