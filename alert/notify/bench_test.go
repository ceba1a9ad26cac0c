package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkNotifySteady is one evaluation handed to delivery with 1,000
// firing alerts that do not change (Alertmanager and a webhook configured):
// what Notify costs the engine per window. Every sixth evaluation re-sends
// to Alertmanager (resend 1 min, 10 s windows), as in production.
func BenchmarkNotifySteady(b *testing.B) {
	b.Run("resend_1m", func(b *testing.B) { benchNotify(b, time.Minute) })
	// no re-send due: the cost of an evaluation that changes nothing
	b.Run("no_resend_due", func(b *testing.B) { benchNotify(b, time.Hour) })
}

func benchNotify(b *testing.B, resend time.Duration) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Window = 10 * time.Second
	cfg.Alertmanager.URLs = []string{srv.URL}
	cfg.Alertmanager.ResendInterval = resend
	cfg.Webhooks = []WebhookConfig{{URL: srv.URL}}
	cfg.GroupWait = 0
	cfg.Outbox.Size = 1_000_000
	n, err := New(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer n.Stop()
	alerts := make([]Alert, 1000)
	for i := range alerts {
		a := fanOut(StateFiring)
		a.Fingerprint = fmt.Sprintf("fp%d", i)
		a.Labels = map[string]string{"alertname": "fan-out", "severity": "P1", "vm": fmt.Sprintf("web-%d", i), "tenant": "acme"}
		alerts[i] = a
	}
	now := t0
	n.Notify(now, alerts)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(10 * time.Second)
		n.Notify(now, alerts)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(alerts)), "ns/alert")
}
