package api

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// paramError is a bad query parameter: answered 400 naming the parameter.
type paramError struct {
	param string
	msg   string
}

func (e *paramError) Error() string { return e.param + ": " + e.msg }

func badParam(param, format string, args ...any) *paramError {
	return &paramError{param: param, msg: fmt.Sprintf(format, args...)}
}

// query reads query parameters and remembers which ones the handler looked
// at, so that any other (misspelt, unsupported) parameter is refused
// rather than silently ignored.
type query struct {
	vals url.Values
	used map[string]bool
}

func newQuery(c *gin.Context) *query {
	return &query{vals: c.Request.URL.Query(), used: map[string]bool{}}
}

// get returns the parameter's value; an empty value counts as absent.
func (q *query) get(name string) (string, bool, error) {
	q.used[name] = true
	v := q.vals[name]
	if len(v) > 1 {
		return "", false, badParam(name, "given %d times; give it once", len(v))
	}
	if len(v) == 0 || v[0] == "" {
		return "", false, nil
	}
	return v[0], true, nil
}

// finish reports the first parameter the handler did not read.
func (q *query) finish() error {
	var unknown []string
	for k := range q.vals {
		if !q.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := make([]string, 0, len(q.used))
	for k := range q.used {
		known = append(known, k)
	}
	sort.Strings(known)
	return badParam(unknown[0], "unknown parameter (accepted: %s)", strings.Join(known, ", "))
}

// noQuery answers 400 for routes that take no parameters.
func noQuery(c *gin.Context) error {
	if err := newQuery(c).finish(); err != nil {
		writeError(c, err)
		return err
	}
	return nil
}

// writeError answers a paramError with 400 and anything else with 500.
func writeError(c *gin.Context, err error) {
	if pe, ok := err.(*paramError); ok {
		c.JSON(http.StatusBadRequest, errorBody{Error: pe.Error(), Parameter: pe.param})
		return
	}
	c.JSON(http.StatusInternalServerError, errorBody{Error: err.Error()})
}

// maxRange bounds ?since=.
const maxRange = 400 * 24 * time.Hour

// timeRange parses since, or from and to. from defaults to to-since (since
// defaulting to def); to defaults to now.
func (q *query) timeRange(now time.Time, def time.Duration) (from, to time.Time, err error) {
	sinceS, hasSince, err := q.get("since")
	if err != nil {
		return from, to, err
	}
	fromS, hasFrom, err := q.get("from")
	if err != nil {
		return from, to, err
	}
	toS, hasTo, err := q.get("to")
	if err != nil {
		return from, to, err
	}
	if hasSince && hasFrom {
		return from, to, badParam("since", "give either since or from, not both")
	}
	to = now
	if hasTo {
		if to, err = parseTime(toS); err != nil {
			return from, to, badParam("to", "%v", err)
		}
	}
	since := def
	if hasSince {
		d, err := time.ParseDuration(sinceS)
		if err != nil {
			return from, to, badParam("since", "not a duration like 5m or 1h30m: %q", sinceS)
		}
		if d <= 0 {
			return from, to, badParam("since", "must be > 0, got %s", d)
		}
		if d > maxRange {
			return from, to, badParam("since", "must be at most %s", maxRange)
		}
		since = d
	}
	from = to.Add(-since)
	if hasFrom {
		if from, err = parseTime(fromS); err != nil {
			return from, to, badParam("from", "%v", err)
		}
	}
	if !from.Before(to) {
		return from, to, badParam("from", "must be before to (%s >= %s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

// parseTime accepts RFC 3339 or unix seconds (fractions allowed).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time or unix seconds: %q", s)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// sources accepted by ?source=.
var sourceNames = []string{"auto", "sflow", "ipfix", "netflow9"}

func (q *query) source() (string, error) {
	s, ok, err := q.get("source")
	if err != nil || !ok {
		return "auto", err
	}
	for _, n := range sourceNames {
		if s == n {
			return s, nil
		}
	}
	return "", badParam("source", "unknown source %q (one of %s)", s, strings.Join(sourceNames, ", "))
}

// sort keys accepted by ?sort=.
var sortNames = []string{"bytes", "packets", "flows", "samples", "bps", "pps"}

func (q *query) sortKey() (string, error) {
	s, ok, err := q.get("sort")
	if err != nil || !ok {
		return "bytes", err
	}
	for _, n := range sortNames {
		if s == n {
			return s, nil
		}
	}
	return "", badParam("sort", "unknown sort %q (one of %s)", s, strings.Join(sortNames, ", "))
}

func (q *query) limit(maxLimit int) (int, error) {
	s, ok, err := q.get("limit")
	def := min(DefaultLimit, maxLimit)
	if err != nil || !ok {
		return def, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, badParam("limit", "not an integer: %q", s)
	}
	if n < 1 || n > maxLimit {
		return 0, badParam("limit", "must be between 1 and %d, got %d", maxLimit, n)
	}
	return n, nil
}

// maxPoints bounds the points a series request may ask for with ?step=.
const maxPoints = 100_000

// step parses ?step= (a Go duration). It returns 0 when absent: one point
// per window. windowSize, when known (> 0), is the smallest step allowed,
// and step must be a multiple of it so that every bucket holds the same
// number of windows.
func (q *query) step(from, to time.Time, windowSize time.Duration) (time.Duration, error) {
	s, ok, err := q.get("step")
	if err != nil || !ok {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badParam("step", "not a duration like 1m or 1h: %q", s)
	}
	if d < time.Second {
		return 0, badParam("step", "must be >= 1s, got %s", d)
	}
	if n := to.Sub(from) / d; n > maxPoints {
		return 0, badParam("step", "%s gives %d points for the range; at most %d", d, n, maxPoints)
	}
	if err := checkStep(d, windowSize); err != nil {
		return 0, err
	}
	return d, nil
}

// checkStep checks a step against the window size (no check when unknown).
func checkStep(step, windowSize time.Duration) error {
	if windowSize <= 0 {
		return nil
	}
	if step < windowSize {
		return badParam("step", "must be at least the window size %s, got %s", windowSize, step)
	}
	if step%windowSize != 0 {
		return badParam("step", "must be a multiple of the window size %s, got %s", windowSize, step)
	}
	return nil
}
