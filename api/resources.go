package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/enrich"
)

// Resources is what the API reads of the VM resource tracker
// (enrich.ResourceTracker: libvirt stats polls, hsflowd records).
type Resources interface {
	Find(uuid, name, host string) (enrich.VMResources, bool)
	Series(key string, from, to time.Time) []enrich.ResourcePoint
	Hosts() []enrich.HostResources
}

// vmResourcesOut is a VM's resources now: the latest figures of the
// source chosen for it, and how old they are.
type vmResourcesOut struct {
	VM         string  `json:"vm"`
	AgeSeconds float64 `json:"age_seconds"`
	enrich.VMResources
}

type vmResourceSeriesOut struct {
	VM     string                 `json:"vm"`
	From   time.Time              `json:"from"`
	To     time.Time              `json:"to"`
	Points []enrich.ResourcePoint `json:"points"`
}

type hostsOut struct {
	Hosts []enrich.HostResources `json:"hosts"`
}

func (s *Server) registerResourceRoutes(v1 *gin.RouterGroup) {
	v1.GET("/vms/:name/resources", s.handleVMResources)
	v1.GET("/vms/:name/resources/series", s.handleVMResourceSeries)
	v1.GET("/hosts", s.handleHosts)
}

// findResources resolves a VM token (name or UUID) through the inventory
// when it knows the VM, else directly in the tracker.
func (s *Server) findResources(tok string) (name string, r enrich.VMResources, ok bool) {
	if s.deps.Resources == nil {
		return tok, r, false
	}
	if vm := s.inventoryVM(tok); vm != nil {
		r, ok = s.deps.Resources.Find(strings.ToLower(vm.UUID), vm.Name, vm.Host)
		return vm.Name, r, ok
	}
	r, ok = s.deps.Resources.Find(strings.ToLower(tok), tok, "")
	if ok && r.Name != "" {
		tok = r.Name
	}
	return tok, r, ok
}

// vmResourcesNow is a VM's resources now (nil without figures): the body
// of /vms/{name}/resources, and the `resources` object for GET
// /api/v1/vms/{name} (ports.go's handleVM, merged from another branch).
func (s *Server) vmResourcesNow(tok string) *vmResourcesOut {
	name, r, ok := s.findResources(tok)
	if !ok {
		return nil
	}
	return &vmResourcesOut{VM: name, AgeSeconds: s.deps.Now().Sub(r.Time).Seconds(), VMResources: r}
}

func (s *Server) handleVMResources(c *gin.Context) {
	if noQuery(c) != nil {
		return
	}
	out := s.vmResourcesNow(c.Param("name"))
	if out == nil {
		c.JSON(http.StatusNotFound, errorBody{Error: "no resource figures for VM " + c.Param("name") +
			" (not polled by libvirt, no hsflowd records, or stats off)"})
		return
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) handleVMResourceSeries(c *gin.Context) {
	q := newQuery(c)
	from, to, err := q.timeRange(s.deps.Now(), time.Hour)
	if err == nil {
		err = q.finish()
	}
	if err != nil {
		writeError(c, err)
		return
	}
	name, r, ok := s.findResources(c.Param("name"))
	if !ok {
		c.JSON(http.StatusNotFound, errorBody{Error: "no resource figures for VM " + c.Param("name")})
		return
	}
	out := vmResourceSeriesOut{VM: name, From: from, To: to, Points: s.deps.Resources.Series(r.Key, from, to)}
	if out.Points == nil {
		out.Points = []enrich.ResourcePoint{}
	}
	c.JSON(http.StatusOK, out)
}

// resourceSeries is the resource points of a VM for the traffic series
// (GET /vms/{name}/series); nil without figures.
func (s *Server) resourceSeries(tok string, from, to time.Time) []enrich.ResourcePoint {
	_, r, ok := s.findResources(tok)
	if !ok {
		return nil
	}
	return s.deps.Resources.Series(r.Key, from, to)
}

func (s *Server) handleHosts(c *gin.Context) {
	if noQuery(c) != nil {
		return
	}
	out := hostsOut{Hosts: []enrich.HostResources{}}
	if s.deps.Resources != nil {
		out.Hosts = append(out.Hosts, s.deps.Resources.Hosts()...)
	}
	c.JSON(http.StatusOK, out)
}
