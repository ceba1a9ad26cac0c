package libvirt

import (
	"context"
	"strconv"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/vmflow/vmflow/enrich"
)

// Stats modes (Config.StatsMode).
const (
	StatsAuto      = "auto"       // bulk where the daemon answers every group, else per-domain
	StatsBulk      = "bulk"       // CONNECT_GET_ALL_DOMAIN_STATS only
	StatsPerDomain = "per-domain" // DomainGetInfo, DomainMemoryStats, DomainBlockStats, ...
	StatsOff       = "off"
)

// bulkGroups are the stats groups asked in one CONNECT_GET_ALL_DOMAIN_STATS.
const bulkGroups = golibvirt.DomainStatsState | golibvirt.DomainStatsCPUTotal | golibvirt.DomainStatsBalloon |
	golibvirt.DomainStatsVCPU | golibvirt.DomainStatsInterface | golibvirt.DomainStatsBlock

// domDevs is what the poller needs of a domain besides its handle: the
// devices named in its XML (filled by fetch).
type domDevs struct {
	name  string
	disks []string
	nics  []nicDev
}

type nicDev struct {
	dev string
	mac [6]byte
}

func devsOf(dx *DomainXML) domDevs {
	d := domDevs{name: dx.Name}
	if dx.Devices == nil {
		return d
	}
	for _, disk := range dx.Devices.Disks {
		if disk.Target == nil || disk.Target.Dev == "" || (disk.Device != "" && disk.Device != "disk") {
			continue // cdroms and floppies: often empty, no stats
		}
		d.disks = append(d.disks, disk.Target.Dev)
	}
	for _, ifc := range dx.Devices.Interfaces {
		if ifc.Target == nil || ifc.Target.Dev == "" {
			continue
		}
		n := nicDev{dev: ifc.Target.Dev}
		if ifc.MAC != nil {
			if hw, err := parseMAC(ifc.MAC.Address); err == nil && len(hw) == 6 {
				copy(n.mac[:], hw)
			}
		}
		d.nics = append(d.nics, n)
	}
	return d
}

// pollStats reads every active domain's counters once and hands the
// samples to the sink. It returns only transport errors (the session
// then reconnects); a domain-level error skips that figure and is counted.
func (s *Source) pollStats(ctx context.Context, cl *Client, bulkOK *bool) error {
	start := time.Now()
	mode := s.cfg.StatsMode
	var samples []enrich.VMResourceSample
	var err error
	if mode == StatsBulk || (mode == StatsAuto && *bulkOK) {
		var complete bool
		samples, complete, err = s.pollBulk(ctx, cl)
		if err != nil && !isDaemonError(err) {
			return err
		}
		if mode == StatsAuto && (err != nil || !complete) {
			// The daemon (e.g. the test driver) answers only some groups:
			// per-domain calls from now on, for this session.
			*bulkOK = false
			samples, err = nil, nil
		}
		if err != nil {
			s.m.statsErrors.WithLabelValues(s.cc.URI, "bulk").Inc()
			return nil
		}
	}
	used := "bulk"
	if samples == nil {
		used = "per-domain"
		if samples, err = s.pollPerDomain(ctx, cl); err != nil {
			return err
		}
	}
	s.m.statsPolls.WithLabelValues(s.cc.URI, used).Inc()
	s.m.statsSeconds.WithLabelValues(s.cc.URI, used).Observe(time.Since(start).Seconds())
	if s.sink != nil {
		for _, smp := range samples {
			s.sink.PutVM(smp)
		}
	}
	s.mu.Lock()
	s.lastStats = samples
	s.mu.Unlock()
	return nil
}

func (s *Source) newSample(d Domain, t time.Time) enrich.VMResourceSample {
	s.mu.Lock()
	host := s.host
	s.mu.Unlock()
	return enrich.VMResourceSample{
		UUID: UUIDString(d), Name: d.Name, Host: host,
		Source: enrich.ResourceSourceLibvirt, Origin: s.name, Time: t,
		Incarnation: uint64(uint32(d.ID)),
	}
}

// pollBulk is one CONNECT_GET_ALL_DOMAIN_STATS for the active domains.
// complete is false when a running domain lacks the cpu group (daemons
// that answer only the state group).
func (s *Source) pollBulk(ctx context.Context, cl *Client) (out []enrich.VMResourceSample, complete bool, err error) {
	recs, err := cl.AllDomainStats(ctx, bulkGroups)
	if err != nil {
		return nil, false, err
	}
	now := time.Now()
	complete = true
	out = make([]enrich.VMResourceSample, 0, len(recs))
	for i := range recs {
		smp := s.newSample(recs[i].Dom, now)
		hasCPU := DecodeBulkRecord(recs[i].Params, &smp)
		if !hasCPU && smp.State == "running" {
			complete = false
		}
		out = append(out, smp)
	}
	return out, complete, nil
}

// DecodeBulkRecord fills smp from one domain's typed parameters of
// CONNECT_GET_ALL_DOMAIN_STATS (groups state, cpu-total, balloon, vcpu,
// interface, block; names as in libvirt's virConnectGetAllDomainStats
// documentation). It reports whether the record had the cpu group.
// Values of any numeric type (int, uint, llong, ullong, double, boolean)
// are accepted for a numeric field; strings only for names.
func DecodeBulkRecord(params []golibvirt.TypedParam, smp *enrich.VMResourceSample) (hasCPU bool) {
	nets := map[int]*enrich.NICSample{}
	blocks := map[int]*enrich.DiskSample{}
	var netOrder, blockOrder []int
	netAt := func(i int) *enrich.NICSample {
		if n := nets[i]; n != nil {
			return n
		}
		n := &enrich.NICSample{}
		nets[i] = n
		netOrder = append(netOrder, i)
		return n
	}
	blockAt := func(i int) *enrich.DiskSample {
		if b := blocks[i]; b != nil {
			return b
		}
		b := &enrich.DiskSample{}
		blocks[i] = b
		blockOrder = append(blockOrder, i)
		return b
	}
	const kib = 1024
	for _, p := range params {
		f := p.Field
		v, isNum := typedUint(p.Value)
		str, _ := p.Value.I.(string)
		switch {
		case f == "state.state" && isNum:
			smp.State = StateName(int32(v))
		case f == "cpu.time" && isNum:
			smp.CPU.TimeNs, hasCPU = v, true
			smp.CPU.Have |= enrich.HasCPUTime
		case f == "cpu.user" && isNum:
			smp.CPU.UserNs = v
			smp.CPU.Have |= enrich.HasCPUUserSystem
		case f == "cpu.system" && isNum:
			smp.CPU.SystemNs = v
			smp.CPU.Have |= enrich.HasCPUUserSystem
		case f == "vcpu.current" && isNum:
			smp.CPU.VCPUs = int(v)
			smp.CPU.Have |= enrich.HasVCPUs
		case strings.HasPrefix(f, "balloon.") && isNum:
			m := &smp.Mem
			switch f[len("balloon."):] {
			case "current":
				m.BalloonBytes, m.Have = v*kib, m.Have|enrich.HasMemBalloon
			case "maximum":
				m.MaxBytes, m.Have = v*kib, m.Have|enrich.HasMemMax
			case "swap_in":
				m.SwapInBytes, m.Have = v*kib, m.Have|enrich.HasMemSwapIn
			case "swap_out":
				m.SwapOutBytes, m.Have = v*kib, m.Have|enrich.HasMemSwapOut
			case "major_fault":
				m.MajorFaults, m.Have = v, m.Have|enrich.HasMemMajorFault
			case "minor_fault":
				m.MinorFaults, m.Have = v, m.Have|enrich.HasMemMinorFault
			case "unused":
				m.UnusedBytes, m.Have = v*kib, m.Have|enrich.HasMemUnused
			case "available":
				m.AvailableBytes, m.Have = v*kib, m.Have|enrich.HasMemAvailable
			case "usable":
				m.UsableBytes, m.Have = v*kib, m.Have|enrich.HasMemUsable
			case "rss":
				m.RSSBytes, m.Have = v*kib, m.Have|enrich.HasMemRSS
			}
		case strings.HasPrefix(f, "net."):
			i, rest, ok := indexed(f[len("net."):])
			if !ok {
				continue
			}
			if rest != "name" && !isNum {
				continue // -1: not supported
			}
			n := netAt(i)
			switch rest {
			case "name":
				n.Name = str
			case "rx.bytes":
				n.RxBytes, n.Have = v, n.Have|enrich.HasNICBytes
			case "tx.bytes":
				n.TxBytes, n.Have = v, n.Have|enrich.HasNICBytes
			case "rx.pkts":
				n.RxPackets, n.Have = v, n.Have|enrich.HasNICPackets
			case "tx.pkts":
				n.TxPackets, n.Have = v, n.Have|enrich.HasNICPackets
			case "rx.errs":
				n.RxErrors, n.Have = v, n.Have|enrich.HasNICErrors
			case "tx.errs":
				n.TxErrors, n.Have = v, n.Have|enrich.HasNICErrors
			case "rx.drop":
				n.RxDrops, n.Have = v, n.Have|enrich.HasNICDrops
			case "tx.drop":
				n.TxDrops, n.Have = v, n.Have|enrich.HasNICDrops
			}
		case strings.HasPrefix(f, "block."):
			i, rest, ok := indexed(f[len("block."):])
			if !ok {
				continue
			}
			if rest != "name" && !isNum {
				continue
			}
			b := blockAt(i)
			switch rest {
			case "name":
				b.Name = str
			case "rd.reqs":
				b.ReadReqs, b.Have = v, b.Have|enrich.HasDiskIO
			case "rd.bytes":
				b.ReadBytes, b.Have = v, b.Have|enrich.HasDiskIO
			case "wr.reqs":
				b.WriteReqs, b.Have = v, b.Have|enrich.HasDiskIO
			case "wr.bytes":
				b.WriteBytes, b.Have = v, b.Have|enrich.HasDiskIO
			case "errors":
				b.Errors, b.Have = v, b.Have|enrich.HasDiskErrors
			case "capacity":
				b.CapacityBytes, b.Have = v, b.Have|enrich.HasDiskSize
			case "allocation":
				b.AllocationBytes, b.Have = v, b.Have|enrich.HasDiskSize
			}
		}
	}
	for _, i := range netOrder {
		smp.NICs = append(smp.NICs, *nets[i])
	}
	for _, i := range blockOrder {
		if b := blocks[i]; b.Name != "" {
			smp.Disks = append(smp.Disks, *b)
		}
	}
	return hasCPU
}

// indexed splits "3.rx.bytes" into 3 and "rx.bytes".
func indexed(s string) (int, string, bool) {
	num, rest, ok := strings.Cut(s, ".")
	if !ok {
		return 0, "", false // "net.count", "block.count"
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || i > 1<<16 {
		return 0, "", false
	}
	return i, rest, true
}

// typedUint reads a numeric typed parameter of any of libvirt's types
// (VIR_TYPED_PARAM_INT .. BOOLEAN); negative values (libvirt's -1 for
// "unsupported") are not numbers here.
func typedUint(v golibvirt.TypedParamValue) (uint64, bool) {
	switch x := v.I.(type) {
	case int32:
		return uint64(x), x >= 0
	case uint32:
		return uint64(x), true
	case int64:
		return uint64(x), x >= 0
	case uint64:
		return x, true
	case float64:
		return uint64(x), x >= 0
	}
	return 0, false
}

// pollPerDomain reads every active domain with the per-domain calls,
// FetchConcurrency domains at a time.
func (s *Source) pollPerDomain(ctx context.Context, cl *Client) ([]enrich.VMResourceSample, error) {
	doms, err := cl.ListAllDomains(ctx, uint32(golibvirt.ConnectListDomainsActive))
	if err != nil {
		return nil, err
	}
	out := make([]enrich.VMResourceSample, len(doms))
	ok := make([]bool, len(doms))
	errs := make([]error, len(doms))
	parallel(len(doms), s.cfg.FetchConcurrency, func(i int) {
		out[i], ok[i], errs[i] = s.pollDomain(ctx, cl, doms[i])
	})
	res := out[:0]
	for i := range doms {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if ok[i] {
			res = append(res, out[i])
		}
	}
	return res, nil
}

// pollDomain reads one domain. ok is false when the domain vanished.
func (s *Source) pollDomain(ctx context.Context, cl *Client, d Domain) (smp enrich.VMResourceSample, ok bool, err error) {
	s.mu.Lock()
	devs := s.devs[UUIDString(d)]
	s.mu.Unlock()
	soft := func(what string, err error) error {
		if err == nil || !isDaemonError(err) {
			return err
		}
		s.m.statsErrors.WithLabelValues(s.cc.URI, what).Inc()
		return nil
	}
	in, err := cl.DomainInfo(ctx, d)
	if err != nil {
		if IsErrorCode(err, golibvirt.ErrNoDomain) {
			return smp, false, nil
		}
		return smp, false, soft("info", err)
	}
	smp = s.newSample(d, time.Time{})
	smp.State = StateName(int32(in.State))
	smp.CPU = enrich.CPUSample{Have: enrich.HasCPUTime | enrich.HasVCPUs, TimeNs: in.CPUTimeNs, VCPUs: int(in.VCPUs)}
	smp.Mem = enrich.MemSample{Have: enrich.HasMemMax | enrich.HasMemBalloon, MaxBytes: in.MaxMemKiB * 1024, BalloonBytes: in.MemoryKiB * 1024}
	// The counters' instant: right after the call that reads CPU time.
	smp.Time = time.Now()

	if user, sys, err := cl.DomainCPUTotals(ctx, d); err == nil {
		smp.CPU.UserNs, smp.CPU.SystemNs = user, sys
		smp.CPU.Have |= enrich.HasCPUUserSystem
	} else if err = soft("cpu", err); err != nil {
		return smp, false, err
	}
	if ms, err := cl.DomainMemoryStats(ctx, d); err == nil {
		applyMemoryStats(ms, &smp.Mem)
	} else if err = soft("memory", err); err != nil {
		return smp, false, err
	}
	for _, disk := range devs.disks {
		bs, err := cl.DomainBlockStats(ctx, d, disk)
		if err != nil {
			if err = soft("block", err); err != nil {
				return smp, false, err
			}
			continue
		}
		smp.Disks = append(smp.Disks, bs)
	}
	for _, nic := range devs.nics {
		ns, err := cl.DomainInterfaceStats(ctx, d, nic.dev)
		if err != nil {
			if err = soft("interface", err); err != nil {
				return smp, false, err
			}
			continue
		}
		ns.MAC = nic.mac
		smp.NICs = append(smp.NICs, ns)
	}
	return smp, true, nil
}

// applyMemoryStats maps DOMAIN_MEMORY_STATS tags (KiB, faults as counts).
func applyMemoryStats(ms []golibvirt.DomainMemoryStat, m *enrich.MemSample) {
	for _, st := range ms {
		v := st.Val
		switch golibvirt.DomainMemoryStatTags(st.Tag) {
		case golibvirt.DomainMemoryStatSwapIn:
			m.SwapInBytes, m.Have = v*1024, m.Have|enrich.HasMemSwapIn
		case golibvirt.DomainMemoryStatSwapOut:
			m.SwapOutBytes, m.Have = v*1024, m.Have|enrich.HasMemSwapOut
		case golibvirt.DomainMemoryStatMajorFault:
			m.MajorFaults, m.Have = v, m.Have|enrich.HasMemMajorFault
		case golibvirt.DomainMemoryStatMinorFault:
			m.MinorFaults, m.Have = v, m.Have|enrich.HasMemMinorFault
		case golibvirt.DomainMemoryStatUnused:
			m.UnusedBytes, m.Have = v*1024, m.Have|enrich.HasMemUnused
		case golibvirt.DomainMemoryStatAvailable:
			m.AvailableBytes, m.Have = v*1024, m.Have|enrich.HasMemAvailable
		case golibvirt.DomainMemoryStatActualBalloon:
			m.BalloonBytes, m.Have = v*1024, m.Have|enrich.HasMemBalloon
		case golibvirt.DomainMemoryStatRss:
			m.RSSBytes, m.Have = v*1024, m.Have|enrich.HasMemRSS
		case golibvirt.DomainMemoryStatUsable:
			m.UsableBytes, m.Have = v*1024, m.Have|enrich.HasMemUsable
		}
	}
}

// statsLoop polls every interval until ctx ends or a poll hits a
// transport error (the session's connection is then gone anyway).
func (s *Source) statsLoop(ctx context.Context, cl *Client) {
	if s.cfg.StatsMode == StatsOff || s.cfg.StatsInterval <= 0 {
		return
	}
	bulkOK := true
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	for {
		if err := s.pollStats(ctx, cl, &bulkOK); err != nil {
			if ctx.Err() == nil {
				s.recordError(err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-cl.Done():
			return
		case <-t.C:
		}
	}
}

// LastStats returns the samples of the latest poll (tests, debugging).
func (s *Source) LastStats() []enrich.VMResourceSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]enrich.VMResourceSample(nil), s.lastStats...)
}
