package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/store"
)

// Shared parts of the console's aggregate routes (overview, graph,
// capacity, pair summary): the filter set, the automatic step and the
// range read. Every route answers from the windows of the requested range
// only (its cost is the pairs of those windows, never the whole history),
// and pushes top-N and grouping to the server so a page never downloads
// every pair.

// protocolNames accepted by ?protocol=.
var protocolNames = []string{"tcp", "udp", "icmp", "other"}

// consoleFilter is the console's filter set: ?vm=, ?tenant=, ?host= (either
// side, as /pairs), ?protocol= (only that protocol's bytes and packets of
// each pair count) and ?port= (only pairs with that destination port among
// a window's top ports; its bytes count, packets prorated).
type consoleFilter struct {
	filter
	proto string
	port  int // -1: none
}

// filter parses ?vm=, ?tenant=, ?host=.
func (q *query) filter() (filter, error) {
	var f filter
	for _, p := range []struct {
		name string
		dst  *string
	}{{"vm", &f.vm}, {"tenant", &f.tenant}, {"host", &f.host}} {
		v, _, err := q.get(p.name)
		if err != nil {
			return f, err
		}
		*p.dst = v
	}
	return f, nil
}

// readWindows reads the range from the store, answering the request
// itself (503 without a store, 500 on a store error) when it fails.
func (s *Server) readWindows(c *gin.Context, from, to time.Time, keep store.Match) ([]*aggregate.Window, bool) {
	if s.deps.Store == nil {
		c.JSON(http.StatusServiceUnavailable, errorBody{Error: "no store configured"})
		return nil, false
	}
	var windows []*aggregate.Window
	var err error
	if keep != nil {
		windows, err = s.windowsWhere(c.Request.Context(), from, to, keep)
	} else {
		windows, err = s.deps.Store.Windows(c.Request.Context(), from, to)
	}
	if err != nil {
		c.JSON(http.StatusInternalServerError, errorBody{Error: "read windows: " + err.Error()})
		return nil, false
	}
	return windows, true
}

func (q *query) consoleFilter() (consoleFilter, error) {
	base, err := q.filter()
	f := consoleFilter{filter: base, port: -1}
	if err != nil {
		return f, err
	}
	proto, ok, err := q.get("protocol")
	if err != nil {
		return f, err
	}
	if ok {
		found := false
		for _, n := range protocolNames {
			found = found || n == proto
		}
		if !found {
			return f, badParam("protocol", "unknown protocol %q (one of %s)", proto, strings.Join(protocolNames, ", "))
		}
		f.proto = proto
	}
	port, ok, err := q.get("port")
	if err != nil {
		return f, err
	}
	if ok {
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return f, badParam("port", "not a port number 0..65535: %q", port)
		}
		f.port = n
	}
	return f, nil
}

// protoNumber is the IP protocol of a ?protocol= value (0: any).
func protoNumber(p string) uint8 {
	switch p {
	case "tcp":
		return 6
	case "udp":
		return 17
	case "icmp":
		return 1
	}
	return 0
}

// values returns what the pair counts for under the filter; ok=false when
// it does not match.
func (f *consoleFilter) values(p *aggregate.Pair) (bytes, packets float64, ok bool) {
	if !f.match(p) {
		return 0, 0, false
	}
	return f.statValues(&p.Stats)
}

// statValues is values' part on the statistics (protocol and port).
func (f *consoleFilter) statValues(st *aggregate.Stats) (bytes, packets float64, ok bool) {
	bytes, packets = st.Bytes, st.Packets
	switch f.proto {
	case "tcp":
		bytes, packets = st.TCPBytes, st.TCPPackets
	case "udp":
		bytes, packets = st.UDPBytes, st.UDPPackets
	case "icmp":
		bytes, packets = st.ICMPBytes, st.ICMPPackets
	case "other":
		bytes, packets = st.OtherBytes, st.OtherPackets
	}
	if f.proto != "" && bytes == 0 && packets == 0 {
		return 0, 0, false
	}
	if f.port >= 0 {
		want := protoNumber(f.proto)
		var pb float64
		found := false
		for _, pc := range st.TopPorts {
			if int(pc.Port) == f.port && pc.Bytes > 0 && (want == 0 || pc.Proto == want) {
				pb += pc.Bytes
				found = true
			}
		}
		if !found {
			return 0, 0, false
		}
		if st.Bytes > 0 {
			packets = st.Packets * pb / st.Bytes
		}
		bytes = pb
	}
	return bytes, packets, true
}

// maxAutoPoints is how many points an automatic step aims at.
const maxAutoPoints = 120

// autoStep is the step used when none is given: the window size times the
// smallest whole factor that keeps the range under maxAutoPoints points
// (for an unknown window size, a whole number of seconds).
func autoStep(from, to time.Time, windowSize time.Duration) time.Duration {
	span := to.Sub(from)
	unit := windowSize
	if unit <= 0 {
		unit = time.Second
	}
	n := (span/maxAutoPoints + unit - 1) / unit
	if n < 1 {
		n = 1
	}
	return n * unit
}

// stepWindows parses since/from/to and step (0 when absent: one point per
// window), then the route's own parameters (parse), reads the windows and
// checks the step against the window size learnt from them when it is not
// configured. It answers the request itself and returns ok=false on error.
func (s *Server) stepWindows(c *gin.Context, q *query, def time.Duration, parse func() error, keep store.Match) (from, to time.Time, step time.Duration, windows []*aggregate.Window, ok bool) {
	return s.stepRead(c, q, def, parse, func(from, to time.Time) ([]*aggregate.Window, bool) { return s.readWindows(c, from, to, keep) })
}

// stepRead is stepWindows with the range read by read (after parse).
func (s *Server) stepRead(c *gin.Context, q *query, def time.Duration, parse func() error, read func(from, to time.Time) ([]*aggregate.Window, bool)) (from, to time.Time, step time.Duration, windows []*aggregate.Window, ok bool) {
	var err error
	if from, to, err = q.timeRange(s.deps.Now(), def); err != nil {
		writeError(c, err)
		return
	}
	if step, err = q.step(from, to, s.deps.WindowSize); err != nil {
		writeError(c, err)
		return
	}
	if parse != nil {
		if err = parse(); err != nil {
			writeError(c, err)
			return
		}
	}
	if err = q.finish(); err != nil {
		writeError(c, err)
		return
	}
	if windows, ok = read(from, to); !ok {
		return
	}
	if step > 0 && s.deps.WindowSize <= 0 {
		// Window size learnt from the data.
		if err = checkStep(step, s.windowSize(windows)); err != nil {
			writeError(c, err)
			return from, to, step, windows, false
		}
	}
	return from, to, step, windows, true
}

// rangeView parses like stepWindows and reads the range as a rangeView
// for ?source= (*source, set by parse), with an automatic step when none
// is given.
func (s *Server) rangeView(c *gin.Context, q *query, def time.Duration, source *string, parse func() error) (from, to time.Time, step time.Duration, v *rangeView, ok bool) {
	from, to, step, _, ok = s.stepRead(c, q, def, parse, func(from, to time.Time) ([]*aggregate.Window, bool) {
		var ok bool
		v, ok = s.readView(c, from, to, *source)
		if !ok {
			return nil, false
		}
		return v.ws, true
	})
	if ok && step == 0 {
		step = autoStep(from, to, s.windowSize(v.ws))
	}
	return from, to, step, v, ok
}

// intParam parses an optional integer parameter in [lo, hi].
func (q *query) intParam(name string, def, lo, hi int) (int, error) {
	s, ok, err := q.get(name)
	if err != nil || !ok {
		return def, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, badParam(name, "not an integer: %q", s)
	}
	if n < lo || n > hi {
		return 0, badParam(name, "must be between %d and %d, got %d", lo, hi, n)
	}
	return n, nil
}

// enumParam parses an optional parameter from a list of values.
func (q *query) enumParam(name string, vals []string, def string) (string, error) {
	s, ok, err := q.get(name)
	if err != nil || !ok {
		return def, err
	}
	for _, v := range vals {
		if s == v {
			return s, nil
		}
	}
	return "", badParam(name, "unknown value %q (one of %s)", s, strings.Join(vals, ", "))
}

// coveredSpan is the first start and last end of the windows.
func coveredSpan(windows []*aggregate.Window) (from, to *time.Time, d time.Duration) {
	if len(windows) == 0 {
		return nil, nil, 0
	}
	cf, ct := windows[0].Start, windows[len(windows)-1].End
	return &cf, &ct, ct.Sub(cf)
}

// nodeName is how the console names an endpoint: the VM name, else its IP.
func nodeName(e *aggregate.Endpoint, k aggregate.EndpointKey) string {
	if k.VM == 0 && k.IP.IsValid() {
		return k.IP.String()
	}
	if e.VM != "" {
		return e.VM
	}
	if e.IP != "" {
		return e.IP
	}
	return "vm#" + strconv.FormatUint(uint64(k.VM), 10)
}

// isVM tells a VM endpoint from an IP one.
func isVM(e *aggregate.Endpoint, k aggregate.EndpointKey) bool {
	return !(k.VM == 0 && k.IP.IsValid()) && e.VM != ""
}
