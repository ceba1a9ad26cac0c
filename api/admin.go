package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// ReloadResult is the outcome of a configuration reload (SIGHUP or
// POST /api/v1/admin/reload).
type ReloadResult struct {
	OK   bool      `json:"ok"`
	At   time.Time `json:"at"`
	File string    `json:"file"`
	// Applied lists the keys whose new value is in effect.
	Applied []string `json:"applied"`
	// RestartRequired lists the keys whose value in the file differs from
	// the running one and takes effect only after a restart.
	RestartRequired []string `json:"restart_required"`
	// Error is why the reload (or part of it) failed: the running
	// configuration is kept (for the failed part).
	Error string `json:"error,omitempty"`
}

// registerAdmin adds the admin routes. (An access-control issue will
// restrict /api/v1/admin/* to administrators.)
func (s *Server) registerAdmin(v1 *gin.RouterGroup) {
	v1.POST("/admin/reload", s.handleReload)
}

func (s *Server) handleReload(c *gin.Context) {
	if noQuery(c) != nil {
		return
	}
	if s.deps.Reload == nil {
		c.JSON(http.StatusServiceUnavailable, errorBody{Error: "reload is not available"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), time.Minute)
	defer cancel()
	res := s.deps.Reload(ctx)
	code := http.StatusOK
	if !res.OK {
		code = http.StatusUnprocessableEntity
	}
	c.JSON(code, res)
}

// adminPaths documents the admin routes in the OpenAPI document.
func adminPaths(paths obj) obj {
	paths["/api/v1/admin/reload"] = obj{"post": obj{
		"operationId": "reload",
		"summary":     "Re-read the configuration file and apply what can change live (same as SIGHUP)",
		"description": "Keys that can change live are applied; keys that need a restart are listed in `restart_required`. " +
			"An invalid file changes nothing: the running configuration is kept, `error` says why (also in /api/v1/health, `config`).",
		"responses": obj{
			"200": jsonResp("reloaded", "ReloadResult"),
			"400": errResp("a query parameter was given; this route takes none"),
			"422": jsonResp("the new configuration is invalid (or part of it could not be applied); the running one is kept", "ReloadResult"),
			"503": errResp("reload is not available (vmflow was not started from a config file loader)"),
		},
	}}
	return object("Outcome of a configuration reload.", obj{
		"ok":               boolean("true when every change was applied or reported as needing a restart"),
		"at":               dateTime("when the reload ran"),
		"file":             str("the configuration file read"),
		"applied":          obj{"type": "array", "items": obj{"type": "string"}, "nullable": true, "description": "keys whose new value is in effect"},
		"restart_required": obj{"type": "array", "items": obj{"type": "string"}, "nullable": true, "description": "keys that differ from the running value and need a restart"},
		"error":            str("why the reload failed; the running configuration is kept"),
	}, "ok", "at", "file", "applied", "restart_required")
}
