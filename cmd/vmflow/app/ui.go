package app

import "io/fs"

// uiFS is the embedded web UI (nil until web/ exists).
func uiFS() fs.FS { return nil }
