package alert

import (
	"slices"
	"time"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/enrich"
)

// VM signals from the VM's resource figures (enrich.ResourceTracker:
// libvirt stats polls, hsflowd host structures), for threshold and
// baseline rules of subject vm. They are evaluated once per closed window
// against each VM's latest figures (inventory.libvirt.stats_interval
// defaults to the aggregation window, so every window has a fresh poll);
// figures older than 5 windows (at least a minute) are not evaluated, nor
// is a signal the VM's source cannot give (no rate across a restart).
var resourceSignals = []string{
	"cpu_percent",        // CPU in % of the VM's vCPUs
	"cpu_core_percent",   // CPU in % of one host core
	"memory_percent",     // memory used of available, %
	"swap_bytes_per_s",   // swap in + out, bytes/s
	"major_faults_per_s", // major page faults per second
	"disk_errors",        // new disk errors over the interval (all disks)
	"disk_iops",          // read + write requests per second (all disks)
	"disk_bytes_per_s",   // read + write bytes per second (all disks)
	"nic_errors",         // new vNIC rx + tx errors over the interval
	"nic_drops",          // new vNIC rx + tx drops over the interval
	"nic_bps",            // vNIC rx + tx bit/s (libvirt's view)
}

func isResourceSignal(sig string) bool { return slices.Contains(resourceSignals, sig) }

// resourceSignal reads one signal; false when the figures lack it.
func resourceSignal(sig string, r *enrich.VMResources) (float64, bool) {
	f := func(p *float64) (float64, bool) {
		if p == nil {
			return 0, false
		}
		return *p, true
	}
	sum := func(get func(i int) (*float64, *uint64), n int) (float64, bool) {
		v, any := 0.0, false
		for i := 0; i < n; i++ {
			fp, up := get(i)
			if fp != nil {
				v, any = v+*fp, true
			}
			if up != nil {
				v, any = v+float64(*up), true
			}
		}
		return v, any
	}
	switch sig {
	case "cpu_percent":
		return f(r.CPU.PercentOfVCPUs)
	case "cpu_core_percent":
		return f(r.CPU.PercentOfCore)
	case "memory_percent":
		return f(r.Mem.UsedPercent)
	case "swap_bytes_per_s":
		in, ok1 := f(r.Mem.SwapInBytesPerS)
		out, ok2 := f(r.Mem.SwapOutBytesPerS)
		return in + out, ok1 || ok2
	case "major_faults_per_s":
		return f(r.Mem.MajorFaultsPerS)
	case "disk_errors":
		return sum(func(i int) (*float64, *uint64) { return nil, r.Disks[i].Errors }, len(r.Disks))
	case "disk_iops":
		a, ok1 := sum(func(i int) (*float64, *uint64) { return r.Disks[i].ReadIOPS, nil }, len(r.Disks))
		b, ok2 := sum(func(i int) (*float64, *uint64) { return r.Disks[i].WriteIOPS, nil }, len(r.Disks))
		return a + b, ok1 || ok2
	case "disk_bytes_per_s":
		a, ok1 := sum(func(i int) (*float64, *uint64) { return r.Disks[i].ReadBytesPerS, nil }, len(r.Disks))
		b, ok2 := sum(func(i int) (*float64, *uint64) { return r.Disks[i].WriteBytesPerS, nil }, len(r.Disks))
		return a + b, ok1 || ok2
	case "nic_errors":
		a, ok1 := sum(func(i int) (*float64, *uint64) { return nil, r.NICs[i].RxErrors }, len(r.NICs))
		b, ok2 := sum(func(i int) (*float64, *uint64) { return nil, r.NICs[i].TxErrors }, len(r.NICs))
		return a + b, ok1 || ok2
	case "nic_drops":
		a, ok1 := sum(func(i int) (*float64, *uint64) { return nil, r.NICs[i].RxDrops }, len(r.NICs))
		b, ok2 := sum(func(i int) (*float64, *uint64) { return nil, r.NICs[i].TxDrops }, len(r.NICs))
		return a + b, ok1 || ok2
	case "nic_bps":
		a, ok1 := sum(func(i int) (*float64, *uint64) { return r.NICs[i].RxBitsPerS, nil }, len(r.NICs))
		b, ok2 := sum(func(i int) (*float64, *uint64) { return r.NICs[i].TxBitsPerS, nil }, len(r.NICs))
		return a + b, ok1 || ok2
	}
	return 0, false
}

// evalResources evaluates a vm rule on a resource signal over every VM
// with fresh figures.
func (e *Engine) evalResources(r *Rule, now time.Time, secs float64) {
	if e.deps.Resources == nil {
		return
	}
	maxAge := time.Duration(5 * secs * float64(time.Second))
	if maxAge < time.Minute {
		maxAge = time.Minute
	}
	plain := r.flt.plain()
	var c cond
	for _, res := range e.deps.Resources() {
		if now.Sub(res.Time) > maxAge || res.Time.After(now.Add(maxAge)) {
			continue
		}
		v, ok := resourceSignal(r.signal, &res)
		if !ok {
			continue
		}
		ep := &aggregate.Endpoint{VM: res.Name, UUID: res.UUID, Host: res.Host}
		if !plain && !r.flt.vmOK(ep) {
			continue
		}
		fp := combine(r.nameHash, hashString("res:"+res.Key))
		if r.kind == KindBaseline {
			if !e.baseline(r, fp, v, now, &c) {
				continue
			}
		} else {
			c = r.threshold(v)
			if !c.hold {
				continue
			}
		}
		c.fp = fp
		c.subject = func() subjectInfo {
			info := vmInfo(r, ep, c.value, c.limit, c.base)
			info.labels["resource_source"] = res.Source
			return info
		}
		e.step(r, &c, now)
	}
}
