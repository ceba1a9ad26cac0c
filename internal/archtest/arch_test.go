// Package archtest checks the architecture rules of DEVELOPERS.md on the
// real source: data flows one way (collector -> decoder -> enrich ->
// aggregate -> store -> api -> web), imports point only upstream of the
// importing stage, and gin, goflow2 and viper stay in their own packages.
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/vmflow/vmflow/"

// stage of each top-level component in the data flow.
var stage = map[string]int{
	"collector": 0, "decoder": 1, "enrich": 2, "aggregate": 3,
	"store": 4, "alert": 4, "api": 5, "web": 6,
}

// libraries that must stay inside one component (prefix of the import path).
var confined = map[string]string{
	"github.com/gin-gonic/gin":         "api",
	"github.com/netsampler/goflow2":    "decoder",
	"github.com/spf13/viper":           "cmd",
	"github.com/go-viper/mapstructure": "cmd",
}

func TestImportsPointUpstream(t *testing.T) {
	root := "../.."
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path == root {
				return nil
			} else if n == "testdata" || strings.HasPrefix(n, ".") || n == "bin" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		top := strings.SplitN(rel, "/", 2)[0]
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, is := range f.Imports {
			imp, _ := strconv.Unquote(is.Path.Value)
			for lib, home := range confined {
				if strings.HasPrefix(imp, lib) && top != home {
					t.Errorf("%s imports %s, which belongs in %s/ only", rel, imp, home)
				}
			}
			if !strings.HasPrefix(imp, module) {
				continue
			}
			target := strings.SplitN(strings.TrimPrefix(imp, module), "/", 2)[0]
			if strings.HasPrefix(imp, module+"internal/testenv") && !strings.HasPrefix(rel, "internal/testenv/") {
				t.Errorf("%s imports the test environment %s", rel, imp)
			}
			from, okFrom := stage[top]
			to, okTo := stage[target]
			if target == "cmd" && top != "cmd" {
				t.Errorf("%s imports %s: cmd/ only wires components", rel, imp)
			}
			if okFrom && okTo && to > from {
				t.Errorf("%s (stage %s) imports %s, downstream of it", rel, top, imp)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d source files found: wrong root?", checked)
	}
}
