package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Parameters map[string]docParam `json:"parameters"`
		Schemas    map[string]any      `json:"schemas"`
	} `json:"components"`
}

type docParam struct {
	Ref     string `json:"$ref"`
	Name    string `json:"name"`
	In      string `json:"in"`
	Example any    `json:"example"`
}

type docOp struct {
	Parameters []docParam                 `json:"parameters"`
	Responses  map[string]json.RawMessage `json:"responses"`
}

func loadDoc(t *testing.T, e *testEnv) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	resp, err := http.Get(e.ts.URL + "/api/v1/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	require.NoError(t, json.Unmarshal(body, &doc))
	var raw map[string]any
	require.NoError(t, json.Unmarshal(body, &raw))
	assert.Equal(t, "3.0.3", raw["openapi"])
	return doc
}

func (d openAPIDoc) resolve(p docParam) docParam {
	if p.Ref != "" {
		return d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
	}
	return p
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRoutes: documented paths+methods equal gin's routes,
// both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	for _, withUI := range []bool{true, false} {
		e := newEnv(t, func(d *Deps, _ *Config) {
			if !withUI {
				d.UI = nil
			}
		})
		doc := loadDoc(t, e)
		var documented, registered []string
		for p, ops := range doc.Paths {
			for m := range ops {
				documented = append(documented, strings.ToUpper(m)+" "+p)
			}
		}
		for _, r := range e.srv.Routes() {
			registered = append(registered, r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}"))
		}
		sort.Strings(documented)
		sort.Strings(registered)
		assert.Equal(t, registered, documented, "withUI=%v", withUI)
	}
}

func exampleString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	}
	return fmt.Sprint(v)
}

// TestOpenAPIParametersAccepted: every documented parameter, with its
// example value, is accepted (no 400); and every route refuses one that is
// not documented.
func TestOpenAPIParametersAccepted(t *testing.T) {
	e := newEnv(t, nil)
	doc := loadDoc(t, e)
	checked := 0
	for p, ops := range doc.Paths {
		for m, rawOp := range ops {
			if m != "get" {
				continue // POST/DELETE: silences in alerts_test.go, admin actions in admin_test.go
			}
			var op docOp
			require.NoError(t, json.Unmarshal(rawOp, &op))
			path := p
			var query []docParam
			for _, prm := range op.Parameters {
				prm = doc.resolve(prm)
				require.NotEmpty(t, prm.Name, "%s: unresolved parameter", p)
				require.NotNil(t, prm.Example, "%s %s: no example", p, prm.Name)
				switch prm.In {
				case "path":
					require.Contains(t, path, "{"+prm.Name+"}")
					path = strings.Replace(path, "{"+prm.Name+"}", url.PathEscape(exampleString(prm.Example)), 1)
				case "query":
					query = append(query, prm)
				default:
					t.Fatalf("%s: parameter %s in %s", p, prm.Name, prm.In)
				}
			}
			require.NotContains(t, path, "{", "%s: undocumented path parameter", p)
			for _, prm := range query {
				u := path + "?" + url.Values{prm.Name: {exampleString(prm.Example)}}.Encode()
				var er errorBody
				code := e.get(t, u, nil)
				if code == 400 {
					e.get(t, u, &er)
				}
				assert.NotEqual(t, 400, code, "%s refused documented parameter: %s", u, er.Error)
				checked++
			}
			if strings.HasPrefix(p, "/api/") {
				var er errorBody
				require.Equal(t, 400, e.get(t, path+"?undocumented=1", &er), path)
				assert.Equal(t, "undocumented", er.Parameter)
			}
		}
	}
	assert.GreaterOrEqual(t, checked, 9+4)
}

// TestOpenAPIResponsesMatchSchemas fetches every JSON route with data in
// every field and validates the body against the documented 200 schema
// (closed objects: no undocumented key, every required key present).
func TestOpenAPIResponsesMatchSchemas(t *testing.T) {
	e := newEnv(t, func(d *Deps, _ *Config) {
		d.Exporters = fakeExporters{{Protocol: "sflow", Address: "10.1.0.2:50000", Agent: "10.1.0.2", LastSeen: T, FirstSeen: T}}
		d.Health = func() map[string]any { return map[string]any{"collector": "ok"} }
	})
	doc := loadDoc(t, e)
	schemas := doc.Components.Schemas
	urls := [][2]string{
		{"/api/v1/pairs", "/api/v1/pairs?since=1m"},
		{"/api/v1/pairs/{src}/{dst}/series", "/api/v1/pairs/web-1/db-1/series"},
		{"/api/v1/pairs/{src}/{dst}/series", "/api/v1/pairs/db-1/web-1/series?step=40s&source=sflow"},
		{"/api/v1/vms", "/api/v1/vms"},
		{"/api/v1/vms/{name}", "/api/v1/vms/web-1?since=1m"},
		{"/api/v1/vms/{name}", "/api/v1/vms/db-1"},
		{"/api/v1/vms/{name}/series", "/api/v1/vms/web-1/series"},
		{"/api/v1/vms/{name}/series", "/api/v1/vms/db-1/series?step=1m&since=2m"},
		{"/api/v1/vms/{name}/series", "/api/v1/vms/clone/series"},
		{"/api/v1/inventory/sources", "/api/v1/inventory/sources"},
		{"/api/v1/exporters", "/api/v1/exporters"},
		{"/api/v1/health", "/api/v1/health"},
		{"/api/v1/alerts", "/api/v1/alerts"},
		{"/api/v1/alerts", "/api/v1/alerts?state=resolved"},
		{"/api/v1/alerts/rules", "/api/v1/alerts/rules"},
		{"/api/v1/silences", "/api/v1/silences"},
		// console aggregate routes
		{"/api/v1/overview", "/api/v1/overview?since=1m&group=protocol"},
		{"/api/v1/overview", "/api/v1/overview?since=1m"},
		{"/api/v1/graph", "/api/v1/graph?since=1m"},
		{"/api/v1/graph", "/api/v1/graph?since=1m&level=group&expand=hv1&top=2"},
		{"/api/v1/capacity", "/api/v1/capacity?since=1m&kind=pair"},
		{"/api/v1/capacity", "/api/v1/capacity?since=1m&capacity_bps=1000"},
		{"/api/v1/pairs/{src}/{dst}", "/api/v1/pairs/web-1/db-1?since=1m"},
		// VM and host resources (resources.go)
		{"/api/v1/vms/{name}/resources", "/api/v1/vms/web-1/resources"},
		{"/api/v1/vms/{name}/resources/series", "/api/v1/vms/web-1/resources/series?since=5m"},
		{"/api/v1/hosts", "/api/v1/hosts"},
	}
	jsonRoutes := map[string]bool{}
	for p, ops := range doc.Paths {
		if strings.HasPrefix(p, "/api/") && p != "/api/v1/openapi.json" && ops["get"] != nil {
			jsonRoutes[p] = true
		}
	}
	for _, pu := range urls {
		p, u := pu[0], pu[1]
		delete(jsonRoutes, p)
		var op docOp
		require.NoError(t, json.Unmarshal(doc.Paths[p]["get"], &op), p)
		var resp200 struct {
			Content map[string]struct{ Schema any } `json:"content"`
		}
		require.NoError(t, json.Unmarshal(op.Responses["200"], &resp200), p)
		schema := resp200.Content["application/json"].Schema
		require.NotNil(t, schema, p)
		var body any
		require.Equal(t, 200, e.get(t, u, &body), u)
		for _, err := range validate(schemas, schema, body, p) {
			t.Error(err)
		}
	}
	assert.Empty(t, jsonRoutes, "JSON routes whose 200 body is not validated")
	// Error bodies match Error.
	var body any
	require.Equal(t, 400, e.get(t, "/api/v1/pairs?limit=x", &body))
	for _, err := range validate(schemas, map[string]any{"$ref": "#/components/schemas/Error"}, body, "error") {
		t.Error(err)
	}
}

// validate is a small JSON Schema (OpenAPI 3.0 subset) checker.
func validate(schemas map[string]any, schema any, v any, at string) []error {
	s, _ := schema.(map[string]any)
	if ref, ok := s["$ref"].(string); ok {
		return validate(schemas, schemas[strings.TrimPrefix(ref, "#/components/schemas/")], v, at)
	}
	if v == nil {
		if s["nullable"] == true {
			return nil
		}
		return []error{fmt.Errorf("%s: null but not nullable", at)}
	}
	var errs []error
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range enum {
			found = found || x == v
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s: %v not in %v", at, v, enum))
		}
	}
	switch s["type"] {
	case "object":
		o, ok := v.(map[string]any)
		if !ok {
			return []error{fmt.Errorf("%s: want object, got %T", at, v)}
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := o[r]; !ok {
				errs = append(errs, fmt.Errorf("%s: required key %q missing", at, r))
			}
		}
		for k, x := range o {
			if ps, ok := props[k]; ok {
				errs = append(errs, validate(schemas, ps, x, at+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, fmt.Errorf("%s: undocumented key %q", at, k))
				}
			case map[string]any:
				errs = append(errs, validate(schemas, ap, x, at+"."+k)...)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return []error{fmt.Errorf("%s: want array, got %T", at, v)}
		}
		if n, ok := s["minItems"].(float64); ok && len(a) < int(n) {
			errs = append(errs, fmt.Errorf("%s: %d items < %v", at, len(a), n))
		}
		if n, ok := s["maxItems"].(float64); ok && len(a) > int(n) {
			errs = append(errs, fmt.Errorf("%s: %d items > %v", at, len(a), n))
		}
		for i, x := range a {
			errs = append(errs, validate(schemas, s["items"], x, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return append(errs, fmt.Errorf("%s: want string, got %T", at, v))
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				errs = append(errs, fmt.Errorf("%s: not date-time: %q", at, str))
			}
		}
	case "number":
		if _, ok := v.(float64); !ok {
			errs = append(errs, fmt.Errorf("%s: want number, got %T", at, v))
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			errs = append(errs, fmt.Errorf("%s: want integer, got %v", at, v))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			errs = append(errs, fmt.Errorf("%s: want boolean, got %T", at, v))
		}
	case nil:
	default:
		errs = append(errs, fmt.Errorf("%s: schema type %v unsupported by the test", at, s["type"]))
	}
	return errs
}

func asStrings(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func TestValidatorCatchesDrift(t *testing.T) {
	schemas := map[string]any{"X": map[string]any{"type": "object", "additionalProperties": false,
		"properties": map[string]any{"a": map[string]any{"type": "integer"}}, "required": []any{"a"}}}
	ref := map[string]any{"$ref": "#/components/schemas/X"}
	assert.Empty(t, validate(schemas, ref, map[string]any{"a": 1.0}, "x"))
	assert.Len(t, validate(schemas, ref, map[string]any{"a": 1.5}, "x"), 1)
	assert.Len(t, validate(schemas, ref, map[string]any{"a": 1.0, "b": 2.0}, "x"), 1)
	assert.Len(t, validate(schemas, ref, map[string]any{}, "x"), 1)
}
