package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoInlineScriptOrStyle: the UI works under the API's strict
// Content-Security-Policy (script-src 'self'; style-src 'self'): no inline
// <script> or <style>, no style= attributes or on*= handlers in its HTML,
// no javascript: URLs, and no eval in its own scripts.
func TestNoInlineScriptOrStyle(t *testing.T) {
	inline := regexp.MustCompile(`(?is)<style|\sstyle\s*=|\son[a-z]+\s*=|javascript:`)
	scriptTag := regexp.MustCompile(`(?is)<script(\s[^>]*)?>(.*?)</script>`)
	evalLike := regexp.MustCompile(`\beval\(|new Function\(`)
	html, js := 0, 0
	require.NoError(t, fs.WalkDir(FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(FS(), path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(path, ".html"):
			html++
			assert.Empty(t, inline.FindAllString(string(data), -1), "%s: inline style or handler", path)
			for _, m := range scriptTag.FindAllStringSubmatch(string(data), -1) {
				assert.Contains(t, m[1], "src=", "%s: inline script", path)
				assert.Empty(t, strings.TrimSpace(m[2]), "%s: inline script", path)
			}
		case strings.HasSuffix(path, ".js") && !strings.HasPrefix(path, "assets/vendor/"):
			js++
			assert.Empty(t, evalLike.FindAllString(string(data), -1), "%s: eval needs 'unsafe-eval'", path)
		}
		return nil
	}))
	assert.Positive(t, html)
	assert.Positive(t, js)
}
