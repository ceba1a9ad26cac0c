package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/alert"
	"github.com/vmflow/vmflow/api/auth"
)

// Alerts is what the API needs of the alert engine (alert.Engine).
type Alerts interface {
	Alerts(f alert.AlertFilter) []alert.AlertView
	Rules() alert.RulesStatus
	Silences() []alert.Silence
	AddSilence(s alert.Silence) (alert.Silence, error)
	DeleteSilence(id string) error
}

// registerAlertRoutes adds the alert and silence routes.
func (s *Server) registerAlertRoutes(v1 *gin.RouterGroup) {
	v1.GET("/alerts", s.handleAlerts)
	v1.GET("/alerts/rules", s.handleAlertRules)
	v1.GET("/silences", s.handleSilences)
	v1.POST("/silences", s.handlePostSilence)
	v1.DELETE("/silences/:id", s.handleDeleteSilence)
}

func (s *Server) alertsOr503(c *gin.Context) bool {
	if s.deps.Alerts == nil {
		c.JSON(http.StatusServiceUnavailable, errorBody{Error: "alerting is disabled (alert.enabled=false)"})
		return false
	}
	return true
}

func (s *Server) handleAlerts(c *gin.Context) {
	q := newQuery(c)
	var f alert.AlertFilter
	var err error
	get := func(name string) string {
		v, _, e := q.get(name)
		if e != nil && err == nil {
			err = e
		}
		return v
	}
	f.State, f.Severity, f.Tenant, f.VM = get("state"), get("severity"), get("tenant"), get("vm")
	if err == nil {
		err = q.finish()
	}
	if err == nil {
		switch f.State {
		case "", alert.StatePending, alert.StateFiring, alert.StateResolved:
		default:
			err = badParam("state", "must be pending, firing or resolved, got %q", f.State)
		}
	}
	if err == nil && f.Severity != "" {
		if len(f.Severity) != 2 || strings.ToUpper(f.Severity[:1]) != "P" || f.Severity[1] < '0' || f.Severity[1] > '4' {
			err = badParam("severity", "must be P0..P4, got %q", f.Severity)
		}
	}
	if err != nil {
		writeError(c, err)
		return
	}
	if !s.alertsOr503(c) {
		return
	}
	c.JSON(http.StatusOK, gin.H{"alerts": s.deps.Alerts.Alerts(f)})
}

func (s *Server) handleAlertRules(c *gin.Context) {
	if noQuery(c) != nil || !s.alertsOr503(c) {
		return
	}
	c.JSON(http.StatusOK, s.deps.Alerts.Rules())
}

func (s *Server) handleSilences(c *gin.Context) {
	if noQuery(c) != nil || !s.alertsOr503(c) {
		return
	}
	c.JSON(http.StatusOK, gin.H{"silences": s.deps.Alerts.Silences()})
}

func (s *Server) handlePostSilence(c *gin.Context) {
	if noQuery(c) != nil || !s.alertsOr503(c) {
		return
	}
	var in alert.Silence
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		c.JSON(http.StatusBadRequest, errorBody{Error: "silence body: " + err.Error()})
		return
	}
	in.State = ""
	if id := auth.FromContext(c.Request.Context()); id != nil {
		in.CreatedBy = id.Name // who, as authenticated (access.go), not as claimed
	}
	out, err := s.deps.Alerts.AddSilence(in)
	if errors.Is(err, alert.ErrNoSilence) {
		c.JSON(http.StatusNotFound, errorBody{Error: err.Error()})
		return
	}
	if err != nil {
		c.JSON(http.StatusBadRequest, errorBody{Error: "silence: " + err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"silence": out})
}

func (s *Server) handleDeleteSilence(c *gin.Context) {
	if noQuery(c) != nil || !s.alertsOr503(c) {
		return
	}
	id := c.Param("id")
	if err := s.deps.Alerts.DeleteSilence(id); err != nil {
		if errors.Is(err, alert.ErrNoSilence) {
			c.JSON(http.StatusNotFound, errorBody{Error: err.Error()})
			return
		}
		c.JSON(http.StatusInternalServerError, errorBody{Error: err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": id, "state": "expired"})
}
