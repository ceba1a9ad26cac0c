package api

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/enrich"
)

// Port counters (sFlow counter samples) per VM: the windows' PortStats,
// see aggregate.PortStats. Directions are the switch port's: in = what the
// switch received from the VM (the VM sent), out = what it sent to the VM.

// portOut is one switch port over a window, a bucket or a range.
type portOut struct {
	Agent    string     `json:"agent"`
	SubAgent uint32     `json:"sub_agent"`
	IfIndex  uint32     `json:"if_index"`
	Name     string     `json:"name"`
	Host     string     `json:"host"`
	VM       string     `json:"vm"`
	Time     *time.Time `json:"time,omitempty"` // end of the latest window with a sample
	portRates
}

// portRates are the counter deltas and per-second rates of one port or a
// sum of ports.
type portRates struct {
	Seconds       float64  `json:"seconds"`
	Samples       uint32   `json:"samples"`
	Resets        uint32   `json:"resets"`
	InOctets      uint64   `json:"in_octets"`
	OutOctets     uint64   `json:"out_octets"`
	InPackets     uint64   `json:"in_packets"`
	OutPackets    uint64   `json:"out_packets"`
	InErrors      uint64   `json:"in_errors"`
	OutErrors     uint64   `json:"out_errors"`
	InDiscards    uint64   `json:"in_discards"`
	OutDiscards   uint64   `json:"out_discards"`
	InBPS         float64  `json:"in_bps"`
	OutBPS        float64  `json:"out_bps"`
	InPPS         float64  `json:"in_pps"`
	OutPPS        float64  `json:"out_pps"`
	InErrorsPS    float64  `json:"in_errors_ps"`
	OutErrorsPS   float64  `json:"out_errors_ps"`
	InDiscardsPS  float64  `json:"in_discards_ps"`
	OutDiscardsPS float64  `json:"out_discards_ps"`
	IfSpeed       uint64   `json:"if_speed"`
	InUtil        *float64 `json:"in_utilisation"`
	OutUtil       *float64 `json:"out_utilisation"`
}

func ratesOf(p *aggregate.PortStats) portRates {
	r := portRates{
		Seconds: p.Seconds, Samples: p.Samples, Resets: p.Resets,
		InOctets: p.InOctets, OutOctets: p.OutOctets, InPackets: p.InPackets, OutPackets: p.OutPackets,
		InErrors: p.InErrors, OutErrors: p.OutErrors, InDiscards: p.InDiscards, OutDiscards: p.OutDiscards,
		InBPS: p.Rate(p.InOctets) * 8, OutBPS: p.Rate(p.OutOctets) * 8,
		InPPS: p.Rate(p.InPackets), OutPPS: p.Rate(p.OutPackets),
		InErrorsPS: p.Rate(p.InErrors), OutErrorsPS: p.Rate(p.OutErrors),
		InDiscardsPS: p.Rate(p.InDiscards), OutDiscardsPS: p.Rate(p.OutDiscards),
		IfSpeed: p.IfSpeed,
	}
	if u := p.Utilisation(p.InOctets); u >= 0 {
		r.InUtil = &u
	}
	if u := p.Utilisation(p.OutOctets); u >= 0 {
		r.OutUtil = &u
	}
	return r
}

func portOf(p *aggregate.PortStats, at *time.Time) portOut {
	return portOut{
		Agent: p.Key.Agent.String(), SubAgent: p.Key.SubAgent, IfIndex: p.Key.IfIndex,
		Name: p.Name, Host: p.Host, VM: p.VM, Time: at, portRates: ratesOf(p),
	}
}

// portOfVM tells whether a window's port belongs to the VM named by tok
// (name or UUID).
func portOfVM(p *aggregate.PortStats, tok string) bool {
	return p.VM != "" && (p.VM == tok || (p.UUID != "" && strings.EqualFold(p.UUID, tok)))
}

// noPairs is a store match that selects no pair: port reads need only the
// windows' ports.
func noPairs(*aggregate.PairKey, *aggregate.Endpoint, *aggregate.Endpoint) bool { return false }

// portsLatest is each port's latest window in (from, to], by VM name.
func (s *Server) portsLatest(ctx context.Context, from, to time.Time) map[string][]portOut {
	if s.deps.Store == nil {
		return nil
	}
	windows, err := s.windowsWhere(ctx, from, to, noPairs)
	if err != nil {
		return nil
	}
	type latest struct {
		p  *aggregate.PortStats
		at time.Time
	}
	last := map[aggregate.PortKey]latest{}
	for _, w := range windows {
		for i := range w.Ports {
			p := &w.Ports[i]
			if p.VM != "" && p.Seconds > 0 {
				last[p.Key] = latest{p, w.End}
			}
		}
	}
	out := map[string][]portOut{}
	for _, l := range last {
		at := l.at
		out[l.p.VM] = append(out[l.p.VM], portOf(l.p, &at))
	}
	for _, ps := range out {
		sortPortsOut(ps)
	}
	return out
}

func sortPortsOut(ps []portOut) {
	slices.SortFunc(ps, func(a, b portOut) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Name, b.Name), cmp.Compare(a.IfIndex, b.IfIndex))
	})
}

// vmOut is a VM of GET /api/v1/vms: the inventory record plus its switch
// ports' latest counter rates.
type vmOut struct {
	enrich.VM
	Ports []portOut `json:"ports"`
}

// vmPortsRecent is how far back GET /api/v1/vms looks for each port's
// latest counter window.
const vmPortsRecent = 5 * time.Minute

func (s *Server) withPorts(ctx context.Context, vms []enrich.VM) []vmOut {
	now := s.deps.Now()
	byVM := s.portsLatest(ctx, now.Add(-vmPortsRecent), now)
	out := make([]vmOut, len(vms))
	for i := range vms {
		out[i] = vmOut{VM: vms[i], Ports: byVM[vms[i].Name]}
		if out[i].Ports == nil {
			out[i].Ports = []portOut{}
		}
	}
	return out
}

// vmDetailOut is GET /api/v1/vms/{name}.
type vmDetailOut struct {
	VM   *enrich.VM `json:"vm"`
	From time.Time  `json:"from"`
	To   time.Time  `json:"to"`
	// Ports are the VM's switch ports summed over the range (rates over
	// the time their counter samples cover).
	Ports []portOut `json:"ports"`
	// Resources are the VM's resources now (resources.go), absent
	// without figures.
	Resources *vmResourcesOut `json:"resources,omitempty"`
}

// handleVM: one VM's inventory record and its ports' counters over the
// range (?since=5m or from/to).
func (s *Server) handleVM(c *gin.Context) {
	tok := c.Param("name")
	q := newQuery(c)
	from, to, err := q.timeRange(s.deps.Now(), 5*time.Minute)
	if err == nil {
		err = q.finish()
	}
	if err != nil {
		writeError(c, err)
		return
	}
	inv := s.inventoryVM(tok)
	windows, ok := s.readWindows(c, from, to, noPairs)
	if !ok {
		return
	}
	sums := map[aggregate.PortKey]*aggregate.PortStats{}
	var order []aggregate.PortKey
	lastAt := map[aggregate.PortKey]time.Time{}
	for _, w := range windows {
		for i := range w.Ports {
			p := &w.Ports[i]
			if !portOfVM(p, tok) {
				continue
			}
			if sp, ok := sums[p.Key]; ok {
				sp.Merge(p)
			} else {
				cp := *p
				sums[p.Key] = &cp
				order = append(order, p.Key)
			}
			lastAt[p.Key] = w.End
		}
	}
	if inv == nil && len(order) == 0 {
		c.JSON(http.StatusNotFound, errorBody{Error: "unknown VM " + tok + ": not in the inventory and no port counters in the range"})
		return
	}
	out := vmDetailOut{From: from, To: to, Ports: []portOut{}}
	if inv != nil {
		v := vmsResponse([]*enrich.VM{inv}, nil).VMs[0]
		out.VM = &v
	}
	for _, k := range order {
		at := lastAt[k]
		out.Ports = append(out.Ports, portOf(sums[k], &at))
	}
	sortPortsOut(out.Ports)
	out.Resources = s.vmResourcesNow(tok)
	c.JSON(http.StatusOK, out)
}

// vmPortAcc sums a VM's ports within one series point: each port's
// windows merge (deltas and covered time add), then the point's rates are
// the sums of the ports' rates.
type vmPortAcc struct{ ports []aggregate.PortStats }

func (a *vmPortAcc) add(w *aggregate.Window, tok string) bool {
	found := false
	for i := range w.Ports {
		p := &w.Ports[i]
		if !portOfVM(p, tok) {
			continue
		}
		found = true
		j := 0
		for j < len(a.ports) && a.ports[j].Key != p.Key {
			j++
		}
		if j == len(a.ports) {
			a.ports = append(a.ports, *p)
		} else {
			a.ports[j].Merge(p)
		}
	}
	return found
}

func (a *vmPortAcc) out() *portRates {
	if len(a.ports) == 0 {
		return nil
	}
	var r portRates
	var inU, outU float64
	util := true
	for i := range a.ports {
		p := ratesOf(&a.ports[i])
		r.Seconds = max(r.Seconds, p.Seconds)
		r.Samples += p.Samples
		r.Resets += p.Resets
		r.InOctets += p.InOctets
		r.OutOctets += p.OutOctets
		r.InPackets += p.InPackets
		r.OutPackets += p.OutPackets
		r.InErrors += p.InErrors
		r.OutErrors += p.OutErrors
		r.InDiscards += p.InDiscards
		r.OutDiscards += p.OutDiscards
		r.InBPS += p.InBPS
		r.OutBPS += p.OutBPS
		r.InPPS += p.InPPS
		r.OutPPS += p.OutPPS
		r.InErrorsPS += p.InErrorsPS
		r.OutErrorsPS += p.OutErrorsPS
		r.InDiscardsPS += p.InDiscardsPS
		r.OutDiscardsPS += p.OutDiscardsPS
		r.IfSpeed += p.IfSpeed
		util = util && p.InUtil != nil
	}
	if util && r.IfSpeed > 0 {
		inU, outU = r.InBPS/float64(r.IfSpeed), r.OutBPS/float64(r.IfSpeed)
		r.InUtil, r.OutUtil = &inU, &outU
	}
	a.ports = a.ports[:0]
	return &r
}
