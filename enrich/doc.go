// Package enrich answers, on the hot path and without locks, which VM owns
// a MAC, an IP (per VNI) or a tap device, and which hypervisor an exporter
// speaks for. Inventory sources (the static YAML file of this package,
// libvirt in enrich/libvirt) publish whole Snapshots; the Enricher merges
// the latest snapshot of every source into an immutable Index off the hot
// path (merge order, identities and conflict rules: merge.go) and swaps it
// in atomically. Readers load Enricher.Index() once per datagram.
//
// VMIDs are assigned per VM identity and never reused; Enricher.Describe
// resolves ids of VMs that have since left the inventory (the history
// grows with the number of distinct VMs ever seen).
package enrich
