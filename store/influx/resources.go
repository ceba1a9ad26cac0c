package influx

import (
	"strconv"

	"github.com/vmflow/vmflow/enrich"
)

// VM resource measurements (one point per VM sample of its chosen source;
// enrich.ResourceTracker.OnUpdate hands them over):
//
//	vm_resources,host=,source=,vm=  cpu_percent, cpu_core_percent, vcpus,
//	    mem_used_bytes, mem_available_bytes, mem_balloon_bytes, mem_rss_bytes,
//	    mem_used_percent, swap_in_bytes_per_s, swap_out_bytes_per_s,
//	    major_faults_per_s, interval_seconds, reset; uuid (string field)
//	vm_disk,disk=,host=,source=,vm=  read_iops, write_iops,
//	    read_bytes_per_s, write_bytes_per_s, errors
//	vm_nic,host=,nic=,source=,vm=    rx_bits_per_s, tx_bits_per_s,
//	    rx_packets_per_s, tx_packets_per_s, rx_errors, tx_errors, rx_drops,
//	    tx_drops; mac (string field)
//
// Series: one vm_resources series per VM (and source while both sources
// report it, before the tracker settles on one), one vm_disk per disk and
// one vm_nic per vNIC: with V VMs, D disks and N vNICs each, V x (1+D+N).
// A field the sample cannot give (no rate across a restart) is left out.
const (
	MeasurementVMResources = "vm_resources"
	MeasurementVMDisk      = "vm_disk"
	MeasurementVMNIC       = "vm_nic"
)

func (f *fieldWriter) opt(n string, p *float64) {
	if p != nil {
		f.float(n, *p)
	}
}

func (f *fieldWriter) optU(n string, p *uint64) {
	if p != nil {
		f.int(n, int64(*p))
	}
}

// appendResources encodes one VM's figures; it returns the points added.
func appendResources(b []byte, r *enrich.VMResources) ([]byte, int) {
	vm := r.Name
	if vm == "" {
		vm = r.UUID
	}
	ts := strconv.AppendInt(nil, r.Time.UnixNano(), 10)
	end := func(f fieldWriter, mark int) []byte {
		if f.first { // no field: no point
			return b[:mark]
		}
		b = append(f.b, ' ')
		b = append(b, ts...)
		return append(b, '\n')
	}
	n := 0
	mark := len(b)
	b = append(b, MeasurementVMResources...)
	b = appendTag(b, "host", orNone(r.Host))
	b = appendTag(b, "source", r.Source)
	b = appendTag(b, "vm", vm)
	f := fieldWriter{b: b, first: true}
	f.opt("cpu_percent", r.CPU.PercentOfVCPUs)
	f.opt("cpu_core_percent", r.CPU.PercentOfCore)
	if r.CPU.VCPUs > 0 {
		f.int("vcpus", int64(r.CPU.VCPUs))
	}
	f.optU("mem_used_bytes", r.Mem.UsedBytes)
	f.optU("mem_available_bytes", r.Mem.AvailableBytes)
	f.optU("mem_balloon_bytes", r.Mem.BalloonBytes)
	f.optU("mem_rss_bytes", r.Mem.RSSBytes)
	f.opt("mem_used_percent", r.Mem.UsedPercent)
	f.opt("swap_in_bytes_per_s", r.Mem.SwapInBytesPerS)
	f.opt("swap_out_bytes_per_s", r.Mem.SwapOutBytesPerS)
	f.opt("major_faults_per_s", r.Mem.MajorFaultsPerS)
	f.float("interval_seconds", r.IntervalSeconds)
	if r.Reset {
		f.name("reset")
		f.b = append(f.b, 't')
	}
	f.str("uuid", r.UUID)
	b = end(f, mark)
	if len(b) > mark {
		n++
	}
	for i := range r.Disks {
		d := &r.Disks[i]
		mark = len(b)
		b = append(b, MeasurementVMDisk...)
		b = appendTag(b, "disk", d.Name)
		b = appendTag(b, "host", orNone(r.Host))
		b = appendTag(b, "source", r.Source)
		b = appendTag(b, "vm", vm)
		f := fieldWriter{b: b, first: true}
		f.opt("read_iops", d.ReadIOPS)
		f.opt("write_iops", d.WriteIOPS)
		f.opt("read_bytes_per_s", d.ReadBytesPerS)
		f.opt("write_bytes_per_s", d.WriteBytesPerS)
		f.optU("errors", d.Errors)
		if f.first {
			b = b[:mark]
			continue
		}
		b = end(f, mark)
		n++
	}
	for i := range r.NICs {
		c := &r.NICs[i]
		mark = len(b)
		b = append(b, MeasurementVMNIC...)
		b = appendTag(b, "host", orNone(r.Host))
		b = appendTag(b, "nic", c.Name)
		b = appendTag(b, "source", r.Source)
		b = appendTag(b, "vm", vm)
		f := fieldWriter{b: b, first: true}
		f.opt("rx_bits_per_s", c.RxBitsPerS)
		f.opt("tx_bits_per_s", c.TxBitsPerS)
		f.opt("rx_packets_per_s", c.RxPacketsPerS)
		f.opt("tx_packets_per_s", c.TxPacketsPerS)
		f.optU("rx_errors", c.RxErrors)
		f.optU("tx_errors", c.TxErrors)
		f.optU("rx_drops", c.RxDrops)
		f.optU("tx_drops", c.TxDrops)
		if f.first {
			b = b[:mark]
			continue
		}
		f.str("mac", c.MAC)
		b = end(f, mark)
		n++
	}
	return b, n
}

// WriteResources records one VM's resource figures (register it with
// enrich.ResourceTracker.OnUpdate). Like WriteExporters it appends to the
// current batch; it never blocks on InfluxDB.
func (w *Writer) WriteResources(r enrich.VMResources) {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.state.Load() == 2 {
		return
	}
	w.encMu.Lock()
	defer w.encMu.Unlock()
	var n int
	w.cur, n = appendResources(w.cur, &r)
	w.addPointsLocked(n)
}
