package alert

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Snapshot file: gzip of
//
//	"VMFLOW-ALERT-1\n"
//	u32 length + JSON header (silences, pending/firing alerts, recently
//	resolved alerts, exporters, required pairs seen)
//	u64 n + n × (fp u64, level f32, dev f32, windows u32, last u32)   baselines
//	u64 n + n × (fp u64, last seen u32)                                new-peer memory
//	u64 n + n × (fp u64, first seen u32)                               new-peer learning starts
//
// little endian. Bounded by alert.max_series, alert.max_peers,
// alert.max_alerts, alert.recent and MaxSilences: a file with more is
// refused.
const snapMagic = "VMFLOW-ALERT-1\n"

type snapAlert struct {
	FP       uint64            `json:"fp"`
	Rule     string            `json:"rule"`
	State    string            `json:"state"`
	Count    int               `json:"count"`
	Quiet    int               `json:"quiet"`
	ActiveAt time.Time         `json:"active_at"`
	StartsAt time.Time         `json:"starts_at"`
	LastEval time.Time         `json:"last_eval"`
	Value    float64           `json:"value"`
	Peak     float64           `json:"peak"`
	Limit    float64           `json:"limit"`
	Baseline float64           `json:"baseline"`
	Labels   map[string]string `json:"labels"`
	Summary  string            `json:"summary"`
	Link     string            `json:"link"`
}

type snapHeader struct {
	Written   time.Time   `json:"written"`
	Silences  []Silence   `json:"silences"`
	Alerts    []snapAlert `json:"alerts"`
	Recent    []AlertView `json:"recent"`
	Exporters []expState  `json:"exporters"`
	Absent    []uint64    `json:"absent"`
}

func (e *Engine) persistSilences() {
	e.lifeMu.Lock()
	running := e.started && !e.stopped
	e.lifeMu.Unlock()
	if running {
		select {
		case e.snapNow <- struct{}{}:
		default:
		}
		return
	}
	e.writeSnapshotLogged()
}

func (e *Engine) writeSnapshotLogged() {
	if e.cfg.SnapshotFile == "" {
		return
	}
	if err := e.WriteSnapshot(); err != nil {
		e.m.snapshotErrors.Inc()
		e.log.Error("alert snapshot", "file", e.cfg.SnapshotFile, "err", err)
	}
}

// WriteSnapshot writes the state file now (atomically: temporary file,
// fsync, rename). Call it only from the evaluation goroutine or when the
// engine is not running.
func (e *Engine) WriteSnapshot() error {
	path := e.cfg.SnapshotFile
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	e.mu.Lock()
	h := snapHeader{Written: time.Now().UTC(), Silences: e.silences, Recent: e.recent, Absent: []uint64{}}
	for _, a := range e.alerts {
		h.Alerts = append(h.Alerts, snapAlert{FP: a.fp, Rule: a.rule.Name(), State: a.state, Count: a.count, Quiet: a.quiet,
			ActiveAt: a.activeAt, StartsAt: a.startsAt, LastEval: a.lastEval, Value: a.value, Peak: a.peak,
			Limit: a.limit, Baseline: a.baseline, Labels: a.labels, Summary: a.summary, Link: a.link})
	}
	hdr, err := json.Marshal(h)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	st := e.st
	exps := make([]expState, 0, len(st.exps))
	for _, x := range st.exps {
		exps = append(exps, *x)
	}
	for fp := range st.absent {
		h.Absent = append(h.Absent, fp)
	}
	// Exporters and absent are the evaluation goroutine's: re-marshal with them.
	h.Exporters = exps
	if hdr, err = json.Marshal(h); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	cw := &countWriter{w: f}
	zw, _ := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	bw := bufio.NewWriterSize(zw, 1<<16)
	var b [24]byte
	le := binary.LittleEndian
	bw.WriteString(snapMagic)
	le.PutUint32(b[:4], uint32(len(hdr)))
	bw.Write(b[:4])
	bw.Write(hdr)
	le.PutUint64(b[:8], uint64(st.series.len()))
	bw.Write(b[:8])
	st.series.each(func(fp uint64, s *baseState) {
		le.PutUint64(b[0:], fp)
		le.PutUint32(b[8:], math.Float32bits(s.level))
		le.PutUint32(b[12:], math.Float32bits(s.dev))
		le.PutUint32(b[16:], s.n)
		le.PutUint32(b[20:], s.last)
		bw.Write(b[:24])
	})
	for _, m := range []map[uint64]uint32{st.peers, st.vmFirst} {
		le.PutUint64(b[:8], uint64(len(m)))
		bw.Write(b[:8])
		for fp, t := range m {
			le.PutUint64(b[0:], fp)
			le.PutUint32(b[8:], t)
			bw.Write(b[:12])
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	e.m.snapshotBytes.Set(float64(cw.n))
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// loadSnapshot restores the state written by a previous run (a missing
// file is no error).
func (e *Engine) loadSnapshot() error {
	if e.cfg.SnapshotFile == "" {
		return nil
	}
	f, err := os.Open(e.cfg.SnapshotFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	limit := int64(len(snapMagic)) + 4 + 64<<20 + 24*int64(e.cfg.MaxSeries) + 24*int64(e.cfg.MaxPeers) + 64
	r := bufio.NewReader(io.LimitReader(zr, limit))
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapMagic {
		return fmt.Errorf("not a vmflow alert snapshot")
	}
	var b [24]byte
	le := binary.LittleEndian
	if _, err := io.ReadFull(r, b[:4]); err != nil {
		return err
	}
	n := le.Uint32(b[:4])
	if n > 64<<20 {
		return fmt.Errorf("snapshot header of %d bytes: too large", n)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return err
	}
	var h snapHeader
	if err := json.Unmarshal(hdr, &h); err != nil {
		return fmt.Errorf("snapshot header: %w", err)
	}
	count := func(max int) (int, error) {
		if _, err := io.ReadFull(r, b[:8]); err != nil {
			return 0, err
		}
		c := le.Uint64(b[:8])
		if c > uint64(max) {
			return 0, fmt.Errorf("snapshot holds %d entries, more than the configured bound %d", c, max)
		}
		return int(c), nil
	}
	c, err := count(e.cfg.MaxSeries)
	if err != nil {
		return err
	}
	series := newSeriesStore(c)
	for i := 0; i < c; i++ {
		if _, err := io.ReadFull(r, b[:24]); err != nil {
			return err
		}
		fp := le.Uint64(b[0:])
		if series.get(fp) != nil {
			continue
		}
		series.add(fp, baseState{level: math.Float32frombits(le.Uint32(b[8:])), dev: math.Float32frombits(le.Uint32(b[12:])),
			n: le.Uint32(b[16:]), last: le.Uint32(b[20:])})
	}
	var maps [2]map[uint64]uint32
	for k, max := range []int{e.cfg.MaxPeers, e.cfg.MaxPeers} {
		c, err := count(max)
		if err != nil {
			return err
		}
		m := make(map[uint64]uint32, c)
		for i := 0; i < c; i++ {
			if _, err := io.ReadFull(r, b[:12]); err != nil {
				return err
			}
			m[le.Uint64(b[0:])] = le.Uint32(b[8:])
		}
		maps[k] = m
	}
	// All read: install.
	st := e.st
	st.series, st.peers, st.vmFirst = series, maps[0], maps[1]
	for i := range h.Exporters {
		x := h.Exporters[i]
		st.exps[x.Key] = &x
		if p, rest, ok := cutKey(x.Key); ok {
			x.Protocol, x.Agent = p, rest
		}
	}
	for _, fp := range h.Absent {
		st.absent[fp] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.deps.Now()
	for _, s := range h.Silences {
		if err := s.validate(s.StartsAt); err != nil && now.Before(s.EndsAt) {
			continue
		}
		for i := range s.Matchers {
			_ = s.Matchers[i].compile()
		}
		e.silences = append(e.silences, s)
	}
	if len(e.silences) > MaxSilences {
		e.silences = e.silences[len(e.silences)-MaxSilences:]
	}
	byName := map[string]*Rule{}
	for _, r := range e.rules {
		byName[r.Name()] = r
	}
	for _, sa := range h.Alerts {
		r := byName[sa.Rule]
		if r == nil || len(e.alerts) >= e.cfg.MaxAlerts {
			continue
		}
		a := &active{fp: sa.FP, rule: r, state: sa.State, count: sa.Count, quiet: sa.Quiet, activeAt: sa.ActiveAt,
			startsAt: sa.StartsAt, lastEval: sa.LastEval, value: sa.Value, peak: sa.Peak, limit: sa.Limit,
			baseline: sa.Baseline, labels: sa.Labels, summary: sa.Summary, link: sa.Link}
		// Like any alert, it stays firing while its subject holds the
		// condition in the windows evaluated after the restart.
		e.alerts[a.fp] = a
		if e.byRule[r.Name()] == nil {
			e.byRule[r.Name()] = map[uint64]*active{}
		}
		e.byRule[r.Name()][a.fp] = a
	}
	e.recent = h.Recent
	if e.cfg.Recent < len(e.recent) {
		e.recent = e.recent[len(e.recent)-e.cfg.Recent:]
	}
	e.updateGauges()
	return nil
}

func cutKey(k string) (string, string, bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			rest := k[i+1:]
			for j := len(rest) - 1; j >= 0; j-- {
				if rest[j] == '/' {
					return k[:i], rest[:j], true
				}
			}
		}
	}
	return "", "", false
}
