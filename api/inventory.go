package api

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/enrich"
)

type vmsOut struct {
	VMs       []enrich.VM       `json:"vms"`
	Conflicts []enrich.Conflict `json:"conflicts"`
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// vmsResponse copies the index's VMs (sorted by name) for output, filling
// MAC strings and empty lists so that JSON never has nulls for lists.
func vmsResponse(vms []*enrich.VM, conflicts []enrich.Conflict) vmsOut {
	out := vmsOut{VMs: make([]enrich.VM, 0, len(vms)), Conflicts: []enrich.Conflict{}}
	for _, vm := range vms {
		if vm == nil {
			continue
		}
		v := *vm
		v.Interfaces = make([]enrich.Interface, len(vm.Interfaces))
		for i, ifc := range vm.Interfaces {
			if ifc.MACString == "" {
				ifc.MACString = macString(ifc.MAC)
			}
			if ifc.Addrs == nil {
				ifc.Addrs = []enrich.Addr{}
			}
			v.Interfaces[i] = ifc
		}
		out.VMs = append(out.VMs, v)
	}
	sort.SliceStable(out.VMs, func(i, j int) bool { return out.VMs[i].Name < out.VMs[j].Name })
	out.Conflicts = append(out.Conflicts, conflicts...)
	return out
}

func (s *Server) handleVMs(c *gin.Context) {
	if noQuery(c) != nil {
		return
	}
	var idx *enrich.Index
	if s.deps.Inventory != nil {
		idx = s.deps.Inventory.Index()
	}
	if idx == nil {
		c.JSON(http.StatusOK, vmsResponse(nil, nil))
		return
	}
	out := vmsResponse(idx.VMs(), idx.Conflicts())
	c.JSON(http.StatusOK, vmsWithPortsOut{VMs: s.withPorts(c.Request.Context(), out.VMs), Conflicts: out.Conflicts})
}

// vmsWithPortsOut is GET /api/v1/vms: each VM with its ports (ports.go).
type vmsWithPortsOut struct {
	VMs       []vmOut           `json:"vms"`
	Conflicts []enrich.Conflict `json:"conflicts"`
}

type sourcesOut struct {
	Sources []enrich.SourceStatus `json:"sources"`
}

func (s *Server) handleSources(c *gin.Context) {
	if noQuery(c) != nil {
		return
	}
	out := sourcesOut{Sources: []enrich.SourceStatus{}}
	if s.deps.Inventory != nil {
		out.Sources = append(out.Sources, s.deps.Inventory.Sources()...)
	}
	c.JSON(http.StatusOK, out)
}

type exportersOut struct {
	Exporters []collector.ExporterStatus `json:"exporters"`
}

func (s *Server) handleExporters(c *gin.Context) {
	if noQuery(c) != nil {
		return
	}
	out := exportersOut{Exporters: []collector.ExporterStatus{}}
	if s.deps.Exporters != nil {
		out.Exporters = append(out.Exporters, s.deps.Exporters.Exporters()...)
	}
	sort.SliceStable(out.Exporters, func(i, j int) bool {
		a, b := out.Exporters[i], out.Exporters[j]
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		if a.SubAgent != b.SubAgent {
			return a.SubAgent < b.SubAgent
		}
		return a.ObsDomain < b.ObsDomain
	})
	c.JSON(http.StatusOK, out)
}

func (s *Server) handleHealth(c *gin.Context) {
	if noQuery(c) != nil {
		return
	}
	now := s.deps.Now()
	up := now.Sub(s.started)
	out := map[string]any{
		"status":         "ok",
		"started":        s.started.UTC(),
		"uptime":         up.Round(time.Second).String(),
		"uptime_seconds": up.Seconds(),
	}
	if s.deps.Recent != nil {
		var oldest *time.Time
		if t := s.deps.Recent.Oldest(); !t.IsZero() {
			t = t.UTC()
			oldest = &t
		}
		out["memory_oldest"] = oldest
	}
	if s.deps.Health != nil {
		for k, v := range s.deps.Health() {
			switch k {
			case "started", "uptime", "uptime_seconds":
				continue // ours
			case "status":
				if st, ok := v.(string); ok && st != "" {
					out["status"] = st
				}
				continue
			}
			out[k] = v
		}
	}
	c.JSON(http.StatusOK, out)
}
