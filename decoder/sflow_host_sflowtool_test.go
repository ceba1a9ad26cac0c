package decoder

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/gopacket/pcapgo"
)

const (
	hostCapture          = "testdata/hsflowd-host.pcap"
	hostCaptureSflowtool = "testdata/hsflowd-host.sflowtool.txt"

	realHostCapture          = "testdata/hsflowd-kvm-testdriver.pcap"
	realHostCaptureSflowtool = "testdata/hsflowd-kvm-testdriver.sflowtool.txt"
)

// sflowtoolSamples splits sflowtool's text output into one key/value map
// per sample, keeping sourceId and the fields of host-structure counter
// blocks (0:2000-2006, 0:2100-2104; others, like hsflowd's mib2 blocks
// 0:2007-2010, are not vmflow's).
func sflowtoolSamples(t *testing.T, out []byte) []map[string]string {
	var samples []map[string]string
	var cur map[string]string
	host := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "startSample":
			cur, host = map[string]string{}, false
		case "endSample":
			samples = append(samples, cur)
			cur = nil
		case "counterBlock_tag":
			var format uint32
			_, err := fmt.Sscanf(v, "0:%d", &format)
			host = err == nil && hostKind(format) >= 0
		case "sourceId":
			if cur != nil {
				cur[k] = v
			}
		default:
			if cur != nil && host {
				if _, dup := cur[k]; dup {
					t.Fatalf("sflowtool key %s twice in one sample", k)
				}
				cur[k] = v
			}
		}
	}
	return samples
}

// readClassicPcapUDP returns the UDP payloads of a classic pcap of
// Ethernet/IPv4 frames (what sflowtool -r reads).
func readClassicPcapUDP(t testing.TB, path string) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		panic(err)
	}
	var out [][]byte
	for {
		frame, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		ihl := int(frame[14]&0x0f) * 4
		out = append(out, append([]byte(nil), frame[14+ihl+8:]...))
	}
	return out
}

// compareSflowtool decodes datagrams on both paths and compares every host
// sample, field by field, with sflowtool's samples (in order; samples
// without host structures are skipped on both sides). It returns how many
// fields were compared per path.
func compareSflowtool(t *testing.T, dgs [][]byte, out []byte) int {
	var want []map[string]string
	for _, s := range sflowtoolSamples(t, out) {
		if len(s) > 1 {
			want = append(want, s)
		}
	}
	checked := 0
	for _, fast := range []bool{true, false} {
		d := newTestDecoder(t, fast)
		var got []map[string]string
		for i, dg := range dgs {
			var b Batch
			if err := d.Decode(SourceSFlow, testExporter, dg, 42, &b); err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			for j := range b.Hosts {
				got = append(got, sflowtoolView(&b.Hosts[j]))
			}
		}
		if len(got) != len(want) {
			t.Fatalf("fast=%v: %d host samples, sflowtool %d", fast, len(got), len(want))
		}
		checked = 0
		for i := range got {
			for k, v := range got[i] {
				if want[i][k] != v {
					t.Errorf("fast=%v sample %d %s: sflowtool %q, vmflow %q", fast, i, k, want[i][k], v)
				}
				checked++
			}
			for k := range want[i] {
				if _, ok := got[i][k]; !ok {
					t.Errorf("fast=%v sample %d: sflowtool prints %s, vmflow has no such field", fast, i, k)
				}
			}
		}
		t.Logf("fast=%v: %d host samples, %d fields equal to sflowtool's", fast, len(got), checked)
	}
	return checked
}

// sflowtoolOutput is the recorded output, or sflowtool's own when it is on
// PATH.
func sflowtoolOutput(t *testing.T, capture, recorded string) []byte {
	out, err := os.ReadFile(recorded)
	if err != nil {
		t.Fatal(err)
	}
	if path, err := exec.LookPath("sflowtool"); err == nil {
		live, err := exec.Command(path, "-r", capture).Output()
		if err != nil {
			t.Fatalf("sflowtool: %v", err)
		}
		t.Logf("sflowtool run live (%s)", path)
		return live
	}
	return out
}

func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// sflowtoolView renders a HostCounters in sflowtool's keys and formats.
func sflowtoolView(h *HostCounters) map[string]string {
	m := map[string]string{}
	put := func(k string, v any) { m[k] = fmt.Sprint(v) }
	put("sourceId", fmt.Sprintf("%d:%d", h.SourceID>>24, h.SourceID&0xffffff))
	if h.Have&HostHasDescr != 0 {
		put("hostname", h.HostName())
		put("UUID", uuidString(h.UUID))
		put("machine_type", h.MachineType)
		put("os_name", h.OSName)
		if h.OSReleaseLen > 0 {
			put("os_release", h.OSReleaseString())
		}
	}
	if h.Have&HostHasAdapters != 0 {
		ad, n := -1, 0
		var last uint32
		for i := 0; i < int(h.NumMACs); i++ {
			a := h.MACs[i]
			if i == 0 || a.IfIndex != last {
				ad, n, last = ad+1, 0, a.IfIndex
				put(fmt.Sprintf("adaptor_%d_ifIndex", ad), a.IfIndex)
			}
			put(fmt.Sprintf("adaptor_%d_MAC_%d", ad, n), hex.EncodeToString(a.MAC[:]))
			n++
			put(fmt.Sprintf("adaptor_%d_MACs", ad), n)
		}
	}
	if h.Have&HostHasParent != 0 {
		put("parent_dsClass", h.ParentClass)
		put("parent_dsIndex", h.ParentIndex)
	}
	if h.Have&HostHasCPU != 0 {
		c := &h.CPU
		put("cpu_load_one", fmt.Sprintf("%.3f", c.LoadOne))
		put("cpu_load_five", fmt.Sprintf("%.3f", c.LoadFive))
		put("cpu_load_fifteen", fmt.Sprintf("%.3f", c.LoadFifteen))
		for k, v := range map[string]uint32{"cpu_proc_run": c.ProcRun, "cpu_proc_total": c.ProcTotal, "cpu_num": c.CPUNum,
			"cpu_speed": c.CPUSpeedMHz, "cpu_uptime": c.Uptime, "cpu_user": c.User, "cpu_nice": c.Nice, "cpu_system": c.System,
			"cpu_idle": c.Idle, "cpu_wio": c.WIO, "cpuintr": c.Intr, "cpu_sintr": c.SoftIntr, "cpuinterrupts": c.Interrupts,
			"cpu_contexts": c.Contexts} {
			put(k, v)
		}
		if c.HasExt {
			put("cpu_steal", c.Steal)
			put("cpu_guest", c.Guest)
			put("cpu_guest_nice", c.GuestNice)
		}
	}
	if h.Have&HostHasMemory != 0 {
		x := &h.Memory
		for k, v := range map[string]any{"mem_total": x.Total, "mem_free": x.Free, "mem_shared": x.Shared, "mem_buffers": x.Buffers,
			"mem_cached": x.Cached, "swap_total": x.SwapTotal, "swap_free": x.SwapFree, "page_in": x.PageIn, "page_out": x.PageOut,
			"swap_in": x.SwapIn, "swap_out": x.SwapOut} {
			put(k, v)
		}
	}
	if h.Have&HostHasDiskIO != 0 {
		d := &h.DiskIO
		for k, v := range map[string]any{"disk_total": d.Total, "disk_free": d.Free, "disk_reads": d.Reads, "disk_bytes_read": d.BytesRead,
			"disk_read_time": d.ReadTime, "disk_writes": d.Writes, "disk_bytes_written": d.BytesWritten, "disk_write_time": d.WriteTime} {
			put(k, v)
		}
		put("disk_partition_max_used", fmt.Sprintf("%.2f", float64(d.PartMaxUsed)/100))
	}
	netio := func(p string, n *NetIO) {
		for k, v := range map[string]any{"bytes_in": n.BytesIn, "pkts_in": n.PktsIn, "errs_in": n.ErrsIn, "drops_in": n.DropsIn,
			"bytes_out": n.BytesOut, "pkts_out": n.PktsOut, "errs_out": n.ErrsOut, "drops_out": n.DropsOut} {
			put(p+k, v)
		}
	}
	if h.Have&HostHasNetIO != 0 {
		netio("nio_", &h.NetIO)
	}
	if h.Have&HostHasVirtNode != 0 {
		n := &h.Node
		for k, v := range map[string]any{"vnode_mhz": n.MHz, "vnode_cpus": n.CPUs, "vnode_memory": n.Memory,
			"vnode_memory_free": n.MemoryFree, "vnode_num_domains": n.Domains} {
			put(k, v)
		}
	}
	if h.Have&HostHasVirtCPU != 0 {
		put("vcpu_state", h.VCPU.State)
		put("vcpu_cpu_mS", h.VCPU.CPUTimeMs)
		put("vcpu_cpuCount", h.VCPU.VCPUs)
	}
	if h.Have&HostHasVirtMemory != 0 {
		put("vmem_memory", h.VMemory.Memory)
		put("vmem_maxMemory", h.VMemory.MaxMemory)
	}
	if h.Have&HostHasVirtDiskIO != 0 {
		d := &h.VDiskIO
		for k, v := range map[string]any{"vdsk_capacity": d.Capacity, "vdsk_allocation": d.Allocation, "vdsk_available": d.Available,
			"vdsk_rd_req": d.RdReq, "vdsk_rd_bytes": d.RdBytes, "vdsk_wr_req": d.WrReq, "vdsk_wr_bytes": d.WrBytes, "vdsk_errs": d.Errs} {
			put(k, v)
		}
	}
	if h.Have&HostHasVirtNetIO != 0 {
		netio("vnio_", &h.VNetIO)
	}
	return m
}

// TestSFlowHostSflowtool cross-checks the host-structure decoder with InMon's
// sflowtool on the golden datagram: the capture holds exactly the
// datagram the golden test builds, and every field sflowtool prints for
// it equals vmflow's decode, on both paths (and no field vmflow decodes
// is one sflowtool does not print). The recorded output is used; sflowtool
// is rerun when it is on PATH (it is no Debian package: see testdata/README.md).
func TestSFlowHostSflowtool(t *testing.T) {
	dgs := readClassicPcapUDP(t, hostCapture)
	if len(dgs) != 1 || !bytes.Equal(dgs[0], hostDatagramFixture()) {
		t.Fatal("the capture is not the golden datagram: regenerate testdata/hsflowd-host.pcap")
	}
	if n := compareSflowtool(t, dgs, sflowtoolOutput(t, hostCapture, hostCaptureSflowtool)); n < 90 {
		t.Fatalf("only %d fields compared", n)
	}
}

// TestSFlowHostRealHsflowd: a capture of a real hsflowd (2.1.25, KVM
// module, against libvirt's test driver: testdata/README.md) decodes on
// both paths to what sflowtool prints for it, field by field.
func TestSFlowHostRealHsflowd(t *testing.T) {
	dgs := readClassicPcapUDP(t, realHostCapture)
	if len(dgs) < 5 {
		t.Fatalf("%d datagrams", len(dgs))
	}
	if n := compareSflowtool(t, dgs, sflowtoolOutput(t, realHostCapture, realHostCaptureSflowtool)); n < 500 {
		t.Fatalf("only %d fields compared", n)
	}
}
