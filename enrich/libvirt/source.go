package libvirt

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmflow/vmflow/enrich"
)

// Source follows one libvirt daemon and publishes its domains as
// enrich.Snapshots: a full list on connect and every ResyncInterval, and a
// re-fetch of just the affected domain on every domain event. When the
// connection drops it republishes the last snapshot with Stale set,
// reconnects with exponential backoff and resyncs on return.
type Source struct {
	cc     ConnConfig
	cfg    Config
	m      *Metrics
	mapper Mapper
	name   string
	exps   []netip.Addr

	mu       sync.Mutex
	status   enrich.SourceStatus
	vms      map[string]enrich.VM // by UUID (name when no UUID)
	host     string
	synced   bool // at least one snapshot published
	client   *Client
	publish  func(enrich.Snapshot)
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	started  bool
	resyncCh chan struct{}

	devs      map[string]domDevs // by UUID: devices the stats poller reads
	sink      enrich.ResourceSink
	lastStats []enrich.VMResourceSample
}

// Option configures New.
type Option func(*Source)

// WithResourceSink makes every source hand its stats samples to sink.
func WithResourceSink(sink enrich.ResourceSink) Option { return func(s *Source) { s.sink = sink } }

var _ enrich.InventorySource = (*Source)(nil)

// New validates cfg and returns one Source per configured connection,
// sharing one set of metrics registered on reg. Nothing starts until Start.
func New(cfg Config, reg prometheus.Registerer, opts ...Option) ([]enrich.InventorySource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("libvirt metrics: %w", err)
	}
	out := make([]enrich.InventorySource, 0, len(cfg.Connections))
	for _, cc := range cfg.Connections {
		src := NewSource(cc, cfg, m)
		for _, o := range opts {
			o(src)
		}
		out = append(out, src)
	}
	return out, nil
}

// NewSource builds the source of one connection (cfg gives the shared
// settings; m may be nil for unregistered metrics).
func NewSource(cc ConnConfig, cfg Config, m *Metrics) *Source {
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	var exps []netip.Addr
	for _, e := range cc.Exporters {
		if a, err := netip.ParseAddr(e); err == nil {
			exps = append(exps, a)
		}
	}
	name := "libvirt:" + cc.URI
	return &Source{
		cc: cc, cfg: cfg, m: m, mapper: NewMapper(cfg), name: name, exps: exps,
		vms:      map[string]enrich.VM{},
		devs:     map[string]domDevs{},
		resyncCh: make(chan struct{}, 1),
		status:   enrich.SourceStatus{Name: name, Kind: "libvirt", URI: cc.URI, State: "down"},
	}
}

// Name is "libvirt:" + URI.
func (s *Source) Name() string { return s.name }

// Start begins following the daemon; it returns at once.
func (s *Source) Start(ctx context.Context, publish func(enrich.Snapshot)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("libvirt source %s: already started", s.cc.URI)
	}
	s.started = true
	s.publish = publish
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go s.run(ctx)
	return nil
}

// Stop ends the source and closes its connection.
func (s *Source) Stop() {
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// Status reports the connection state and counters.
func (s *Source) Status() enrich.SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.VMs = len(s.vms)
	return st
}

func (s *Source) setState(state string) {
	s.mu.Lock()
	s.status.State = state
	s.mu.Unlock()
	v := 0.0
	if state == "connected" {
		v = 1
	}
	s.m.connected.WithLabelValues(s.cc.URI).Set(v)
}

func (s *Source) recordError(err error) {
	s.m.rpcErrors.WithLabelValues(s.cc.URI).Inc()
	s.mu.Lock()
	s.status.Errors++
	s.status.LastError = err.Error()
	s.mu.Unlock()
}

func (s *Source) run(ctx context.Context) {
	defer s.wg.Done()
	backoff := s.cfg.ReconnectMin
	for {
		s.setState("connecting")
		synced, err := s.session(ctx)
		if ctx.Err() != nil {
			s.setState("down")
			return
		}
		if err != nil {
			s.recordError(err)
		}
		s.setState("down")
		s.publishStale()
		if synced {
			backoff = s.cfg.ReconnectMin
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		s.m.reconnects.WithLabelValues(s.cc.URI).Inc()
		backoff *= 2
		if backoff > s.cfg.ReconnectMax {
			backoff = s.cfg.ReconnectMax
		}
	}
}

// session runs one connection until it fails or ctx ends; synced says
// whether it got as far as a full resync.
func (s *Source) session(ctx context.Context) (synced bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	cl, err := Dial(dctx, s.cc.URI, DialOptions{
		TLS:               s.cc.TLS,
		ReadOnly:          s.cc.ReadOnly,
		KeepaliveInterval: s.cfg.KeepaliveInterval,
		KeepaliveCount:    s.cfg.KeepaliveCount,
		CallTimeout:       s.cfg.CallTimeout,
		EventBuffer:       s.cfg.EventBuffer,
		Observe:           s.m.observer(s.cc.URI),
		OnEventDrop: func() {
			s.m.eventsDropped.WithLabelValues(s.cc.URI).Inc()
			select {
			case s.resyncCh <- struct{}{}:
			default:
			}
		},
	})
	cancel()
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.client = cl
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.client = nil
		s.mu.Unlock()
		_ = cl.Close()
	}()

	host := s.cc.Host
	if host == "" {
		if host, err = cl.Hostname(ctx); err != nil {
			return false, err
		}
	}
	s.mu.Lock()
	s.host = host
	s.mu.Unlock()

	// Register before listing so nothing that changes during the list is missed.
	if err := cl.WatchEvents(ctx); err != nil {
		return false, err
	}
	if err := s.resync(ctx, cl); err != nil {
		return false, err
	}
	s.setState("connected")

	sctx, stopStats := context.WithCancel(ctx)
	statsDone := make(chan struct{})
	go func() { defer close(statsDone); s.statsLoop(sctx, cl) }()
	defer func() { stopStats(); <-statsDone }()

	tick := time.NewTicker(s.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-cl.Done():
			return true, cl.Err()
		case <-tick.C:
			if err := s.resync(ctx, cl); err != nil {
				return true, err
			}
		case <-s.resyncCh:
			if err := s.resync(ctx, cl); err != nil {
				return true, err
			}
		case ev := <-cl.Events():
			if err := s.handleEvents(ctx, cl, ev); err != nil {
				return true, err
			}
		}
	}
}

// handleEvents re-fetches the domain of ev and of any further events
// already queued (coalesced per domain), then publishes once.
func (s *Source) handleEvents(ctx context.Context, cl *Client, first Event) error {
	doms := map[golibvirt.UUID]Domain{}
	order := []golibvirt.UUID{}
	add := func(ev Event) {
		s.m.events.WithLabelValues(s.cc.URI, ev.Kind.String()).Inc()
		s.mu.Lock()
		s.status.Events++
		s.mu.Unlock()
		if _, ok := doms[ev.Domain.UUID]; !ok {
			order = append(order, ev.Domain.UUID)
		}
		doms[ev.Domain.UUID] = ev.Domain
	}
	add(first)
drain:
	for len(order) < 256 {
		select {
		case ev := <-cl.Events():
			add(ev)
		default:
			break drain
		}
	}
	changed := false
	for _, u := range order {
		d := doms[u]
		vm, err := s.fetch(ctx, cl, d)
		key := UUIDString(d)
		switch {
		case err == nil:
			s.mu.Lock()
			s.vms[key] = vm
			s.mu.Unlock()
			changed = true
		case IsErrorCode(err, golibvirt.ErrNoDomain):
			s.mu.Lock()
			delete(s.vms, key)
			s.mu.Unlock()
			changed = true
		default:
			if !isDaemonError(err) {
				return err // transport trouble: reconnect and resync
			}
			s.recordError(err)
		}
	}
	if changed {
		s.publishCurrent()
	}
	return nil
}

// resync lists every domain and fetches each (FetchConcurrency at a time),
// replacing the source's view.
func (s *Source) resync(ctx context.Context, cl *Client) error {
	start := time.Now()
	doms, err := cl.ListAllDomains(ctx, 0)
	if err != nil {
		return err
	}
	type res struct {
		key string
		vm  enrich.VM
		err error
	}
	// Every domain's state in one CONNECT_GET_ALL_DOMAIN_STATS (state
	// group, which every driver answers, the test driver included) instead
	// of one DOMAIN_GET_STATE each; events registered before the list
	// catch a change between this call and a domain's XML.
	states := s.bulkStates(ctx, cl)
	out := make([]res, len(doms))
	parallel(len(doms), s.cfg.FetchConcurrency, func(i int) {
		out[i].key = UUIDString(doms[i])
		st, ok := states[doms[i].UUID]
		if !ok {
			st = -1
		}
		out[i].vm, out[i].err = s.fetchState(ctx, cl, doms[i], st)
	})

	s.mu.Lock()
	old := s.vms
	s.mu.Unlock()
	next := make(map[string]enrich.VM, len(doms))
	for _, r := range out {
		switch {
		case r.err == nil:
			next[r.key] = r.vm
		case IsErrorCode(r.err, golibvirt.ErrNoDomain):
			// vanished between list and fetch
		default:
			if !isDaemonError(r.err) {
				return r.err
			}
			s.recordError(r.err)
			if vm, ok := old[r.key]; ok {
				next[r.key] = vm // keep what we knew
			}
		}
	}
	s.mu.Lock()
	s.vms = next
	for k := range s.devs {
		if _, ok := next[k]; !ok {
			delete(s.devs, k)
		}
	}
	s.status.LastSync = time.Now()
	s.mu.Unlock()
	s.m.resyncs.WithLabelValues(s.cc.URI).Inc()
	s.m.resyncSeconds.WithLabelValues(s.cc.URI).Observe(time.Since(start).Seconds())
	s.publishCurrent()
	return nil
}

// fetch reads one domain: XML, state and (when active) its addresses.
func (s *Source) fetch(ctx context.Context, cl *Client, d Domain) (enrich.VM, error) {
	return s.fetchState(ctx, cl, d, -1)
}

// bulkStates is every domain's state from one bulk call; nil when the
// daemon cannot answer it (each fetch then asks DOMAIN_GET_STATE).
func (s *Source) bulkStates(ctx context.Context, cl *Client) map[golibvirt.UUID]int32 {
	recs, err := cl.AllDomainStatsFlags(ctx, golibvirt.DomainStatsState, 0)
	if err != nil {
		return nil
	}
	out := make(map[golibvirt.UUID]int32, len(recs))
	for _, r := range recs {
		for _, p := range r.Params {
			if p.Field == "state.state" {
				if v, ok := typedUint(p.Value); ok {
					out[r.Dom.UUID] = int32(v)
				}
				break
			}
		}
	}
	return out
}

// fetchState is fetch with the domain's state already known (-1: ask).
func (s *Source) fetchState(ctx context.Context, cl *Client, d Domain, state int32) (enrich.VM, error) {
	doc, err := cl.DomainXML(ctx, d, 0)
	if err != nil {
		return enrich.VM{}, err
	}
	dx, err := ParseDomainXML([]byte(doc))
	if err != nil {
		return enrich.VM{}, &domainError{err.Error()} // bad XML: a domain-level error
	}
	s.mu.Lock()
	host := s.host
	s.mu.Unlock()
	vm, err := s.mapper.ToVM(dx, host)
	if err != nil {
		return enrich.VM{}, &domainError{err.Error()}
	}
	vm.Source = s.name
	devs := devsOf(dx)
	s.mu.Lock()
	s.devs[UUIDString(d)] = devs
	s.mu.Unlock()
	if state < 0 {
		if state, _, err = cl.DomainState(ctx, d); err != nil {
			return enrich.VM{}, err
		}
	}
	vm.State = StateName(state)
	if state == 1 || state == 2 || state == 3 { // running, blocked, paused
		if err := s.addAddresses(ctx, cl, d, &vm); err != nil {
			return enrich.VM{}, err
		}
	}
	return vm, nil
}

func (s *Source) addAddresses(ctx context.Context, cl *Client, d Domain, vm *enrich.VM) error {
	seen := map[netip.Addr]bool{}
	// Ask every source at once (go-libvirt pipelines the calls), then take
	// the answers in the configured order: the first source to report an
	// address names it.
	srcs := s.cfg.AddressSources
	answers := make([][]InterfaceAddrs, len(srcs))
	errs := make([]error, len(srcs))
	var wg sync.WaitGroup
	for i, srcName := range srcs {
		if i == len(srcs)-1 {
			answers[i], errs[i] = cl.InterfaceAddresses(ctx, d, addrSourceNum[srcName])
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = cl.InterfaceAddresses(ctx, d, addrSourceNum[srcName])
		}()
	}
	wg.Wait()
	for i, srcName := range srcs {
		ifaces, err := answers[i], errs[i]
		if err != nil {
			if isDaemonError(err) {
				// No guest agent, no lease, unsupported: expected, counted.
				s.m.addrErrors.WithLabelValues(s.cc.URI, srcName).Inc()
				continue
			}
			return err
		}
		for _, ia := range ifaces {
			idx := -1
			if hw, err := net.ParseMAC(ia.HWAddr); err == nil && len(hw) == 6 {
				var mac [6]byte
				copy(mac[:], hw)
				for i := range vm.Interfaces {
					if vm.Interfaces[i].MAC == mac {
						idx = i
						break
					}
				}
			}
			if idx < 0 {
				for i := range vm.Interfaces {
					if vm.Interfaces[i].Tap != "" && vm.Interfaces[i].Tap == ia.Name {
						idx = i
						break
					}
				}
			}
			if idx < 0 {
				continue // a guest interface libvirt does not know (e.g. lo from the agent)
			}
			for _, a := range ia.Addrs {
				if seen[a.Addr] {
					continue
				}
				seen[a.Addr] = true
				ifc := &vm.Interfaces[idx]
				ifc.Addrs = append(ifc.Addrs, enrich.Addr{IP: a.Addr, Source: enrich.AddrSource(srcName)})
			}
		}
	}
	return nil
}

// parallel runs fn(0..n-1) on workers goroutines and waits for them.
func parallel(n, workers int, fn func(i int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
}

func (s *Source) snapshotLocked(stale bool) enrich.Snapshot {
	vms := make([]enrich.VM, 0, len(s.vms))
	for _, vm := range s.vms {
		vm.Stale = stale
		vms = append(vms, vm)
	}
	sort.Slice(vms, func(i, j int) bool {
		if vms[i].Name != vms[j].Name {
			return vms[i].Name < vms[j].Name
		}
		return vms[i].UUID < vms[j].UUID
	})
	snap := enrich.Snapshot{Source: s.name, VMs: vms, Stale: stale}
	if s.host != "" {
		snap.Hosts = []enrich.Host{{Name: s.host, Exporters: append([]netip.Addr(nil), s.exps...)}}
	}
	return snap
}

func (s *Source) publishCurrent() {
	s.mu.Lock()
	snap := s.snapshotLocked(false)
	s.synced = true
	pub := s.publish
	s.m.domains.WithLabelValues(s.cc.URI).Set(float64(len(s.vms)))
	s.mu.Unlock()
	if pub != nil {
		pub(snap)
	}
}

func (s *Source) publishStale() {
	s.mu.Lock()
	if !s.synced {
		s.mu.Unlock()
		return
	}
	snap := s.snapshotLocked(true)
	pub := s.publish
	s.mu.Unlock()
	if pub != nil {
		pub(snap)
	}
}
