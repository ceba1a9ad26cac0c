package store

import (
	"net/netip"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/enrich"
)

// EndpointID identifies an endpoint across the memory store and history.
//
// A VM endpoint is identified by its name and UUID, not by its EndpointKey:
// VM ids (EndpointKey.VM) are local to one process, and windows read back
// from InfluxDB carry only what Reader.Resolve could map back (nothing for
// a VM that left the inventory, or the overflow endpoint). Keying by the
// process-local id alone would split one pair into two rows at the
// memory/history boundary, or lump every unresolved VM pair of a history
// window into one. A non-VM endpoint is its IP; an endpoint with neither is
// keyed by its (possibly zero) VM id.
type EndpointID struct {
	Name, UUID string
	IP         netip.Addr
	VM         enrich.VMID
}

// IDOf is the canonical identity of an endpoint.
func IDOf(e *aggregate.Endpoint, k aggregate.EndpointKey) EndpointID {
	if k.VM == 0 && k.IP.IsValid() {
		return EndpointID{IP: k.IP.Unmap()}
	}
	if e.VM != "" {
		return EndpointID{Name: e.VM, UUID: e.UUID}
	}
	return EndpointID{VM: k.VM}
}

// PairID is a directed pair regardless of export protocol: the unit the
// pair routes report.
type PairID struct{ Src, Dst EndpointID }

// PairIDOf is the canonical identity of a pair.
func PairIDOf(p *aggregate.Pair) PairID {
	return PairID{IDOf(&p.Src, p.Key.Src), IDOf(&p.Dst, p.Key.Dst)}
}

// EndpointName is what an endpoint is shown and sorted by: its VM name,
// else its IP (the key's when the endpoint carries none).
func EndpointName(e *aggregate.Endpoint, k aggregate.EndpointKey) string {
	if e.VM != "" && !(k.VM == 0 && k.IP.IsValid()) {
		return e.VM
	}
	if e.IP == "" && k.IP.IsValid() {
		return k.IP.String()
	}
	return e.IP
}
