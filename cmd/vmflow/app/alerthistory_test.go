package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/alert/notify"
	"github.com/vmflow/vmflow/store/influx"
)

type fakeAlertWriter struct{ evs []influx.AlertEvent }

func (f *fakeAlertWriter) WriteAlerts(evs []influx.AlertEvent) { f.evs = append(f.evs, evs...) }

type countDispatcher struct{ n int }

func (c *countDispatcher) Notify(time.Time, []notify.Alert) { c.n++ }

// Each transition is written once: firing when an alert first appears
// firing (at its start), resolved at its end; every evaluation still
// reaches the next dispatcher.
func TestAlertHistoryWritesTransitions(t *testing.T) {
	w, next := &fakeAlertWriter{}, &countDispatcher{}
	h := newAlertHistory(w, next)
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	a := notify.Alert{Fingerprint: "f1", Rule: "rst-storm", Kind: "rst_storm", Severity: "P3", State: notify.StateFiring,
		Labels: map[string]string{"vm": "web-1", "src": "web-1", "dst": "db-1"}, Annotations: map[string]string{"summary": "RST storm web-1 → db-1: 900 RSTs", "threshold": "500"},
		StartsAt: t0, Value: 900, Peak: 900}
	h.Notify(t0, []notify.Alert{a})
	h.Notify(t0.Add(10*time.Second), []notify.Alert{a}) // still firing: nothing new
	r := a
	r.State, r.EndsAt = notify.StateResolved, t0.Add(20*time.Second)
	h.Notify(r.EndsAt, []notify.Alert{r})
	h.Notify(t0.Add(30*time.Second), nil)
	require.Len(t, w.evs, 2)
	assert.Equal(t, "firing", w.evs[0].State)
	assert.Equal(t, t0, w.evs[0].Time)
	assert.Equal(t, "RST storm web-1 → db-1: 900 RSTs", w.evs[0].Summary)
	assert.Equal(t, "500", w.evs[0].Threshold)
	assert.Equal(t, "resolved", w.evs[1].State)
	assert.Equal(t, r.EndsAt, w.evs[1].Time)
	assert.Equal(t, 4, next.n)
	// Firing again later is a new transition.
	h.Notify(t0.Add(40*time.Second), []notify.Alert{a})
	assert.Len(t, w.evs, 3)
}
