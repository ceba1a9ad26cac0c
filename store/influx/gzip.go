package influx

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"sync"
)

// gzipTransport compresses write requests with gzip at BestSpeed. The
// client library's own gzip option uses the default level, which costs
// about three times the CPU for a few percent smaller requests; line
// protocol compresses about 8:1 either way.
type gzipTransport struct {
	base http.RoundTripper
}

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

func (g gzipTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.Body == nil || !strings.HasSuffix(req.URL.Path, "/write") ||
		req.Header.Get("Content-Encoding") != "" {
		return g.base.RoundTrip(req)
	}
	var buf bytes.Buffer
	if req.ContentLength > 0 {
		buf.Grow(int(req.ContentLength / 6))
	}
	zw := gzipPool.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, err := io.Copy(zw, req.Body)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	gzipPool.Put(zw)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	data := buf.Bytes() // not pooled: the transport may still read it after RoundTrip returns
	r2 := req.Clone(req.Context())
	r2.Body = io.NopCloser(bytes.NewReader(data))
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	r2.ContentLength = int64(len(data))
	r2.Header.Set("Content-Encoding", "gzip")
	return g.base.RoundTrip(r2)
}
