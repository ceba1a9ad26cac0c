package api

import (
	"bytes"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/store/peer"
)

// handlePeerWindows serves this collector's own closed windows (Deps.Local,
// its memory store) to a query node (store/peer): ?from=&to= (RFC 3339 or
// unix seconds; windows ending in (from, to]), in store/peer's binary form. 404 when this
// vmflow has no local store (a query node itself).
func (s *Server) handlePeerWindows(c *gin.Context) {
	q := newQuery(c)
	from, to, err := q.timeRange(s.deps.Now(), time.Minute)
	if err == nil {
		err = q.finish()
	}
	if err != nil {
		writeError(c, err)
		return
	}
	if s.deps.Local == nil {
		c.JSON(http.StatusNotFound, errorBody{Error: "this vmflow aggregates no windows of its own (query node)"})
		return
	}
	ws, err := s.deps.Local.Windows(c.Request.Context(), from, to)
	if err != nil {
		writeError(c, err)
		return
	}
	var buf bytes.Buffer
	if err := peer.EncodeWindows(&buf, ws); err != nil {
		writeError(c, err)
		return
	}
	c.Data(http.StatusOK, peer.ContentType, buf.Bytes())
}
