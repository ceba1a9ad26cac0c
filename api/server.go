// Package api serves vmflow's REST API (gin), Prometheus metrics, the
// OpenAPI document and the embedded web UI.
package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// Inventory is what the API needs of the enricher.
type Inventory interface {
	Index() *enrich.Index
	Sources() []enrich.SourceStatus
}

// Exporters is what the API needs of the collector.
type Exporters interface {
	Exporters() []collector.ExporterStatus
}

// Recent is the in-memory store's coverage (store.Memory).
type Recent interface {
	Oldest() time.Time
}

// Deps are the API's collaborators. Only Store is required for the pair
// routes; a nil Inventory or Exporters yields empty lists.
type Deps struct {
	Store  store.Reader // windows (store.Memory or store.Tiered)
	Recent Recent       // optional: memory coverage, reported in health
	// WindowSize is the aggregation window (aggregate.window): the default
	// and smallest ?step= of the series routes, which must be a multiple of
	// it. 0: learnt from the windows of each request.
	WindowSize time.Duration
	Inventory  Inventory
	Exporters  Exporters
	// Gatherer is served at /metrics (nil: an empty registry).
	Gatherer prometheus.Gatherer
	// Registerer receives the API's own metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Health adds keys to /api/v1/health; a "status" key overrides the
	// status ("ok" or "degraded").
	Health func() map[string]any
	// Reload re-reads and applies the configuration
	// (POST /api/v1/admin/reload); nil: the route answers 503.
	Reload func(context.Context) ReloadResult
	// UI, when set, is served at / (index.html) and /assets/*.
	UI fs.FS
	// Logger for serve errors (nil: slog.Default()).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now); tests pin it.
	Now func() time.Time
	// Alerts serves /api/v1/alerts and /api/v1/silences (nil: 503).
	Alerts Alerts
	// Access: extra authenticators (OIDC) and the audit writer (access.go).
	Access AccessDeps
	// Local is this collector's own windows (its memory store), served to
	// query nodes at /peer/v1/windows (nil: 404, e.g. on a query node).
	Local store.Reader
	// Resources serves VM and host resources (api/resources.go; nil:
	// no figures, /hosts empty).
	Resources Resources
}

// Server is the HTTP API. New is inert; Start listens.
type Server struct {
	cfg     Config
	deps    Deps
	engine  *gin.Engine
	started time.Time
	openapi []byte
	access  *access // access control (access.go); nil on tenant views
	docMu   sync.Mutex
	docs    map[string][]byte // OpenAPI document per role and scope (openapiFor)

	mRequests *prometheus.CounterVec
	mLatency  *prometheus.HistogramVec

	mu       sync.Mutex
	ln       net.Listener
	srv      *http.Server
	stopOnce sync.Once
	done     chan struct{}
}

// New builds the server and its routes; it starts nothing.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api config: %w", err)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Gatherer == nil {
		deps.Gatherer = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:     cfg,
		deps:    deps,
		started: deps.Now(),
		done:    make(chan struct{}),
		mRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmflow_api_requests_total",
			Help: "HTTP requests served, by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		mLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vmflow_api_request_duration_seconds",
			Help:    "HTTP request handling time, by route template and method.",
			Buckets: []float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"route", "method"}),
	}
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(s.mRequests); err != nil {
			return nil, fmt.Errorf("api metrics: %w", err)
		}
		if err := deps.Registerer.Register(s.mLatency); err != nil {
			return nil, fmt.Errorf("api metrics: %w", err)
		}
	}
	doc, err := buildOpenAPI(deps.UI != nil)
	if err != nil {
		return nil, fmt.Errorf("api openapi: %w", err)
	}
	s.openapi = doc

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.Use(s.instrument, gin.CustomRecovery(func(c *gin.Context, rec any) {
		s.deps.Logger.Error("api handler panic", "path", c.Request.URL.Path, "panic", rec)
		c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{Error: "internal error"})
	}))
	if err := s.installAccess(e); err != nil { // authentication, route policies, tenant views, limits, audit
		return nil, err
	}
	e.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, errorBody{Error: "not found: " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, errorBody{Error: "method " + c.Request.Method + " not allowed on " + c.Request.URL.Path})
	})

	v1 := e.Group("/api/v1")
	v1.GET("/pairs", s.handlePairs)
	v1.GET("/pairs/:src/:dst/series", s.handleSeries)
	v1.GET("/vms", s.handleVMs)
	v1.GET("/vms/:name/series", s.handleVMSeries)
	v1.GET("/vms/:name", s.handleVM) // ports.go
	v1.GET("/inventory/sources", s.handleSources)
	v1.GET("/exporters", s.handleExporters)
	v1.GET("/health", s.handleHealth)
	v1.GET("/openapi.json", s.handleOpenAPI)
	s.registerAlertRoutes(v1)
	s.registerResourceRoutes(v1) // resources.go
	s.registerAdmin(v1)
	// Console aggregate routes (overview.go, graph.go, capacity.go, pair.go).
	v1.GET("/overview", s.handleOverview)
	v1.GET("/graph", s.handleGraph)
	v1.GET("/capacity", s.handleCapacity)
	v1.GET("/pairs/:src/:dst", s.handlePair)
	e.GET("/peer/v1/windows", s.handlePeerWindows) // to query nodes (peer.go)
	metrics := promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	e.GET("/metrics", gin.WrapH(metrics))
	if deps.UI != nil {
		files := http.FileServer(http.FS(deps.UI))
		e.GET("/", func(c *gin.Context) {
			uiHeaders(c)
			http.ServeFileFS(c.Writer, c.Request, deps.UI, "index.html")
		})
		e.GET("/assets/*filepath", func(c *gin.Context) {
			uiHeaders(c)
			files.ServeHTTP(c.Writer, c.Request)
		})
	}
	s.engine = e
	return s, nil
}

// uiHeaders forbids the UI from loading anything from elsewhere.
func uiHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
}

// instrument counts requests by route template (never the raw path, to
// keep label cardinality bounded).
func (s *Server) instrument(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	s.mRequests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
	s.mLatency.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
}

// Handler returns the HTTP handler (for httptest or embedding).
func (s *Server) Handler() http.Handler { return s.engine }

// Routes lists the registered routes as "METHOD path" with gin's :param
// syntax (used by the OpenAPI test).
func (s *Server) Routes() gin.RoutesInfo { return s.engine.Routes() }

// Start listens on cfg.Listen and serves in the background. It returns an
// error if it cannot bind. Cancelling ctx stops the server.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("api: already started")
	}
	ln, err := s.listen() // TCP, or TLS when api.tls is set (access_tls.go)
	if err != nil {
		return fmt.Errorf("api listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.engine,
		ReadTimeout:       s.cfg.ReadTimeout,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.deps.Logger.Handler(), slog.LevelWarn), // TLS handshake errors and the like
	}
	srv := s.srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.deps.Logger.Error("api serve", "addr", ln.Addr().String(), "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-s.done:
		}
	}()
	return nil
}

// Stop shuts the server down, letting in-flight requests finish for up to
// five seconds. Safe to call more than once, and before Start.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		srv := s.srv
		s.mu.Unlock()
		if srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	})
}

// Addr is the bound address once started (nil before).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

type errorBody struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

func (s *Server) handleOpenAPI(c *gin.Context) {
	if err := noQuery(c); err != nil {
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", s.openapiFor(c))
}
