package enrich

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrStaticToggled: a reload cannot add or remove the static inventory
// source (enrich.static.file from or to ""); that needs a restart.
var ErrStaticToggled = errors.New("enrich.static.file: switching the static inventory on or off needs a restart")

// Retarget switches a started static source to another file and/or check
// interval (a configuration reload). The new file is loaded and validated
// first: when it is missing or invalid, nothing changes and the error is
// returned.
func (s *StaticSource) Retarget(path string, reload time.Duration) error {
	if s.publish == nil {
		return errors.New("static inventory: not started")
	}
	snap, err := LoadInventory(path)
	if err != nil {
		return err
	}
	fi, statErr := os.Stat(path)
	s.Stop()
	s.path, s.reload = path, reload
	s.mu.Lock()
	if statErr == nil {
		s.modTime, s.size = fi.ModTime(), fi.Size()
	}
	s.status.URI = path
	s.mu.Unlock()
	s.loaded(snap, s.publish)
	s.watch()
	return nil
}

// SetStatic applies a new enrich.static section to a running Enricher: the
// static source follows the new file and interval, and the index is
// rebuilt from it before SetStatic returns. An invalid file changes
// nothing.
func (e *Enricher) SetStatic(c StaticConfig) error {
	var st *StaticSource
	for _, s := range e.sources {
		if x, ok := s.(*StaticSource); ok {
			st = x
		}
	}
	if (st == nil) != (c.File == "") {
		return ErrStaticToggled
	}
	if st == nil {
		return nil
	}
	if c.Reload < 0 || (c.Reload > 0 && c.Reload < 100*time.Millisecond) {
		return fmt.Errorf("enrich.static.reload: must be 0 (off) or >= 100ms, got %s", c.Reload)
	}
	v := e.Version()
	if err := st.Retarget(c.File, c.Reload); err != nil {
		return fmt.Errorf("enrich.static.file: %w", err)
	}
	// publish kicked the merge loop; wait for it so the caller sees the
	// new inventory (bounded: the loop rebuilds promptly while running).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.WaitVersion(ctx, v+1)
	return nil
}
