package api

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/alert"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// Tenant scope. A tenant-scoped identity is served by a Server of its own
// whose collaborators are views of the real ones: the store returns only
// pairs with at least one endpoint in the identity's tenants, the other
// endpoint masked when it is not; the inventory holds only the tenants'
// VMs; alerts only those about the tenants, masked likewise; exporters,
// inventory sources, silences, rules, health details and metrics are not
// there at all. Every handler, including routes added later, therefore
// computes its lists, totals, aggregates and 404s from what the tenant may
// see, with no handler of its own to get wrong.

// Opaque endpoint names shown to tenants.
const (
	OtherTenant = "(other tenant)" // a VM of another tenant (or of none)
	External    = "(external)"     // a non-VM peer, when external IPs are hidden
)

// Endpoint keys of the opaque endpoints: VM ids no inventory hands out.
var (
	otherTenantKey = aggregate.EndpointKey{VM: enrich.VMID(math.MaxUint32)}
	externalKey    = aggregate.EndpointKey{VM: enrich.VMID(math.MaxUint32 - 1)}
)

// tenantScope is the set of tenants an identity may see.
type tenantScope struct {
	tenants     map[string]bool
	externalIPs bool // external peers keep their IP (api.auth.tenant_external_ips)
}

func newTenantScope(tenants []string, externalIPs bool) *tenantScope {
	sc := &tenantScope{tenants: map[string]bool{}, externalIPs: externalIPs}
	for _, t := range tenants {
		sc.tenants[t] = true
	}
	return sc
}

// mine tells an endpoint that is a VM of one of the scope's tenants.
func (sc *tenantScope) mine(e *aggregate.Endpoint, k aggregate.EndpointKey) bool {
	if k.VM == 0 && k.IP.IsValid() {
		return false // an address, no VM
	}
	return e.Tenant != "" && sc.tenants[e.Tenant]
}

func (sc *tenantScope) keep(_ *aggregate.PairKey, src, dst *aggregate.Endpoint) bool {
	// The store's match sees resolved endpoints; IP-keyed ones carry no
	// tenant, so this is mine() for both.
	return (src.Tenant != "" && sc.tenants[src.Tenant]) || (dst.Tenant != "" && sc.tenants[dst.Tenant])
}

// opaque is what a tenant sees of an endpoint that is not its own.
func (sc *tenantScope) opaque(e aggregate.Endpoint, k aggregate.EndpointKey) (aggregate.Endpoint, aggregate.EndpointKey, bool) {
	if k.VM == 0 && k.IP.IsValid() {
		if sc.externalIPs {
			return aggregate.Endpoint{IP: k.IP.String()}, k, true
		}
		return aggregate.Endpoint{VM: External}, externalKey, false
	}
	return aggregate.Endpoint{VM: OtherTenant, Tenant: OtherTenant}, otherTenantKey, false
}

// mask is the opaque form of one side, clearing its last-seen addresses
// (the IP stays for an external peer when external IPs are shown).
func (sc *tenantScope) mask(e aggregate.Endpoint, k aggregate.EndpointKey, ip *netip.Addr, mac *[6]byte) (aggregate.Endpoint, aggregate.EndpointKey) {
	oe, ok, keepIP := sc.opaque(e, k)
	*mac = [6]byte{}
	if !keepIP {
		*ip = netip.Addr{}
	}
	return oe, ok
}

// pair is p as the tenant sees it; ok=false when it may not see it.
func (sc *tenantScope) pair(p *aggregate.Pair) (aggregate.Pair, bool) {
	srcMine, dstMine := sc.mine(&p.Src, p.Key.Src), sc.mine(&p.Dst, p.Key.Dst)
	if !srcMine && !dstMine {
		return aggregate.Pair{}, false
	}
	q := *p
	if !srcMine {
		q.Src, q.Key.Src = sc.mask(p.Src, p.Key.Src, &q.Stats.SrcIP, &q.Stats.SrcMAC)
	}
	if !dstMine {
		q.Dst, q.Key.Dst = sc.mask(p.Dst, p.Key.Dst, &q.Stats.DstIP, &q.Stats.DstMAC)
	}
	return q, true
}

// window is w as the tenant sees it: its pairs only, masked, the pairs
// that became one (two peers of other tenants) merged.
func (sc *tenantScope) window(w *aggregate.Window, keep store.Match) *aggregate.Window {
	out := &aggregate.Window{Start: w.Start, End: w.End}
	var at map[aggregate.PairKey]int
	for i := range w.Pairs {
		q, ok := sc.pair(&w.Pairs[i])
		if !ok || (keep != nil && !keep(&q.Key, &q.Src, &q.Dst)) {
			continue
		}
		if q.Key.Src == otherTenantKey || q.Key.Src == externalKey || q.Key.Dst == otherTenantKey || q.Key.Dst == externalKey {
			if at == nil {
				at = map[aggregate.PairKey]int{}
			}
			if j, dup := at[q.Key]; dup {
				out.Pairs[j].Stats.Merge(&q.Stats)
				continue
			}
			at[q.Key] = len(out.Pairs)
		}
		out.Pairs = append(out.Pairs, q)
	}
	// Port counters of the tenants' own VMs only (the uplinks and other
	// tenants' taps are the installation's).
	for i := range w.Ports {
		if t := w.Ports[i].Tenant; t != "" && sc.tenants[t] {
			out.Ports = append(out.Ports, w.Ports[i])
		}
	}
	return out
}

// scopedStore is the store as a tenant sees it.
type scopedStore struct {
	inner store.Reader
	sc    *tenantScope
}

func (s scopedStore) Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	return s.WindowsWhere(ctx, from, to, nil)
}

// WindowsWhere applies keep to the masked pairs, so that a filter naming
// another tenant's VM matches nothing, exactly like a VM that does not
// exist.
func (s scopedStore) WindowsWhere(ctx context.Context, from, to time.Time, keep store.Match) ([]*aggregate.Window, error) {
	var ws []*aggregate.Window
	var err error
	if qr, ok := s.inner.(store.Querier); ok {
		ws, err = qr.WindowsWhere(ctx, from, to, s.sc.keep)
	} else {
		ws, err = s.inner.Windows(ctx, from, to)
	}
	if err != nil {
		return nil, err
	}
	out := make([]*aggregate.Window, 0, len(ws))
	for _, w := range ws {
		out = append(out, s.sc.window(w, keep))
	}
	return out, nil
}

// TopPairs has no tenant fast path: the handlers merge the masked windows.
func (s scopedStore) TopPairs(context.Context, store.PairQuery) (*store.PairResult, error) {
	return nil, store.ErrNotCovered
}

// scopedInventory is the inventory as a tenant sees it.
type scopedInventory struct {
	inner Inventory
	sc    *tenantScope

	mu         sync.Mutex
	from, view *enrich.Index // view is from restricted
}

func (s *scopedInventory) Index() *enrich.Index {
	idx := s.inner.Index()
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx != s.from || s.view == nil {
		s.from = idx
		s.view = idx.Restrict(func(vm *enrich.VM) bool { return vm.Tenant != "" && s.sc.tenants[vm.Tenant] }, OtherTenant)
	}
	return s.view
}

// Sources are not the tenant's business.
func (s *scopedInventory) Sources() []enrich.SourceStatus { return nil }

// scopedAlerts are the alerts about the scope's tenants, everything that
// names another tenant's VM or an external address masked.
type scopedAlerts struct {
	inner Alerts
	inv   Inventory // the full inventory (nil: none)
	sc    *tenantScope
}

var errTenantForbidden = errors.New("not available to tenant-scoped identities")

func (s scopedAlerts) Alerts(f alert.AlertFilter) []alert.AlertView {
	// Tenant and VM filters apply to what the tenant sees, never to the
	// unmasked alerts (a filter naming another tenant's VM finds nothing).
	tenant, vm := f.Tenant, f.VM
	f.Tenant, f.VM = "", ""
	all := s.inner.Alerts(f)
	out := make([]alert.AlertView, 0, len(all))
	post := alert.AlertFilter{Tenant: tenant, VM: vm}
	var repl *strings.Replacer
	mineNames := map[string]bool{}
	for _, v := range all {
		if !s.sc.tenants[v.Labels["tenant"]] && !s.sc.tenants[v.Labels["src_tenant"]] && !s.sc.tenants[v.Labels["dst_tenant"]] {
			continue
		}
		if repl == nil {
			repl = s.replacer(mineNames)
		}
		m := v
		m.Labels = map[string]string{}
		for k, x := range v.Labels {
			m.Labels[k] = s.maskValue(k, x, repl, mineNames)
		}
		m.Annotations = map[string]string{}
		for k, x := range v.Annotations {
			m.Annotations[k] = repl.Replace(x)
		}
		m.Link = repl.Replace(v.Link)
		if post.Matches(&m) {
			out = append(out, m)
		}
	}
	return out
}

// maskValue masks one label: tenant labels of other tenants, and any
// value naming something not the tenant's own.
func (s scopedAlerts) maskValue(k, v string, repl *strings.Replacer, mine map[string]bool) string {
	switch {
	case strings.HasSuffix(k, "tenant"):
		if !s.sc.tenants[v] {
			return OtherTenant
		}
		return v
	case strings.HasSuffix(k, "host"), k == "exporter":
		if !mine[v] {
			return OtherTenant
		}
		return v
	case k == "src", k == "dst", k == "peer", k == "vm":
		if mine[v] {
			return v
		}
		if _, err := netip.ParseAddr(v); err == nil {
			if s.sc.externalIPs && !s.foreignIP(v) {
				return v
			}
			return External
		}
		return OtherTenant
	}
	return repl.Replace(v)
}

// foreignIP tells an address of another tenant's VM.
func (s scopedAlerts) foreignIP(v string) bool {
	if s.inv == nil || s.inv.Index() == nil {
		return false
	}
	for _, vm := range s.inv.Index().VMs() {
		if vm == nil || s.sc.tenants[vm.Tenant] {
			continue
		}
		for _, ifc := range vm.Interfaces {
			for _, a := range ifc.Addrs {
				if a.IP.String() == v {
					return true
				}
			}
		}
	}
	return false
}

// replacer replaces every name, UUID, MAC and address of another tenant's
// VM (and every host that runs none of the scope's VMs) in free text;
// mine receives the scope's own names and hosts.
func (s scopedAlerts) replacer(mine map[string]bool) *strings.Replacer {
	var pairs []string
	if s.inv != nil && s.inv.Index() != nil {
		var foreign []string
		for _, vm := range s.inv.Index().VMs() {
			if vm == nil {
				continue
			}
			ids := []string{vm.Name, vm.UUID}
			for _, ifc := range vm.Interfaces {
				ids = append(ids, macString(ifc.MAC), ifc.MACString)
				for _, a := range ifc.Addrs {
					ids = append(ids, a.IP.String())
				}
			}
			if vm.Tenant != "" && s.sc.tenants[vm.Tenant] {
				mine[vm.Name], mine[vm.Host] = true, true
				for _, id := range ids[2:] {
					mine[id] = true
				}
				continue
			}
			foreign = append(foreign, ids...)
		}
		// Longest first, so that a name that extends another is replaced whole.
		slices.SortFunc(foreign, func(a, b string) int { return len(b) - len(a) })
		for _, f := range slices.Compact(foreign) {
			if f != "" && !mine[f] {
				pairs = append(pairs, f, OtherTenant)
			}
		}
	}
	return strings.NewReplacer(pairs...)
}

func (s scopedAlerts) Rules() alert.RulesStatus  { return alert.RulesStatus{} }
func (s scopedAlerts) Silences() []alert.Silence { return nil }
func (s scopedAlerts) AddSilence(alert.Silence) (alert.Silence, error) {
	return alert.Silence{}, errTenantForbidden
}
func (s scopedAlerts) DeleteSilence(string) error { return errTenantForbidden }

// scopedDeps are the collaborators of the server for one tenant scope.
func (s *Server) scopedDeps(sc *tenantScope) Deps {
	d := Deps{
		WindowSize: s.deps.WindowSize,
		UI:         s.deps.UI,
		Logger:     s.deps.Logger,
		Now:        s.deps.Now,
		Access:     AccessDeps{scope: sc},
	}
	if s.deps.Store != nil {
		d.Store = scopedStore{inner: s.deps.Store, sc: sc}
	}
	if s.deps.Inventory != nil {
		d.Inventory = &scopedInventory{inner: s.deps.Inventory, sc: sc}
	}
	if s.deps.Alerts != nil {
		d.Alerts = scopedAlerts{inner: s.deps.Alerts, inv: s.deps.Inventory, sc: sc}
	}
	if s.deps.Resources != nil && s.deps.Inventory != nil {
		d.Resources = scopedResources{inner: s.deps.Resources, inv: &scopedInventory{inner: s.deps.Inventory, sc: sc}}
	}
	return d
}

// scopedResources are the VM resources of the scope's tenants' VMs only;
// hosts (the installation's hypervisors, the sums of every tenant's VMs)
// are not the tenant's business.
type scopedResources struct {
	inner Resources
	inv   *scopedInventory
}

func (s scopedResources) mine(r *enrich.VMResources) bool {
	idx := s.inv.Index()
	if idx == nil {
		return false
	}
	for _, vm := range idx.VMs() {
		if vm == nil || vm.Name == OtherTenant {
			continue
		}
		if (r.UUID != "" && strings.EqualFold(vm.UUID, r.UUID)) || (r.UUID == "" && vm.Name == r.Name && (r.Host == "" || vm.Host == r.Host)) {
			return true
		}
	}
	return false
}

func (s scopedResources) Find(uuid, name, host string) (enrich.VMResources, bool) {
	r, ok := s.inner.Find(uuid, name, host)
	if !ok || !s.mine(&r) {
		return enrich.VMResources{}, false
	}
	return r, true
}

// Series is only asked for a key Find returned (handleVMResourceSeries).
func (s scopedResources) Series(key string, from, to time.Time) []enrich.ResourcePoint {
	return s.inner.Series(key, from, to)
}

func (s scopedResources) Hosts() []enrich.HostResources { return nil }
