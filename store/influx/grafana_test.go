package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/enrich"
)

const grafanaDir = "../../configs/grafana"

type gDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gTarget struct {
	RefID      string       `json:"refId"`
	Datasource *gDatasource `json:"datasource"`
	Query      string       `json:"query"`
}

type gPanel struct {
	ID         int          `json:"id"`
	Title      string       `json:"title"`
	Type       string       `json:"type"`
	Datasource *gDatasource `json:"datasource"`
	Targets    []gTarget    `json:"targets"`
	Panels     []gPanel     `json:"panels"`
}

type gVariable struct {
	Name       string       `json:"name"`
	Type       string       `json:"type"`
	Query      any          `json:"query"`
	Datasource *gDatasource `json:"datasource"`
	Multi      bool         `json:"multi"`
	IncludeAll bool         `json:"includeAll"`
	AllValue   string       `json:"allValue"`
}

type gDashboard struct {
	UID        string   `json:"uid"`
	Title      string   `json:"title"`
	Panels     []gPanel `json:"panels"`
	Templating struct {
		List []gVariable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string       `json:"name"`
			Datasource *gDatasource `json:"datasource"`
			Target     gTarget      `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
}

func loadDashboards(t *testing.T) map[string]gDashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(grafanaDir, "dashboards", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4)
	out := map[string]gDashboard{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var d gDashboard
		require.NoError(t, json.Unmarshal(raw, &d), f)
		out[filepath.Base(f)] = d
	}
	return out
}

func allPanels(ps []gPanel) []gPanel {
	var out []gPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// TestDashboardsValid checks the dashboard JSON: unique dashboard uids,
// unique panel ids, every panel and target on the ${datasource} variable,
// every variable used by a query defined, and the provisioning files.
func TestDashboardsValid(t *testing.T) {
	uids := map[string]string{}
	for name, d := range loadDashboards(t) {
		require.NotEmpty(t, d.UID, name)
		require.NotContains(t, uids, d.UID, "uid %s of %s also in %s", d.UID, name, uids[d.UID])
		uids[d.UID] = name
		vars := map[string]gVariable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		require.Contains(t, vars, "datasource", name)
		assert.Equal(t, "datasource", vars["datasource"].Type)
		assert.Equal(t, "influxdb", vars["datasource"].Query)
		ids := map[int]bool{}
		used := regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)
		check := func(where, q string) {
			for _, m := range used.FindAllStringSubmatch(q, -1) {
				n := m[1] + m[2]
				assert.Contains(t, vars, n, "%s: %s uses undefined variable %s", name, where, n)
			}
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				require.NotNil(t, v.Datasource, "%s variable %s", name, v.Name)
				assert.Equal(t, "${datasource}", v.Datasource.UID, "%s variable %s", name, v.Name)
				check("variable "+v.Name, fmt.Sprint(v.Query))
			}
		}
		panels := allPanels(d.Panels)
		require.NotEmpty(t, panels, name)
		for _, p := range panels {
			assert.False(t, ids[p.ID], "%s: duplicate panel id %d", name, p.ID)
			ids[p.ID] = true
			require.NotNil(t, p.Datasource, "%s panel %q", name, p.Title)
			assert.Equal(t, "${datasource}", p.Datasource.UID, "%s panel %q", name, p.Title)
			require.NotEmpty(t, p.Targets, "%s panel %q", name, p.Title)
			for _, tg := range p.Targets {
				require.NotNil(t, tg.Datasource, "%s panel %q target %s", name, p.Title, tg.RefID)
				assert.Equal(t, "${datasource}", tg.Datasource.UID, "%s panel %q target %s", name, p.Title, tg.RefID)
				assert.NotEmpty(t, strings.TrimSpace(tg.Query))
				check("panel "+p.Title, tg.Query)
			}
		}
	}
	for _, n := range []string{"vmflow-overview", "vmflow-pair", "vmflow-vm", "vmflow-exporters"} {
		assert.Contains(t, uids, n)
	}
	// provisioning files parse and point at Flux
	var ds struct {
		Datasources []struct {
			Name, Type, UID, URL string
			JSONData             map[string]any `yaml:"jsonData"`
			SecureJSONData       map[string]any `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	raw, err := os.ReadFile(filepath.Join(grafanaDir, "provisioning", "datasources", "vmflow.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &ds))
	require.Len(t, ds.Datasources, 1)
	assert.Equal(t, "influxdb", ds.Datasources[0].Type)
	assert.Equal(t, "Flux", ds.Datasources[0].JSONData["version"])
	assert.Equal(t, "${VMFLOW_INFLUX_URL}", ds.Datasources[0].URL)
	assert.Equal(t, "${VMFLOW_INFLUX_TOKEN}", ds.Datasources[0].SecureJSONData["token"])
	var dp struct {
		Providers []struct {
			Type    string         `yaml:"type"`
			Options map[string]any `yaml:"options"`
		} `yaml:"providers"`
	}
	raw, err = os.ReadFile(filepath.Join(grafanaDir, "provisioning", "dashboards", "vmflow.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &dp))
	require.Len(t, dp.Providers, 1)
	assert.Equal(t, "file", dp.Providers[0].Type)
}

// substitute replaces Grafana variables and the v.* Flux macros the way
// Grafana does, with the given values (regex format for :regex).
func substitute(q string, vals map[string]string, start, stop time.Time, period string) string {
	re := regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\$(\w+)`)
	q = re.ReplaceAllStringFunc(q, func(m string) string {
		sm := re.FindStringSubmatch(m)
		name, format := sm[1]+sm[3], sm[2]
		v, ok := vals[name]
		if !ok {
			return m
		}
		if format == "regex" && v != ".*" {
			return regexp.QuoteMeta(v)
		}
		return v
	})
	q = strings.ReplaceAll(q, "v.timeRangeStart", fluxTime(start))
	q = strings.ReplaceAll(q, "v.timeRangeStop", fluxTime(stop))
	q = strings.ReplaceAll(q, "v.windowPeriod", period)
	return q
}

// TestDashboardQueries loads test data into a real influxd and runs every
// panel and variable query of every dashboard, with specific variable
// values and with "All": each returns rows.
func TestDashboardQueries(t *testing.T) {
	const db = "vmflow_grafana"
	srv := startInflux(t, db)
	cfg := testConfig(t, srv.URL(), db)
	cfg.SelfInterval = 50 * time.Millisecond
	w := newTestWriter(t, cfg)
	require.NoError(t, w.Start(context.Background()))
	now := time.Now()
	base := now.Add(-30 * time.Minute).Truncate(10 * time.Second)
	res := enrich.NewResourceTracker(enrich.ResourceTrackerConfig{StaleAfter: time.Hour})
	res.OnUpdate(w.WriteResources) // VM resource panels (resources_test.go)
	for k := 0; k < 30; k++ {
		win := withProbePairs(portWin(base, k)) // mkWindow plus ports (ports_test.go), probe pairs (latency_test.go)
		w.Write(win)
		res.PutVM(resourceSample("web-1", win.End, uint64(k)))
		var rows []collector.ExporterStatus
		for i, ip := range []string{"192.0.2.1:50000", "192.0.2.2:50000"} {
			rows = append(rows, collector.ExporterStatus{Protocol: "sflow", Address: ip, Agent: "192.0.2.1", SubAgent: uint32(i),
				Datagrams: uint64(100 * k), Samples: uint64(600 * k), DecodeErrors: uint64(k / 3), LostDatagrams: uint64(k / 2), LastSeen: win.End})
		}
		rows = append(rows, collector.ExporterStatus{Protocol: "ipfix", Address: "192.0.2.3:4739", ObsDomain: 7, Datagrams: uint64(50 * k), Samples: uint64(300 * k), LastSeen: win.End})
		w.WriteExporters(win.End, rows)
	}
	// Alert transitions (the app's alertHistory writes them): a VM alert
	// fired and resolved, an exporter alert firing.
	at := base.Add(5 * time.Minute)
	vmAlert := AlertEvent{Time: at, State: "firing", Fingerprint: "f1", Rule: "pair-traffic-anomaly", Kind: "baseline", Severity: "P2",
		Labels:  map[string]string{"vm": "web-1", "tenant": "acme", "host": "hv1", "src": "web-1", "dst": "db-1", "team": "web"},
		Summary: "bps web-1 → db-1 33.5M outside baseline 2.11M", Value: 33.5e6, Peak: 40e6, Threshold: "12.1M", StartsAt: at}
	resolved := vmAlert
	resolved.State, resolved.Time = "resolved", at.Add(time.Minute)
	expAlert := AlertEvent{Time: at, State: "firing", Fingerprint: "f2", Rule: "exporter-silent", Kind: "exporter_silent", Severity: "P1",
		Labels: map[string]string{"exporter": "192.0.2.1", "protocol": "sflow"}, Summary: "exporter sflow 192.0.2.1 silent for 6 windows", Value: 6, StartsAt: at}
	w.WriteAlerts([]AlertEvent{vmAlert, resolved, expAlert})
	time.Sleep(200 * time.Millisecond) // a few self-metrics points
	w.Stop()

	r, err := NewReader(cfg)
	require.NoError(t, err)
	defer r.Close()

	specific := map[string]string{"bucket": cfg.Bucket, "tenant": "acme", "host": "hv1", "vm": "web-1", "src": "web-1", "dst": "db-1", "exporter": "192.0.2.1"}
	all := map[string]string{"bucket": cfg.Bucket, "tenant": ".*", "host": ".*", "vm": "web-1", "src": "batch-7", "dst": "(external)", "exporter": ".*"}
	start, stop := now.Add(-time.Hour), now.Add(time.Minute)
	n := 0
	for name, d := range loadDashboards(t) {
		for _, vals := range []map[string]string{specific, all} {
			for _, v := range d.Templating.List {
				if v.Type != "query" {
					continue
				}
				q := substitute(fmt.Sprint(v.Query), vals, start, stop, "1m")
				rows := fluxRows(t, r, q)
				assert.NotEmpty(t, rows, "%s variable %s returned no rows:\n%s", name, v.Name, q)
				n++
			}
			for _, p := range allPanels(d.Panels) {
				for _, tg := range p.Targets {
					q := substitute(tg.Query, vals, start, stop, "1m")
					rows := fluxRows(t, r, q)
					assert.NotEmpty(t, rows, "%s panel %q target %s returned no rows:\n%s", name, p.Title, tg.RefID, q)
					n++
				}
			}
			for _, an := range d.Annotations.List {
				q := substitute(an.Target.Query, vals, start, stop, "1m")
				rows := fluxRows(t, r, q)
				if vals["src"] == specific["src"] { // (the other set names a pair without alerts)
					assert.NotEmpty(t, rows, "%s annotation %q returned no rows:\n%s", name, an.Name, q)
				}
				for _, row := range rows {
					assert.Contains(t, fmt.Sprint(row["_value"]), "P", "%s annotation text: %v", name, row)
				}
				n++
			}
		}
	}
	t.Logf("%d dashboard queries ran, each returned rows", n)
}
