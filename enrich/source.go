package enrich

import (
	"context"
	"time"
)

// Snapshot is the full state one inventory source knows at a moment. A
// source publishes a whole new Snapshot on every change; the Enricher merges
// the latest snapshot of every source into a new Index.
type Snapshot struct {
	Source string // unique source name, e.g. "static", "libvirt:qemu+tcp://hv1/system"
	VMs    []VM   // IDs are assigned by the Enricher; leave ID zero
	Hosts  []Host
	// Stale marks every VM of this source as stale (connection lost): the
	// VMs are kept and still attribute traffic, flagged in the API.
	Stale bool
}

// SourceStatus is a source's health for GET /api/v1/inventory/sources.
type SourceStatus struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"` // "static", "libvirt"
	URI       string    `json:"uri,omitempty"`
	State     string    `json:"state"` // "connected", "connecting", "down", "loaded", "error"
	LastSync  time.Time `json:"last_sync"`
	VMs       int       `json:"vms"`
	Events    uint64    `json:"events"`
	Errors    uint64    `json:"errors"`
	LastError string    `json:"last_error,omitempty"`
}

// InventorySource feeds the Enricher. Start must return quickly; the source
// then calls publish from its own goroutine whenever its view changes.
type InventorySource interface {
	Name() string
	Start(ctx context.Context, publish func(Snapshot)) error
	Stop()
	Status() SourceStatus
}
