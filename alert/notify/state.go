package notify

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// stateVersion is the state file's format version.
const stateVersion = 1

// restoreEvaluations: restored notification memory is kept this many
// evaluations after a restart for the engine's alerts to claim it.
const restoreEvaluations = 30

// maxStateAlerts bounds the fingerprints written to the state file.
const maxStateAlerts = 100_000

// stateFile is what survives a restart: which alerts of which groups the
// e-mail and webhook receivers were told are firing, and when.
type stateFile struct {
	Version int          `json:"version"`
	SavedAt time.Time    `json:"saved_at"`
	Groups  []stateGroup `json:"groups"`
}

type stateGroup struct {
	Key        string    `json:"key"`
	LastNotify time.Time `json:"last_notify"`
	Notified   []string  `json:"notified"` // fingerprints notified as firing
}

type restored struct {
	lastOut  time.Time
	notified map[string]bool
}

// loadState reads the state file ("" or missing: nothing to restore).
func loadState(path string) (map[string]*restored, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf(keyPrefix+"state_file: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf(keyPrefix+"state_file: %s: %w", path, err)
	}
	if sf.Version != stateVersion {
		return nil, fmt.Errorf(keyPrefix+"state_file: %s: version %d, want %d", path, sf.Version, stateVersion)
	}
	out := make(map[string]*restored, len(sf.Groups))
	for _, g := range sf.Groups {
		r := &restored{lastOut: g.LastNotify, notified: make(map[string]bool, len(g.Notified))}
		for _, fp := range g.Notified {
			r.notified[fp] = true
		}
		out[g.Key] = r
	}
	return out, nil
}

// snapshotLocked collects the groups' notification memory (d.mu held).
func (d *Notifier) snapshotLocked() stateFile {
	sf := stateFile{Version: stateVersion, SavedAt: d.clock().UTC(), Groups: []stateGroup{}}
	n := 0
	for key, g := range d.groups {
		sg := stateGroup{Key: key, LastNotify: g.lastOut.UTC()}
		for fp, ga := range g.alerts {
			if ga.notified && n < maxStateAlerts {
				sg.Notified = append(sg.Notified, fp)
				n++
			}
		}
		if len(sg.Notified) == 0 {
			continue
		}
		sort.Strings(sg.Notified)
		sf.Groups = append(sf.Groups, sg)
	}
	// what a restart restored and no evaluation claimed yet stays
	for key, r := range d.restore {
		if _, ok := d.groups[key]; ok {
			continue
		}
		sg := stateGroup{Key: key, LastNotify: r.lastOut.UTC()}
		for fp := range r.notified {
			if n < maxStateAlerts {
				sg.Notified = append(sg.Notified, fp)
				n++
			}
		}
		sort.Strings(sg.Notified)
		sf.Groups = append(sf.Groups, sg)
	}
	sort.Slice(sf.Groups, func(i, j int) bool { return sf.Groups[i].Key < sf.Groups[j].Key })
	return sf
}

// saveState writes the state file atomically (no-op without a path).
func (d *Notifier) saveState() error {
	if d.cfg.StateFile == "" {
		return nil
	}
	d.mu.Lock()
	sf := d.snapshotLocked()
	d.mu.Unlock()
	b, err := json.Marshal(&sf)
	if err != nil {
		return err
	}
	dir := filepath.Dir(d.cfg.StateFile)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("alert notify: state file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".notify-state-*")
	if err != nil {
		return fmt.Errorf("alert notify: state file: %w", err)
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if werr != nil || serr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("alert notify: state file: %v %v %v", werr, serr, cerr)
	}
	if err := os.Rename(tmp.Name(), d.cfg.StateFile); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("alert notify: state file: %w", err)
	}
	return nil
}

// restoredNotified says whether a restart restored alert fp of group key
// as notified, and claims it (d.mu held).
func (d *Notifier) restoredNotified(key, fp string) (bool, time.Time) {
	r := d.restore[key]
	if r == nil || !r.notified[fp] {
		return false, time.Time{}
	}
	delete(r.notified, fp)
	if len(r.notified) == 0 {
		delete(d.restore, key)
	}
	return true, r.lastOut
}
