package api

import (
	"github.com/vmflow/vmflow/alert"
	"github.com/vmflow/vmflow/api/auth"
)

// policy is a route's access rule. Every route the server registers must
// have one (routePolicies; TestEveryRouteHasAPolicy checks the table
// against the router and the OpenAPI document): a route without one
// answers 403 to everybody — access control fails closed.
type policy struct {
	// role is the least role that may call the route; "" makes the route
	// public (no identity needed: the login routes only).
	role auth.Role
	// tenant lets tenant-scoped identities call the route. They are served
	// by a server whose collaborators (store, inventory, alerts) only
	// ever return what the tenant may see (access_tenant.go); routes about
	// the installation (exporters, inventory sources, rules, silences,
	// metrics, admin) are refused to them.
	tenant bool
	// changes, for a route that changes state, snapshots the state it
	// changes; the audit log records what differs before and after.
	changes func(s *Server) (object string, state any)
}

var (
	viewerAll    = policy{role: auth.RoleViewer, tenant: true}
	viewerGlobal = policy{role: auth.RoleViewer}
	public       = policy{}
)

// routePolicies is keyed "METHOD /path" in the router's syntax. Add a row
// with every route.
var routePolicies = map[string]policy{
	"GET /api/v1/pairs":                      viewerAll,
	"GET /api/v1/pairs/:src/:dst":            viewerAll,
	"GET /api/v1/pairs/:src/:dst/series":     viewerAll,
	"GET /api/v1/vms":                        viewerAll,
	"GET /api/v1/vms/:name":                  viewerAll,
	"GET /api/v1/vms/:name/series":           viewerAll,
	"GET /api/v1/vms/:name/resources":        viewerAll,
	"GET /api/v1/vms/:name/resources/series": viewerAll,
	"GET /api/v1/hosts":                      viewerGlobal, // hypervisors and sums over every tenant's VMs
	"GET /api/v1/overview":                   viewerAll,
	"GET /api/v1/graph":                      viewerAll,
	"GET /api/v1/capacity":                   viewerAll,
	"GET /api/v1/alerts":                     viewerAll,
	"GET /api/v1/health":                     viewerAll,
	"GET /api/v1/openapi.json":               viewerAll,
	"GET /api/v1/inventory/sources":          viewerGlobal,
	"GET /api/v1/exporters":                  viewerGlobal,
	"GET /api/v1/alerts/rules":               viewerGlobal,
	"GET /api/v1/silences":                   viewerGlobal,
	"POST /api/v1/silences":                  {role: auth.RoleOperator, changes: silencesState},
	"DELETE /api/v1/silences/:id":            {role: auth.RoleOperator, changes: silencesState},
	"POST /api/v1/admin/reload":              {role: auth.RoleAdmin, changes: rulesState},
	"GET /metrics":                           viewerGlobal,
	"GET /peer/v1/windows":                   viewerGlobal, // query nodes (query.token_file), unmasked: never tenants
	"GET /":                                  viewerAll,
	"GET /assets/*filepath":                  viewerAll,
	"GET /login":                             public,
	"POST /login":                            public,
	"POST /logout":                           public,
}

func silencesState(s *Server) (string, any) {
	if s.deps.Alerts == nil {
		return "silences", nil
	}
	return "silences", s.deps.Alerts.Silences()
}

func rulesState(s *Server) (string, any) {
	if s.deps.Alerts == nil {
		return "rules", nil
	}
	type rule struct {
		Name string         `json:"name"`
		Spec alert.RuleSpec `json:"spec"`
	}
	var out []rule
	for _, r := range s.deps.Alerts.Rules().Rules {
		out = append(out, rule{r.Name, r.Spec})
	}
	return "rules", out
}

// RouteAccess is the declared policy of a route ("METHOD", path in the
// router's syntax, e.g. /api/v1/vms/:name/series): the least role ("" for
// a public route), whether tenant-scoped identities may call it, and
// whether the route has a policy at all.
func RouteAccess(method, route string) (role auth.Role, tenant, ok bool) {
	p, ok := routePolicies[method+" "+route]
	return p.role, p.tenant, ok
}

// RouteOf turns an OpenAPI path into the router's syntax.
func RouteOf(openapiPath string) string { return ginPath(openapiPath) }
