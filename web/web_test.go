package web_test

import (
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/collector"
	"github.com/vmflow/vmflow/web"
)

func TestFSHasNoExternalReferences(t *testing.T) {
	ui := web.FS()
	var files []string
	require.NoError(t, fs.WalkDir(ui, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, p)
		b, err := fs.ReadFile(ui, p)
		if err != nil {
			return err
		}
		s := string(b)
		if strings.HasPrefix(p, "assets/vendor/") {
			// Vendored libraries name their licence and XML namespaces by
			// URL; what they load is checked in the browser (checkOrigin).
			return nil
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "fonts.googleapis"} {
			assert.NotContains(t, s, bad, "%s must not load anything from elsewhere", p)
		}
		if strings.HasSuffix(p, ".html") {
			for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(s, -1) {
				assert.Contains(t, tag, "src=", "%s: no inline script (CSP): %s", p, tag)
			}
			assert.NotRegexp(t, `\son[a-z]+\s*=`, s, "%s: no inline event handler (CSP)", p)
			assert.NotContains(t, s, "style=", "%s: no inline style (CSP)", p)
		}
		return nil
	}))
	assert.Contains(t, files, "index.html")
	assert.Contains(t, files, "assets/app.js")
	for _, lic := range []string{"assets/vendor/echarts-6.1.0/LICENSE", "assets/vendor/echarts-6.1.0/NOTICE", "assets/vendor/echarts-6.1.0/echarts.esm.min.js"} {
		assert.Contains(t, files, lic, "vendored library with its licence")
	}
}

type exporters []collector.ExporterStatus

func (e exporters) Exporters() []collector.ExporterStatus { return e }

func chromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("VMFLOW_INTEGRATION") == "1" {
		t.Fatal("chromium not found (apt-get install -y chromium); required under VMFLOW_INTEGRATION=1")
	}
	t.Skip("chromium not found; set VMFLOW_INTEGRATION=1 to make this a failure")
	return ""
}
