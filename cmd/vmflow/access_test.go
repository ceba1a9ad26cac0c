package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/api"
	"github.com/vmflow/vmflow/api/auth"
	"github.com/vmflow/vmflow/cmd/vmflow/app"
	"github.com/vmflow/vmflow/internal/synth"
)

// accessClient sends requests as one identity and counts them (the audit
// log must have as many lines for it).
type accessClient struct {
	name   string // identity name in the audit log ("" for refused ones)
	header string // Authorization header ("" none)
	addr   string
	sent   int
}

var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (c *accessClient) do(t *testing.T, method, path, ctype, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+c.addr+path, rd)
	require.NoError(t, err)
	if c.header != "" {
		req.Header.Set("Authorization", c.header)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := noRedirect.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	c.sent++
	return resp.StatusCode, string(b)
}

func (c *accessClient) getJSON(t *testing.T, path string, out any) {
	t.Helper()
	code, body := c.do(t, "GET", path, "", "")
	require.Equal(t, 200, code, "%s GET %s: %s", c.name, path, body)
	require.NoError(t, json.Unmarshal([]byte(body), out), "GET %s", path)
}

type accessVM struct {
	Name, UUID, Host, Tenant string
	Interfaces               []struct {
		MAC   string `json:"mac"`
		Addrs []struct {
			IP string `json:"ip"`
		} `json:"addrs"`
	}
}

type accessEnd struct{ VM, UUID, Host, Tenant, IP, MAC string }

type accessPair struct {
	Src, Dst accessEnd
	Bytes    float64
}

// TestAccessMatrix is the access-control acceptance test on the demo
// (internal/synth through the whole pipeline: sFlow and IPFIX over
// loopback into an in-process vmflow): every route of the OpenAPI
// document × {no credentials, bad token, expired token, viewer, operator,
// admin, tenant A, tenant B} answers the expected status; tenants A and B
// (sharing a hypervisor and talking to each other) crawl every route they
// may call with real parameters and never see a name, UUID, MAC or IP of
// another tenant's VM; a 404 for the other tenant's VM equals the one for
// a VM that does not exist; a tenant's totals are the totals of its pairs;
// the audit log has one line per request with the right identity.
func TestAccessMatrix(t *testing.T) {
	dir := t.TempDir()
	tokens, audit := filepath.Join(dir, "tokens"), filepath.Join(dir, "audit.jsonl")
	now := time.Now()
	mk := func(name string, role auth.Role, tenants []string, exp time.Time) *accessClient {
		tok, err := auth.AppendToken(tokens, auth.TokenEntry{Name: name, Role: role, Tenants: tenants, Expires: exp}, now)
		require.NoError(t, err)
		return &accessClient{name: name, header: "Bearer " + tok}
	}
	admin := mk("t-admin", auth.RoleAdmin, nil, time.Time{})
	viewer := mk("t-viewer", auth.RoleViewer, nil, time.Time{})
	operator := mk("t-operator", auth.RoleOperator, nil, now.Add(time.Hour))
	expired := mk("t-expired", auth.RoleAdmin, nil, now.Add(-time.Minute))
	expired.name = ""
	badTok, err := auth.NewToken()
	require.NoError(t, err)
	none := &accessClient{}
	bad := &accessClient{header: "Bearer " + badTok}

	d, err := app.StartDemo(context.Background(), synth.DemoConfig(), app.DemoOptions{Listen: "127.0.0.1:0", Window: 2 * time.Second, Dir: dir, Environ: []string{
		"VMFLOW_API_AUTH_ANONYMOUS=false", "VMFLOW_API_AUTH_TOKENS_FILE=" + tokens, "VMFLOW_API_AUDIT_FILE=" + audit,
		"VMFLOW_API_LIMITS_RATE=0", "VMFLOW_API_LIMITS_TENANT_RATE=0",
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(d.Stop)
	addr := d.App.APIAddr()
	for _, c := range []*accessClient{admin, viewer, operator, expired, none, bad} {
		c.addr = addr
	}

	// Two tenants that share a hypervisor and talk to each other.
	var vms struct{ VMs []accessVM }
	admin.getJSON(t, "/api/v1/vms", &vms)
	hostsOf := map[string]map[string]bool{}
	for _, v := range vms.VMs {
		if hostsOf[v.Tenant] == nil {
			hostsOf[v.Tenant] = map[string]bool{}
		}
		hostsOf[v.Tenant][v.Host] = true
	}
	var cross accessPair
	deadline := time.Now().Add(60 * time.Second)
	for cross.Src.VM == "" {
		require.True(t, time.Now().Before(deadline), "no traffic between two tenants sharing a host within 60 s")
		var ps struct{ Pairs []accessPair }
		admin.getJSON(t, "/api/v1/pairs?since=5m&limit=1000", &ps)
		for _, p := range ps.Pairs {
			a, b := p.Src.Tenant, p.Dst.Tenant
			if p.Src.UUID == "" || p.Dst.UUID == "" || a == b || a == "" || b == "" {
				continue
			}
			for h := range hostsOf[a] {
				if hostsOf[b][h] {
					cross = p
				}
			}
		}
		if cross.Src.VM == "" {
			time.Sleep(time.Second)
		}
	}
	tA, tB := cross.Src.Tenant, cross.Dst.Tenant
	tenantA := mk("t-tenant-a", auth.RoleOperator, []string{tA}, time.Time{}) // operator: still no silences for tenants
	tenantB := mk("t-tenant-b", auth.RoleViewer, []string{tB}, time.Time{})
	tenantA.addr, tenantB.addr = addr, addr
	time.Sleep(1100 * time.Millisecond) // the token file is re-read at most once a second
	t.Logf("tenants %s (%s) and %s (%s) share a host; %d VMs in the cloud", tA, cross.Src.VM, tB, cross.Dst.VM, len(vms.VMs))

	// The OpenAPI document drives the matrix: a route added later is in it.
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Ref    string `json:"$ref"`
				Name   string `json:"name"`
				In     string `json:"in"`
				Schema struct {
					Enum []any `json:"enum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
		Components struct {
			Parameters map[string]struct {
				Name   string `json:"name"`
				In     string `json:"in"`
				Schema struct {
					Enum []any `json:"enum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"components"`
	}
	admin.getJSON(t, "/api/v1/openapi.json", &doc)
	require.NotEmpty(t, doc.Paths)

	fill := func(p, src, dst, name string) string {
		r := strings.NewReplacer("{src}", url.PathEscape(src), "{dst}", url.PathEscape(dst), "{name}", url.PathEscape(name),
			"{id}", "no-such-silence", "{filepath}", "app.js")
		return r.Replace(p)
	}
	silence := fmt.Sprintf(`{"matchers":[{"name":"vm","value":%q,"isRegex":false}],"endsAt":%q,"comment":"access test","createdBy":"test"}`,
		cross.Src.VM, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	bodyOf := func(method, route string) (string, string) {
		switch method + " " + route {
		case "POST /api/v1/silences":
			return "application/json", silence
		case "POST /login":
			return "application/x-www-form-urlencoded", "token=vmf_nope&next=%2F"
		}
		return "", ""
	}

	type row struct {
		id     string
		client *accessClient
	}
	ids := []row{{"none", none}, {"bad", bad}, {"expired", expired}, {"viewer", viewer}, {"operator", operator}, {"admin", admin}, {"tenantA", tenantA}, {"tenantB", tenantB}}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	checked := 0
	var table []string
	for _, p := range paths {
		for m := range doc.Paths[p] {
			method, route := strings.ToUpper(m), api.RouteOf(p)
			role, tenantOK, ok := api.RouteAccess(method, route)
			require.True(t, ok, "%s %s has no access policy", method, route)
			path := fill(p, cross.Src.VM, cross.Dst.VM, cross.Src.VM)
			ct, body := bodyOf(method, route)
			refCode, _ := admin.do(t, method, path, ct, body) // what an authorized caller gets
			if role == "" {
				refCode, _ = none.do(t, method, path, ct, body)
			}
			line := fmt.Sprintf("%-7s %-36s", method, route)
			for _, r := range ids {
				want := refCode
				switch {
				case role == "":
				case r.id == "none" && method == "GET" && (route == "/" || strings.HasPrefix(route, "/assets/")):
					want = http.StatusFound // to the login page
				case r.id == "none" || r.id == "bad" || r.id == "expired":
					want = http.StatusUnauthorized
				case !idRole(r.id).Allows(role):
					want = http.StatusForbidden
				case strings.HasPrefix(r.id, "tenant") && !tenantOK:
					want = http.StatusForbidden
				case strings.HasPrefix(r.id, "tenant") && (strings.Contains(p, "{src}") || (strings.Contains(p, "{name}") && r.id == "tenantB")):
					want = http.StatusNotFound // names the other tenant's VM
				}
				code, got := r.client.do(t, method, path, ct, body)
				assert.Equal(t, want, code, "%s %s as %s: %s", method, path, r.id, got)
				line += fmt.Sprintf(" %s=%d", r.id, code)
				checked++
			}
			table = append(table, line)
		}
	}
	t.Logf("matrix: %d routes × %d identities = %d requests\n%s", len(table), len(ids), checked, strings.Join(table, "\n"))
	assert.GreaterOrEqual(t, len(table), 20)

	// A 404 for the other tenant's VM is the 404 of a VM that does not exist.
	for _, c := range []struct {
		cl            *accessClient
		foreign, mine string
	}{{tenantB, cross.Src.VM, cross.Dst.VM}, {tenantA, cross.Dst.VM, cross.Src.VM}} {
		for _, tpl := range []string{"/api/v1/vms/%[1]s/series%.0[2]s", "/api/v1/pairs/%[2]s/%[1]s", "/api/v1/pairs/%[2]s/%[1]s/series", "/api/v1/pairs/%[1]s/%[2]s"} {
			c1, b1 := c.cl.do(t, "GET", fmt.Sprintf(tpl, c.foreign, c.mine), "", "")
			c2, b2 := c.cl.do(t, "GET", fmt.Sprintf(tpl, "no-such-vm", c.mine), "", "")
			assert.Equal(t, c2, c1, tpl)
			assert.Equal(t, strings.ReplaceAll(b2, "no-such-vm", c.foreign), b1, "%s: the other tenant's VM looks like a missing one", tpl)
		}
	}

	fixedTo := time.Now().Add(-3 * time.Second).UTC().Truncate(time.Second)
	fixedRange := fmt.Sprintf("from=%s&to=%s", fixedTo.Add(-time.Minute).Format(time.RFC3339), fixedTo.Format(time.RFC3339))

	// Crawl: every route a tenant may call, every enumerated parameter
	// value, its own VMs and pairs, and filters naming the other tenant.
	for _, c := range []struct {
		cl     *accessClient
		tenant string
	}{{tenantA, tA}, {tenantB, tB}} {
		forbidden := foreignIdentifiers(vms.VMs, c.tenant)
		var own struct{ Pairs []accessPair }
		c.cl.getJSON(t, "/api/v1/pairs?since=1h&limit=200", &own)
		require.NotEmpty(t, own.Pairs, "tenant %s sees its pairs", c.tenant)
		var ownVMs struct{ VMs []accessVM }
		c.cl.getJSON(t, "/api/v1/vms", &ownVMs)
		require.NotEmpty(t, ownVMs.VMs)
		for _, v := range ownVMs.VMs {
			require.Equal(t, c.tenant, v.Tenant, "/vms lists only the tenant's VMs")
		}
		sawOpaque := false
		var bodies []string
		codes := map[int]int{}
		visit := func(path string) {
			code, body := c.cl.do(t, "GET", path, "", "")
			codes[code]++
			assert.Less(t, code, 500, "%s: %s", path, body)
			bodies = append(bodies, path+"\n"+body)
			sawOpaque = sawOpaque || strings.Contains(body, api.OtherTenant)
		}
		for _, p := range paths {
			op, ok := doc.Paths[p]["get"]
			if !ok {
				continue
			}
			if _, tenantOK, _ := api.RouteAccess("GET", api.RouteOf(p)); !tenantOK {
				continue
			}
			var variants []string
			for _, prm := range op.Parameters {
				if prm.Ref != "" {
					cp := doc.Components.Parameters[strings.TrimPrefix(prm.Ref, "#/components/parameters/")]
					prm.Name, prm.In, prm.Schema.Enum = cp.Name, cp.In, cp.Schema.Enum
				}
				if prm.In != "query" {
					continue
				}
				for _, e := range prm.Schema.Enum {
					variants = append(variants, fmt.Sprintf("%s=%v", prm.Name, e))
				}
				switch prm.Name {
				case "vm", "src", "dst":
					foreign := forbiddenVM(vms.VMs, c.tenant)
					variants = append(variants, prm.Name+"="+url.QueryEscape(foreign))
					// Filtering on another tenant's VM answers like filtering on no VM at all.
					tg := fill(p, "x", "y", "z")
					if !strings.Contains(tg, "{") && !strings.Contains(p, "{") {
						c1, b1 := c.cl.do(t, "GET", tg+"?"+prm.Name+"="+url.QueryEscape(foreign)+"&"+fixedRange, "", "")
						c2, b2 := c.cl.do(t, "GET", tg+"?"+prm.Name+"=no-such-vm&"+fixedRange, "", "")
						assert.Equal(t, c2, c1, "%s?%s=<other tenant's VM>", p, prm.Name)
						assert.Equal(t, strings.ReplaceAll(b2, "no-such-vm", foreign), b1, "%s?%s=<other tenant's VM>", p, prm.Name)
					}
				case "tenant":
					other := tA
					if c.tenant == tA {
						other = tB
					}
					variants = append(variants, "tenant="+other, "tenant="+c.tenant)
				}
			}
			targets := []string{}
			if strings.Contains(p, "{") {
				for i, pr := range own.Pairs {
					if i >= 6 {
						break
					}
					targets = append(targets, fill(p, pairName(pr.Src), pairName(pr.Dst), ownVMs.VMs[i%len(ownVMs.VMs)].Name))
				}
			} else {
				targets = append(targets, p)
			}
			for _, tg := range targets {
				visit(tg)
				visit(tg + "?since=1h")
				for _, v := range variants {
					visit(tg + "?" + v)
				}
			}
		}
		assert.True(t, sawOpaque, "tenant %s sees its cross-tenant traffic as %s", c.tenant, api.OtherTenant)
		leaks := 0
		for _, b := range bodies {
			req := strings.SplitN(b, "\n", 2)[0]
			for _, f := range forbidden {
				if f.re.MatchString(req) {
					continue // what the tenant sent itself (a filter naming another tenant's VM) is no leak
				}
				if f.re.MatchString(b) {
					leaks++
					if leaks < 10 {
						t.Errorf("tenant %s: %s of another tenant's VM in %s", c.tenant, f.what, strings.SplitN(b, "\n", 2)[0])
					}
				}
			}
		}
		t.Logf("tenant %s: crawled %d responses (by status %v), %d foreign identifiers searched, %d found", c.tenant, len(bodies), codes, len(forbidden), leaks)
	}

	// Totals are the totals of what the tenant may see: one fixed range.
	to := time.Now().Add(-3 * time.Second).UTC().Truncate(time.Second)
	rng := fmt.Sprintf("from=%s&to=%s", to.Add(-time.Minute).Format(time.RFC3339), to.Format(time.RFC3339))
	var mine, all struct{ Pairs []accessPair }
	tenantA.getJSON(t, "/api/v1/pairs?limit=200&"+rng, &mine)
	admin.getJSON(t, "/api/v1/pairs?limit=1000&tenant="+tA+"&"+rng, &all)
	sum := func(ps []accessPair) (s float64) {
		for _, p := range ps {
			s += p.Bytes
		}
		return s
	}
	require.NotZero(t, sum(all.Pairs))
	assert.InDelta(t, sum(all.Pairs), sum(mine.Pairs), 1e-6*sum(all.Pairs), "tenant %s's pair total", tA)
	var ovA, ovAll struct {
		Totals struct{ Bytes float64 } `json:"totals"`
	}
	tenantA.getJSON(t, "/api/v1/overview?"+rng, &ovA)
	admin.getJSON(t, "/api/v1/overview?tenant="+tA+"&"+rng, &ovAll)
	assert.InDelta(t, ovAll.Totals.Bytes, ovA.Totals.Bytes, 1e-6*math.Max(1, ovAll.Totals.Bytes), "tenant overview total")
	t.Logf("tenant %s total over one minute: %.0f bytes (admin, ?tenant=: %.0f)", tA, sum(mine.Pairs), sum(all.Pairs))

	// The audit log: one line per request, with the identity that sent it.
	time.Sleep(100 * time.Millisecond)
	f, err := os.Open(audit)
	require.NoError(t, err)
	defer f.Close()
	counts := map[string]int{}
	roles := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<22)
	lines := 0
	for sc.Scan() {
		var rec api.AuditRecord
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), sc.Text())
		lines++
		if rec.Kind != "request" {
			continue
		}
		counts[rec.Who]++
		if rec.Who != "" {
			roles[rec.Who] = string(rec.Role) + strings.Join(rec.Tenants, ",")
		}
	}
	assert.Equal(t, none.sent+bad.sent+expired.sent, counts[""], "refused requests are audited without identity")
	for _, c := range []*accessClient{viewer, operator, tenantA, tenantB} {
		assert.Equal(t, c.sent, counts[c.name], "audit lines of %s", c.name)
	}
	assert.Equal(t, "operator"+tA, roles["t-tenant-a"])
	assert.Equal(t, "viewer"+tB, roles["t-tenant-b"])
	assert.GreaterOrEqual(t, counts["t-admin"], admin.sent)
	t.Logf("audit log: %d lines; requests per identity %v", lines, counts)
}

func idRole(id string) auth.Role {
	switch id {
	case "admin":
		return auth.RoleAdmin
	case "operator", "tenantA":
		return auth.RoleOperator
	}
	return auth.RoleViewer
}

func pairName(e accessEnd) string {
	if e.VM != "" {
		return e.VM
	}
	return e.IP
}

// forbiddenVM is a VM of another tenant.
func forbiddenVM(vms []accessVM, tenant string) string {
	for _, v := range vms {
		if v.Tenant != tenant {
			return v.Name
		}
	}
	return "none"
}

type foreignID struct {
	what string
	re   *regexp.Regexp
}

// foreignIdentifiers are the names, UUIDs, MACs and IPs of the VMs of
// every other tenant, each matched as a whole token.
func foreignIdentifiers(vms []accessVM, tenant string) []foreignID {
	mine := map[string]bool{}
	for _, v := range vms {
		if v.Tenant == tenant {
			mine[v.Name] = true
		}
	}
	var out []foreignID
	add := func(what, s string) {
		if s != "" && !mine[s] {
			out = append(out, foreignID{what + " " + s, regexp.MustCompile(`(^|[^A-Za-z0-9_.:-])` + regexp.QuoteMeta(s) + `($|[^A-Za-z0-9_.:-])`)})
		}
	}
	for _, v := range vms {
		if v.Tenant == tenant {
			continue
		}
		add("name", v.Name)
		add("uuid", v.UUID)
		for _, ifc := range v.Interfaces {
			add("mac", ifc.MAC)
			for _, a := range ifc.Addrs {
				add("ip", a.IP)
			}
		}
	}
	return out
}
