// Package enrich answers, on the hot path and without locks, which VM owns
// a MAC, an IP (per VNI) or a tap device, and which hypervisor an exporter
// speaks for. Inventory sources (the static YAML file of this package,
// libvirt in enrich/libvirt) publish whole Snapshots; the Enricher merges
// the latest snapshot of every source, plus the addresses learned from
// traffic (learn.go), into an immutable Index off the hot path and swaps it
// in atomically. Readers load Enricher.Index() once per datagram.
//
// VMIDs are assigned per VM identity and never reused; Enricher.Describe
// resolves ids of VMs that have since left the inventory (the history
// grows with the number of distinct VMs ever seen).
//
// # Merge order and precedence
//
// Source order. Every snapshot has a rank: first by class, then by source
// name. With enrich.merge = "libvirt-first" (the default) every live source
// (libvirt:URI, anything not named "static") ranks before the static
// inventory; with "static-first" the static inventory ranks first (for
// operators who correct libvirt's view by hand).
//
// VM identity. A VM is its UUID (case-insensitive) or, without one, its
// name; a name-only VM whose name some source gives a UUID joins that
// identity. One identity is one VM in the Index, with one VMID for life.
//
// Fields of one VM. When several snapshots describe an identity, one
// description wins: the better class (enrich.merge), then a non-stale one,
// then state "running", then the better rank. Per field:
//
//   - name, source, stale, interfaces (their MACs, taps, bridges, OVS ports,
//     VNIs): the winner's. Interfaces only another source knows are not
//     added (when the winner lists none, the next description's are used).
//   - host, tenant, tenant_name, state, vcpus, memory: the winner's, or when
//     empty the first non-empty value in rank order.
//   - labels: the union; the winner's value for a key both have.
//   - addresses of an interface: the union over every description of the
//     same MAC, one entry per IP (the first description in rank order
//     names its source); then the addresses learned from traffic for that
//     MAC and VM, unless the interface already has the IP from any source.
//
// Addresses. Every address of every interface claims its IP in the
// interface's VNI for Index.ByIP. Within a VM, an address from static, lease
// or agent wins over arp, which wins over learned (only matters for which
// interface ByIP returns). Between VMs, see Conflicts.
//
// # Conflicts
//
// Two VMs claiming the same MAC, the same IP in one VNI, or the same tap
// on one host are a conflict: one wins deterministically, the lookup returns
// it, and Index.Conflicts lists the key, every VM claiming it, the winner
// (Chose) and the rule that decided (Reason); vmflow_enrich_conflicts{kind}
// counts them. Rules, first difference decides:
//
//  1. an address from static, lease, agent or arp wins over one learned
//     from traffic: a learned IP never overrides an inventory address. The
//     learned address stays listed on its interface (GET /api/v1/vms shows
//     it with source "learned") but ByIP does not return it;
//  2. a VM whose source is reachable wins over a stale one;
//  3. for IPs, static, lease or agent wins over arp;
//  4. of two learned addresses, the one seen last (a floating IP moved);
//  5. a running VM wins over one in another state;
//  6. the better-ranked source (enrich.merge, then source name): the same
//     MAC on a libvirt VM and a static VM goes to libvirt by default;
//  7. the lower VM name, then the lower UUID.
//
// An exporter identity listed for two hosts goes to the better-ranked
// source (within one source, the first listed), also reported, kind
// "exporter".
//
// # Learned addresses
//
// See learn.go: the hot path reports a known VM interface's MAC seen with
// a source IP it does not have (unicast only; link-local only with
// enrich.learn.link_local), rate-limited per worker and without blocking;
// the Enricher remembers it with its last-seen time for enrich.learn.expiry,
// at most enrich.learn.max addresses (enrich.learn.max_per_interface per
// interface), and merges changes into the index at most every
// enrich.learn.interval. Expired addresses leave the index.
package enrich
