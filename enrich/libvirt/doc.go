// Package libvirt is vmflow's live VM inventory and resource poller from
// libvirt: an enrich.InventorySource per libvirt daemon, on the upstream
// bindings github.com/digitalocean/go-libvirt (remote RPC protocol) and
// libvirt.org/go/libvirtxml (domain XML).
//
// # Client
//
// Dial(ctx, uri, DialOptions) dials the URI's transport itself (unix
// socket, TCP, or TLS with the configured CA and client certificate and
// libvirt's post-handshake check byte) and hands the connection to
// go-libvirt, which authenticates (none, polkit; SASL is not supported)
// and sends CONNECT_OPEN. Every call goes through Client.call: a context,
// call_timeout and a latency metric per procedure. Between go-libvirt and
// the socket sits wireConn (conn.go), the one protocol piece vmflow keeps,
// for what go-libvirt lacks: keepalive (answering the daemon's pings,
// pinging a silent daemon and ending the connection after
// keepalive_interval x keepalive_count of silence), a bound on frame
// lengths before allocation, and VIR_CONNECT_RO for read_only.
//
// URIs: "test:///default?socket=/dir/libvirt-sock", "qemu:///system"
// (default socket /run/libvirt/libvirt-sock or virtqemud-sock),
// "qemu+unix:///system?socket=...", "qemu+tcp://host[:16509]/system",
// "qemu+tls://host[:16514]/system" (also "qemu://host/system"). The name
// sent in CONNECT_OPEN drops the transport, user, host, port and client
// parameters (socket, no_verify, ...), as libvirt's remote driver does.
//
// # Source
//
// Each Source connects, reads the hostname (or uses the configured host),
// registers for lifecycle and device added/removed events, lists every
// domain and fetches its XML, state and (for running domains) interface
// addresses from the configured address sources in order, and publishes an
// enrich.Snapshot named "libvirt:"+URI. Each event re-fetches only that
// domain (or removes it) and republishes; queued events are coalesced.
// A full resync runs every resync_interval and whenever the event queue
// overflowed. On connection loss the last snapshot is republished with
// Stale set, and the source reconnects with exponential backoff
// (reconnect_min..reconnect_max), resyncing on return.
//
// # Resource stats (stats.go)
//
// Each session also polls its running domains every stats_interval:
// CONNECT_GET_ALL_DOMAIN_STATS (state, cpu-total, balloon, vcpu,
// interface, block) where the daemon answers those groups (stats_mode
// auto falls back for the session when a running domain lacks cpu.time,
// as with the test driver), else per domain DomainGetInfo,
// DomainGetCPUStats, DomainMemoryStats, DomainBlockStats and
// DomainInterfaceStats for the disks and vNICs of its XML. Each domain
// becomes an enrich.VMResourceSample (counters and gauges; Incarnation =
// domain id, so a restart is never read as a rate) handed to the
// WithResourceSink sink; enrich.ResourceTracker derives the rates.
//
// # Configuration (key inventory.libvirt)
//
//	connections:            # one Source each
//	  - uri: qemu+tls://hv1/system
//	    host: hv1           # optional override of the daemon's hostname
//	    exporters: [10.0.0.11]   # this hypervisor's sFlow/IPFIX exporter addresses
//	    read_only: false    # VIR_CONNECT_RO
//	    tls: {ca_file: ..., cert_file: ..., key_file: ..., server_name: ..., insecure_skip_verify: false}
//	resync_interval: 5m
//	reconnect_min: 500ms
//	reconnect_max: 30s
//	address_sources: [lease, agent, arp]   # first source to report an IP wins
//	keepalive_interval: 5s                 # 0: only answer the daemon's pings
//	keepalive_count: 5
//	call_timeout: 30s
//	fetch_concurrency: 8
//	event_buffer: 4096
//	tenant_from: [nova, metadata, static]  # first that yields a tenant wins
//	tenant_metadata: {namespace: "http://example.com/vm/1", element: "meta/tenant", attr: ""}
//	static_tenants:
//	  - {name_prefix: "ci-", host: "", tenant: "t-ci", tenant_name: "CI"}
//	metadata_labels:
//	  - {namespace: "http://example.com/vm/1", element: "meta/team", attr: "", label: team}
//	stats_interval: 0s   # resource polls; 0 = the aggregation window (set by the app)
//	stats_mode: auto     # auto, bulk, per-domain, off
//
// From Nova metadata (<nova:instance>, any xmlns/libvirt/nova/ version):
// Tenant = project uuid, TenantName = project name, and labels
// nova.display_name, nova.flavor, nova.user, nova.user_id, nova.project.
// A domain <title> becomes label libvirt.title.
//
// Username/password (SASL) authentication is not supported.
package libvirt
