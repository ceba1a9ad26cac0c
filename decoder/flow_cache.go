package decoder

import "github.com/prometheus/client_golang/prometheus"

// The IPFIX/NetFlow v9 fast path of one Batch (one worker): the template
// scopes and templates it used last, and the metric counts it has not added
// to the shared counters yet.
//
// A one-record IPFIX message (OVS at sampling=1) would otherwise take, per
// datagram, the decoder's scope map (read lock, hash of the exporter
// address), the scope's template map (read lock, hash) and four atomic adds
// on counters that every worker shares (their cache lines bounce between
// cores). The cache below answers both lookups with a few compares and one
// atomic load (the scope's generation, bumped under the scope's lock by
// every change of its templates); the counts are added once per received
// batch (FlushCounts) instead of once per datagram.
//
// Safety: a cached scope is used only while the decoder removed no scope
// since it was cached (flowDecoder.scopeGen); a cached template only while
// its scope's generation is the one read, under the scope's lock, when it
// was cached, so a replaced, withdrawn, rejected or expired template is
// never used from the cache. Template lifetime is still checked on every
// use.

// flowCacheScopes is the number of template scopes a Batch keeps (the
// exporters and observation domains one reader sees interleaved), and
// flowCacheTemplates the templates kept per scope (OVS uses a few ids per
// bridge: one per L2/L3/L4/tunnel combination seen).
const (
	flowCacheScopes    = 16
	flowCacheTemplates = 4
)

type flowCacheTemplate struct {
	id  uint16
	gen uint64 // the scope's gen when t was looked up
	t   *flowTemplate
}

type flowCacheScope struct {
	key       domainKey
	d         *flowDomain
	tmpl      [flowCacheTemplates]flowCacheTemplate
	nt, nextT int
}

// flowCounts are metric counts of a Batch not yet added to the counters.
type flowCounts struct {
	datagrams, records, options, rateUnknown, dirSkipped [2]uint64
}

type flowCache struct {
	f       *flowDecoder // the decoder the entries belong to
	gen     uint64       // f.scopeGen when the entries were filled
	scopes  [flowCacheScopes]flowCacheScope
	n, next int
	cur     *flowCacheScope // the current message's scope, or nil

	// hold: counts wait in pend until FlushCounts (DeferCounts)
	hold bool
	pend flowCounts
}

// scopeOf returns the template scope of the message (nil if none), through
// the Batch's cache.
func (f *flowDecoder) scopeOf(k domainKey, b *Batch) *flowDomain {
	fc := &b.flow
	fc.cur = nil
	if g := f.scopeGen.Load(); fc.f != f || fc.gen != g {
		// first use, or a scope was removed: start again
		fc.f, fc.gen, fc.n, fc.next = f, g, 0, 0
		fc.scopes = [flowCacheScopes]flowCacheScope{}
	}
	for i := 0; i < fc.n; i++ {
		if s := &fc.scopes[i]; s.key == k {
			fc.cur = s
			return s.d
		}
	}
	d := f.domain(k)
	if d == nil {
		return nil
	}
	i := fc.n
	if fc.n < flowCacheScopes {
		fc.n++
	} else {
		i = fc.next
		fc.next = (fc.next + 1) % flowCacheScopes
	}
	fc.scopes[i] = flowCacheScope{key: k, d: d}
	fc.cur = &fc.scopes[i]
	return d
}

// lookupTemplate returns the template id of the message's scope (nil if
// unknown), through the Batch's cache.
func (f *flowDecoder) lookupTemplate(c *msgCtx, id uint16, b *Batch) *flowTemplate {
	d := c.d
	if d == nil {
		return nil
	}
	s := b.flow.cur
	if s != nil && s.d != d {
		s = nil // the scope was made by this message (a template set)
	}
	if s != nil {
		g := d.gen.Load()
		for i := 0; i < s.nt; i++ {
			if e := &s.tmpl[i]; e.id == id && e.gen == g {
				return e.t
			}
		}
	}
	d.mu.RLock()
	t := d.templates[id]
	g := d.gen.Load()
	d.mu.RUnlock()
	if t == nil || s == nil {
		return t
	}
	i := s.nt
	for j := 0; j < s.nt; j++ {
		if s.tmpl[j].id == id { // a stale entry of this id
			i = j
			break
		}
	}
	if i == s.nt {
		if s.nt < flowCacheTemplates {
			s.nt++
		} else {
			i = s.nextT
			s.nextT = (s.nextT + 1) % flowCacheTemplates
		}
	}
	s.tmpl[i] = flowCacheTemplate{id: id, gen: g, t: t}
	return t
}

// count adds one message's counts, to b's pending counts when they are
// held, else to the counters.
func (f *flowDecoder) count(c *msgCtx, b *Batch) {
	if b.flow.hold {
		p := &b.flow.pend
		p.records[c.si] += uint64(c.nRecords)
		p.options[c.si] += uint64(c.nOptions)
		p.rateUnknown[c.si] += uint64(c.nRateUnknown)
		p.dirSkipped[c.si] += uint64(c.nDirSkipped)
		return
	}
	addCount(f.m.records[c.si], uint64(c.nRecords))
	addCount(f.m.optionsRecords[c.si], uint64(c.nOptions))
	addCount(f.m.rateUnknown[c.si], uint64(c.nRateUnknown))
	addCount(f.m.dirSkipped[c.si], uint64(c.nDirSkipped))
}

func addCount(c prometheus.Counter, n uint64) {
	if n > 0 {
		c.Add(float64(n))
	}
}

// DeferCounts makes Decode keep the per-datagram metric counts of IPFIX and
// NetFlow v9 datagrams decoded into b (datagrams, flow records, options
// records, records with an unknown sampling rate, records skipped by
// direction) in b until FlushCounts adds them to the counters: one atomic
// add per counter and received batch instead of per datagram. Errors,
// template events and unknown templates are still counted at once. The
// caller must call FlushCounts after each run of datagrams (the collector's
// received batch).
func (d *Decoder) DeferCounts(b *Batch) { b.flow.hold = true }

// FlushCounts adds b's held counts to the counters (see DeferCounts).
func (d *Decoder) FlushCounts(b *Batch) {
	p := &b.flow.pend
	if *p == (flowCounts{}) {
		return
	}
	for si, src := range [2]Source{SourceIPFIX, SourceNetFlow9} {
		if n := p.datagrams[si]; n > 0 {
			d.m.datagrams[src].Add(float64(n))
		}
		addCount(d.flow.m.records[si], p.records[si])
		addCount(d.flow.m.optionsRecords[si], p.options[si])
		addCount(d.flow.m.rateUnknown[si], p.rateUnknown[si])
		addCount(d.flow.m.dirSkipped[si], p.dirSkipped[si])
	}
	*p = flowCounts{}
}
