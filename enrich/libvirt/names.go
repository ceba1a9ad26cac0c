package libvirt

import "fmt"

// LifecycleName names a virDomainEventType (the "event" of a lifecycle event).
func LifecycleName(ev int32) string {
	names := [...]string{"defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown", "pmsuspended", "crashed"}
	if ev >= 0 && int(ev) < len(names) {
		return names[ev]
	}
	return fmt.Sprintf("event-%d", ev)
}

// virDomainState.
var stateNames = [...]string{"nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended"}

// StateName names a virDomainState.
func StateName(s int32) string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state-%d", s)
}

// virDomainInterfaceAddressesSource.
const (
	AddrSrcLease = 0 // VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE
	AddrSrcAgent = 1 // VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT
	AddrSrcARP   = 2 // VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP
)
