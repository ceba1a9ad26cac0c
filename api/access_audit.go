package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vmflow/vmflow/api/auth"
)

// auditLog writes one JSON object per line: every request that reached
// access control (kind "request") and every change (kind "change", with
// what was removed and added).
type auditLog struct {
	mu sync.Mutex
	w  io.Writer // nil: off
}

func newAuditLog(cfg AuditConfig, w io.Writer) (*auditLog, error) {
	l := &auditLog{w: w}
	if w != nil {
		return l, nil
	}
	switch cfg.File {
	case "":
	case "-":
		l.w = os.Stdout
	default:
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		l.w = f // kept open for the process's life (appends survive rotation by copytruncate)
	}
	return l, nil
}

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	Time    time.Time           `json:"time"`
	Kind    string              `json:"kind"` // request, change
	Who     string              `json:"who,omitempty"`
	Method  string              `json:"auth,omitempty"` // how it authenticated
	Role    auth.Role           `json:"role,omitempty"`
	Tenants []string            `json:"tenants,omitempty"`
	Remote  string              `json:"remote,omitempty"`
	Verb    string              `json:"method,omitempty"`
	Route   string              `json:"route,omitempty"`
	Path    string              `json:"path,omitempty"`
	Params  map[string][]string `json:"params,omitempty"`
	Status  int                 `json:"status,omitempty"`
	Millis  float64             `json:"duration_ms,omitempty"`
	// Changes: the object changed and its elements before and after that
	// differ (removed: only before; added: only after).
	Object  string            `json:"object,omitempty"`
	Removed []json.RawMessage `json:"removed,omitempty"`
	Added   []json.RawMessage `json:"added,omitempty"`
}

func (l *auditLog) write(rec *AuditRecord) {
	if l == nil || l.w == nil {
		return
	}
	b, err := json.Marshal(rec)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"kind":"audit_error","error":%q}`, err.Error()))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(append(b, '\n'))
}

func (l *auditLog) base(c *gin.Context, id *auth.Identity, kind string) *AuditRecord {
	rec := &AuditRecord{Time: time.Now().UTC(), Kind: kind}
	if id != nil {
		rec.Who, rec.Method, rec.Role, rec.Tenants = id.Name, id.Method, id.Role, id.Tenants
	}
	if c != nil {
		r := c.Request
		rec.Remote, rec.Verb, rec.Route, rec.Path = clientHost(r), r.Method, c.FullPath(), r.URL.Path
		if q := r.URL.Query(); len(q) > 0 {
			rec.Params = q
		}
	}
	return rec
}

// record logs a request once it is answered.
func (a *access) record(c *gin.Context, id *auth.Identity, start time.Time) {
	rec := a.audit.base(c, id, "request")
	rec.Status = c.Writer.Status()
	rec.Millis = float64(time.Since(start).Microseconds()) / 1000
	a.audit.write(rec)
}

// change logs what differs between before and after (each a list, or one
// value). c and id may be nil (a token file reload).
func (l *auditLog) change(c *gin.Context, id *auth.Identity, object string, before, after any) {
	if l == nil || l.w == nil {
		return
	}
	rec := l.base(c, id, "change")
	rec.Object = object
	b, a := elements(before), elements(after)
	rec.Removed, rec.Added = minus(b, a), minus(a, b)
	if len(rec.Removed) == 0 && len(rec.Added) == 0 {
		return
	}
	l.write(rec)
}

// elements marshals v's elements (v itself when it is no list).
func elements(v any) []json.RawMessage {
	if v == nil {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	return []json.RawMessage{raw}
}

// minus is a without the elements of b (by their JSON).
func minus(a, b []json.RawMessage) []json.RawMessage {
	in := map[string]bool{}
	for _, x := range b {
		in[string(x)] = true
	}
	var out []json.RawMessage
	for _, x := range a {
		if !in[string(x)] {
			out = append(out, x)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return string(out[i]) < string(out[j]) })
	return out
}
