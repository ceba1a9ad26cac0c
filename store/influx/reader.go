package influx

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/api/query"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// Reader answers history from InfluxDB with Flux (store.Reader).
type Reader struct {
	cfg    Config
	client influxdb2.Client
	qapi   api.QueryAPI

	// Resolve, when set, maps an endpoint read back from InfluxDB to the
	// current process's VM id (PairKey.Src/Dst.VM); VM ids are not stored.
	// Without it, a VM endpoint's key has VM == 0 and the IP of the point.
	Resolve func(aggregate.Endpoint) enrich.VMID
}

var _ store.Reader = (*Reader)(nil)

// NewReader makes a reader; it opens no connection until queried.
func NewReader(cfg Config) (*Reader, error) {
	cfg.Enabled = true
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := influxdb2.DefaultOptions().SetHTTPRequestTimeout(uint(cfg.Timeout/time.Second) * 6).SetApplicationName("vmflow")
	c := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	return &Reader{cfg: cfg, client: c, qapi: c.QueryAPI(cfg.Org)}, nil
}

// Close releases the HTTP client.
func (r *Reader) Close() { r.client.Close() }

// fluxString quotes s as a Flux string literal.
func fluxString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case '$':
			b.WriteString(`\$`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func fluxTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// rangeFor covers points stamped in (from, to]: Flux's range is [start, stop).
func rangeFor(from, to time.Time) string {
	return fmt.Sprintf("range(start: %s, stop: %s)", fluxTime(from.Add(time.Nanosecond)), fluxTime(to.Add(time.Nanosecond)))
}

func (r *Reader) query(ctx context.Context, flux string, each func(rec *query.FluxRecord) error) error {
	res, err := r.qapi.Query(ctx, flux)
	if err != nil {
		return fmt.Errorf("influx query: %w", err)
	}
	defer res.Close()
	for res.Next() {
		if err := each(res.Record()); err != nil {
			return err
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("influx query: %w", err)
	}
	return nil
}

func fnum(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return 0
}

func inum(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case uint64:
		return int64(x)
	}
	return 0
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func parseSource(s string) decoder.Source {
	switch s {
	case "sflow":
		return decoder.SourceSFlow
	case "ipfix":
		return decoder.SourceIPFIX
	case "netflow9":
		return decoder.SourceNetFlow9
	case "probe":
		return decoder.SourceProbe
	}
	return decoder.SourceUnknown
}

func parseTopPorts(s string, tp *[aggregate.TopPortsN]aggregate.PortCount) {
	i := 0
	for _, f := range strings.Fields(s) {
		if i >= len(tp) {
			return
		}
		pp, bs, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		ps, ports, ok := strings.Cut(pp, "/")
		if !ok {
			continue
		}
		proto, e1 := strconv.ParseUint(ps, 10, 8)
		port, e2 := strconv.ParseUint(ports, 10, 16)
		b, e3 := strconv.ParseFloat(bs, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			continue
		}
		tp[i] = aggregate.PortCount{Proto: uint8(proto), Port: uint16(port), Bytes: b}
		i++
	}
}

// Windows returns the windows ending in (from, to], oldest first, rebuilt
// from vm_pair points (see the README, "InfluxDB schema", for what is and is not restored).
func (r *Reader) Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	if !to.After(from) {
		return nil, nil
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => r._measurement == %q)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		fluxString(r.cfg.Bucket), rangeFor(from, to), MeasurementPair)
	byEnd := map[int64]*aggregate.Window{}
	err := r.query(ctx, flux, func(rec *query.FluxRecord) error {
		v := rec.Values()
		end := rec.Time()
		w := byEnd[end.UnixNano()]
		if w == nil {
			w = &aggregate.Window{End: end, Start: end}
			byEnd[end.UnixNano()] = w
		}
		p := pairFromRecord(v)
		if iv := inum(v["interval"]); iv > 0 {
			if s := end.Add(-time.Duration(iv) * time.Second); s.Before(w.Start) {
				w.Start = s
			}
		}
		if r.Resolve != nil {
			if p.Src.VM != "" {
				p.Key.Src = aggregate.EndpointKey{VM: r.Resolve(p.Src)}
			}
			if p.Dst.VM != "" {
				p.Key.Dst = aggregate.EndpointKey{VM: r.Resolve(p.Dst)}
			}
		}
		w.Pairs = append(w.Pairs, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history windows: %w", err)
	}
	if err := r.fillInfo(ctx, from, to, byEnd); err != nil {
		return nil, fmt.Errorf("history windows: %w", err)
	}
	if err := r.fillPorts(ctx, from, to, byEnd); err != nil { // ports.go
		return nil, fmt.Errorf("history windows: ports: %w", err)
	}
	out := make([]*aggregate.Window, 0, len(byEnd))
	for _, w := range byEnd {
		// one point per instance (influx.instance) for a pair that several
		// collectors saw: one pair of the window
		store.MergeSamePairs(w)
		sort.Slice(w.Pairs, func(i, j int) bool { return pairLess(&w.Pairs[i], &w.Pairs[j]) })
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].End.Before(out[j].End) })
	return out, nil
}

func pairLess(a, b *aggregate.Pair) bool {
	if a.Src.VM != b.Src.VM {
		return a.Src.VM < b.Src.VM
	}
	if a.Dst.VM != b.Dst.VM {
		return a.Dst.VM < b.Dst.VM
	}
	if a.Key.Source != b.Key.Source {
		return a.Key.Source < b.Key.Source
	}
	if a.Src.Host != b.Src.Host {
		return a.Src.Host < b.Src.Host
	}
	if a.Dst.Host != b.Dst.Host {
		return a.Dst.Host < b.Dst.Host
	}
	if a.Src.Tenant != b.Src.Tenant {
		return a.Src.Tenant < b.Src.Tenant
	}
	return a.Dst.Tenant < b.Dst.Tenant
}

func endpointFrom(v map[string]any, side string) aggregate.Endpoint {
	e := aggregate.Endpoint{
		VM:     str(v[side+"_vm"]),
		Host:   str(v[side+"_host"]),
		Tenant: str(v[side+"_tenant"]),
		UUID:   str(v[side+"_uuid"]),
		MAC:    str(v[side+"_mac"]),
		IP:     str(v[side+"_ip"]),
	}
	if e.VM == ExternalVM {
		e.VM = ""
	}
	if e.Host == NoValue {
		e.Host = ""
	}
	if e.Tenant == NoValue {
		e.Tenant = ""
	}
	return e
}

// pairFromRecord rebuilds a pair from a pivoted vm_pair row.
func pairFromRecord(v map[string]any) aggregate.Pair {
	var p aggregate.Pair
	p.Src = endpointFrom(v, "src")
	p.Dst = endpointFrom(v, "dst")
	p.Key.Source = parseSource(str(v["source"]))
	st := &p.Stats
	st.Bytes = fnum(v["bytes"])
	st.Packets = fnum(v["packets"])
	st.BytesVar = fnum(v["bytes_var"])
	st.PacketsVar = fnum(v["packets_var"])
	st.Samples = uint64(inum(v["samples"]))
	st.Flows = uint64(inum(v["flows"]))
	st.TCPBytes = fnum(v["tcp_bytes"])
	st.TCPPackets = fnum(v["tcp_packets"])
	st.UDPBytes = fnum(v["udp_bytes"])
	st.UDPPackets = fnum(v["udp_packets"])
	st.ICMPBytes = fnum(v["icmp_bytes"])
	st.ICMPPackets = fnum(v["icmp_packets"])
	st.OtherBytes = fnum(v["other_bytes"])
	st.OtherPackets = fnum(v["other_packets"])
	st.SYN = fnum(v["syn"])
	st.SYNACK = fnum(v["synack"])
	st.RST = fnum(v["rst"])
	st.FIN = fnum(v["fin"])
	st.SYNACKIn = fnum(v["synack_in"])
	st.RSTIn = fnum(v["rst_in"])
	st.ICMPErrors = fnum(v["icmp_errors"])
	st.DroppedPackets = fnum(v["dropped_packets"])
	st.DroppedBytes = fnum(v["dropped_bytes"])
	st.First = inum(v["first"])
	st.Last = inum(v["last"])
	st.VNI = uint32(inum(v["vni"]))
	if a, err := netip.ParseAddr(p.Src.IP); err == nil {
		st.SrcIP = a
	}
	if a, err := netip.ParseAddr(p.Dst.IP); err == nil {
		st.DstIP = a
	}
	if mac, ok := parseMAC(p.Src.MAC); ok {
		st.SrcMAC = mac
	}
	if mac, ok := parseMAC(p.Dst.MAC); ok {
		st.DstMAC = mac
	}
	parseTopPorts(str(v["top_ports"]), &st.TopPorts)
	st.Lat = latencyFromRecord(p.Key.Source, v) // latency.go
	if p.Src.VM == "" {
		p.Key.Src.IP = st.SrcIP
	}
	if p.Dst.VM == "" {
		p.Key.Dst.IP = st.DstIP
	}
	return p
}

// lacksInfo: a VM endpoint of a lean point (UUID, MAC, address in vm_info).
func lacksInfo(e *aggregate.Endpoint) bool {
	return e.VM != "" && e.UUID == "" && e.MAC == "" && e.IP == ""
}

// fillInfo completes the VM endpoints of lean vm_pair points with the
// latest vm_info values up to the end of the range (written at least every
// influx.info_interval while a VM talks, so the range is widened by that).
func (r *Reader) fillInfo(ctx context.Context, from, to time.Time, wins map[int64]*aggregate.Window) error {
	need := false
	for _, w := range wins {
		for i := range w.Pairs {
			if lacksInfo(&w.Pairs[i].Src) || lacksInfo(&w.Pairs[i].Dst) {
				need = true
				break
			}
		}
	}
	if !need {
		return nil
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => r._measurement == %q)
  |> last()`, fluxString(r.cfg.Bucket), rangeFor(from.Add(-r.cfg.InfoInterval), to), MeasurementInfo)
	info := map[string]*aggregate.Endpoint{}
	err := r.query(ctx, flux, func(rec *query.FluxRecord) error {
		v := rec.Values()
		k := str(v["host"]) + "|" + str(v["tenant"]) + "|" + str(v["vm"])
		e := info[k]
		if e == nil {
			e = &aggregate.Endpoint{}
			info[k] = e
		}
		switch rec.Field() {
		case "uuid":
			e.UUID = str(rec.Value())
		case "mac":
			e.MAC = str(rec.Value())
		case "ip":
			e.IP = str(rec.Value())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vm_info: %w", err)
	}
	apply := func(e *aggregate.Endpoint, ip *netip.Addr, mac *[6]byte) {
		if !lacksInfo(e) {
			return
		}
		in := info[orNone(e.Host)+"|"+orNone(e.Tenant)+"|"+e.VM]
		if in == nil {
			return
		}
		e.UUID, e.MAC, e.IP = in.UUID, in.MAC, in.IP
		if a, err := netip.ParseAddr(e.IP); err == nil && !ip.IsValid() {
			*ip = a
		}
		if m, ok := parseMAC(e.MAC); ok && *mac == ([6]byte{}) {
			*mac = m
		}
	}
	for _, w := range wins {
		for i := range w.Pairs {
			p := &w.Pairs[i]
			apply(&p.Src, &p.Stats.SrcIP, &p.Stats.SrcMAC)
			apply(&p.Dst, &p.Stats.DstIP, &p.Stats.DstMAC)
		}
	}
	return nil
}

func parseMAC(s string) (m [6]byte, ok bool) {
	if len(s) != 17 {
		return m, false
	}
	for i := 0; i < 6; i++ {
		v, err := strconv.ParseUint(s[i*3:i*3+2], 16, 8)
		if err != nil {
			return m, false
		}
		m[i] = byte(v)
	}
	return m, true
}

// VMPoint is one step of a VM's traffic (all its pairs, per source).
type VMPoint struct {
	Time      time.Time `json:"time"` // end of the step
	Source    string    `json:"source"`
	TxBytes   float64   `json:"tx_bytes"`
	TxPackets float64   `json:"tx_packets"`
	RxBytes   float64   `json:"rx_bytes"`
	RxPackets float64   `json:"rx_packets"`
	TxBPS     float64   `json:"tx_bps"`
	RxBPS     float64   `json:"rx_bps"`
}

// PairPoint is one step of a directed pair's traffic, per source.
type PairPoint struct {
	Time           time.Time `json:"time"` // end of the step
	Source         string    `json:"source"`
	Bytes          float64   `json:"bytes"`
	Packets        float64   `json:"packets"`
	BytesVar       float64   `json:"bytes_var"`
	PacketsVar     float64   `json:"packets_var"`
	Samples        int64     `json:"samples"`
	Flows          int64     `json:"flows"`
	BPS            float64   `json:"bps"`
	PPS            float64   `json:"pps"`
	TCPBytes       float64   `json:"tcp_bytes"`
	UDPBytes       float64   `json:"udp_bytes"`
	ICMPBytes      float64   `json:"icmp_bytes"`
	OtherBytes     float64   `json:"other_bytes"`
	TCPPackets     float64   `json:"tcp_packets"`
	UDPPackets     float64   `json:"udp_packets"`
	ICMPPackets    float64   `json:"icmp_packets"`
	OtherPackets   float64   `json:"other_packets"`
	SYN            float64   `json:"syn"`
	SYNACK         float64   `json:"synack"`
	RST            float64   `json:"rst"`
	FIN            float64   `json:"fin"`
	ICMPErrors     float64   `json:"icmp_errors"`
	DroppedPackets float64   `json:"dropped_packets"`
	DroppedBytes   float64   `json:"dropped_bytes"`
}

var pairSeriesFields = []string{"bytes", "packets", "bytes_var", "packets_var", "samples", "flows",
	"tcp_bytes", "udp_bytes", "icmp_bytes", "other_bytes", "tcp_packets", "udp_packets", "icmp_packets", "other_packets",
	"syn", "synack", "rst", "fin", "icmp_errors", "dropped_packets", "dropped_bytes"}

var vmSeriesFields = []string{"tx_bytes", "tx_packets", "rx_bytes", "rx_packets"}

func fieldFilter(fields []string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteString(" or ")
		}
		fmt.Fprintf(&b, "r._field == %q", f)
	}
	return b.String()
}

// seriesFlux sums the points of the filter into steps of length step. A
// point stamped at a window's end T covers (T-interval, T]; shifting it by
// -1 ns before aggregateWindow puts it in the step (a, a+step] that ends at
// or after T, labelled a+step (also for a partial window stamped between
// boundaries, to the nanosecond).
func (r *Reader) seriesFlux(filter string, fields []string, from, to time.Time, step time.Duration) string {
	return fmt.Sprintf(`from(bucket: %s)
  |> %s
  |> filter(fn: (r) => %s)
  |> filter(fn: (r) => %s)
  |> group(columns: ["source", "_field"])
  |> timeShift(duration: -1ns, columns: ["_time"])
  |> aggregateWindow(every: %s, fn: sum, createEmpty: false)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> sort(columns: ["source", "_time"])`,
		fluxString(r.cfg.Bucket), rangeFor(from, to), filter, fieldFilter(fields), fluxDuration(step))
}

// stepLabel rounds aggregateWindow's time up to the end of its step: the
// last step of a range is cut at the range's stop (and shifted by the -1 ns
// of seriesFlux), but is labelled by its full end like the others.
func stepLabel(t time.Time, step time.Duration) time.Time {
	ns, st := t.UnixNano(), int64(step)
	if r := ns % st; r != 0 { // Flux aligns steps to the Unix epoch
		ns += st - r
	}
	return time.Unix(0, ns).UTC()
}

func fluxDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

func checkStep(from, to time.Time, step time.Duration) error {
	if step < time.Second {
		return fmt.Errorf("step: must be >= 1s, got %s", step)
	}
	if to.Sub(from)/step > 100_000 {
		return fmt.Errorf("step: %s gives more than 100000 points for the range", step)
	}
	return nil
}

// PairSeries returns the traffic of src → dst (VM names; ExternalVM for the
// external endpoints of a VM) in (from, to] summed per step, one series per
// source (sflow, ipfix), ordered by source then time.
func (r *Reader) PairSeries(ctx context.Context, src, dst string, from, to time.Time, step time.Duration) ([]PairPoint, error) {
	if err := checkStep(from, to, step); err != nil {
		return nil, err
	}
	if !to.After(from) {
		return nil, nil
	}
	filter := fmt.Sprintf(`r._measurement == %q and r.src_vm == %s and r.dst_vm == %s`, MeasurementPair, fluxString(src), fluxString(dst))
	var out []PairPoint
	secs := step.Seconds()
	err := r.query(ctx, r.seriesFlux(filter, pairSeriesFields, from, to, step), func(rec *query.FluxRecord) error {
		v := rec.Values()
		p := PairPoint{
			Time: stepLabel(rec.Time(), step), Source: str(v["source"]),
			Bytes: fnum(v["bytes"]), Packets: fnum(v["packets"]), BytesVar: fnum(v["bytes_var"]), PacketsVar: fnum(v["packets_var"]),
			Samples: inum(v["samples"]), Flows: inum(v["flows"]),
			TCPBytes: fnum(v["tcp_bytes"]), UDPBytes: fnum(v["udp_bytes"]), ICMPBytes: fnum(v["icmp_bytes"]), OtherBytes: fnum(v["other_bytes"]),
			TCPPackets: fnum(v["tcp_packets"]), UDPPackets: fnum(v["udp_packets"]), ICMPPackets: fnum(v["icmp_packets"]), OtherPackets: fnum(v["other_packets"]),
			SYN: fnum(v["syn"]), SYNACK: fnum(v["synack"]), RST: fnum(v["rst"]), FIN: fnum(v["fin"]),
			ICMPErrors: fnum(v["icmp_errors"]), DroppedPackets: fnum(v["dropped_packets"]), DroppedBytes: fnum(v["dropped_bytes"]),
		}
		p.BPS = p.Bytes * 8 / secs
		p.PPS = p.Packets / secs
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pair series: %w", err)
	}
	return out, nil
}

// VMSeries returns the traffic sent and received by VM vm in (from, to]
// summed per step, one series per source, ordered by source then time.
func (r *Reader) VMSeries(ctx context.Context, vm string, from, to time.Time, step time.Duration) ([]VMPoint, error) {
	if err := checkStep(from, to, step); err != nil {
		return nil, err
	}
	if !to.After(from) {
		return nil, nil
	}
	filter := fmt.Sprintf(`r._measurement == %q and r.vm == %s`, MeasurementVM, fluxString(vm))
	var out []VMPoint
	secs := step.Seconds()
	err := r.query(ctx, r.seriesFlux(filter, vmSeriesFields, from, to, step), func(rec *query.FluxRecord) error {
		v := rec.Values()
		p := VMPoint{Time: stepLabel(rec.Time(), step), Source: str(v["source"]),
			TxBytes: fnum(v["tx_bytes"]), TxPackets: fnum(v["tx_packets"]), RxBytes: fnum(v["rx_bytes"]), RxPackets: fnum(v["rx_packets"])}
		p.TxBPS = p.TxBytes * 8 / secs
		p.RxBPS = p.RxBytes * 8 / secs
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vm series: %w", err)
	}
	return out, nil
}
