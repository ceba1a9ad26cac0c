// Package web embeds vmflow's static web UI: plain HTML, CSS and
// JavaScript, no build step and no external resources. The API serves it
// at / and /assets/ (api.Deps.UI).
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the UI files: index.html and assets/*.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // cannot happen: "static" is embedded above
	}
	return sub
}
