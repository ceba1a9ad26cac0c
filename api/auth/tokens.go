package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// TokenPrefix starts every vmflow API token, so that the token
// authenticator can leave other bearer tokens (JWTs) to the next one.
const TokenPrefix = "vmf_"

// TokenEntry is one line of the token file (JSON lines; blank lines and
// lines starting with # are ignored). Only the SHA-256 of the token is
// stored: a token has 256 random bits, so a fast hash is as good as a slow
// one and costs nothing per request.
type TokenEntry struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Tenants []string  `json:"tenants,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Created time.Time `json:"created,omitzero"`
	SHA256  string    `json:"sha256"`
}

// HashToken is the stored form of a token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewToken makes a token: the prefix and 32 random bytes, base64url.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ParseTokenFile parses the token file's content; errors name the line.
func ParseTokenFile(data []byte) ([]TokenEntry, error) {
	var out []TokenEntry
	names := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var e TokenEntry
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if prev, dup := names[e.Name]; dup {
			return nil, fmt.Errorf("line %d: token name %q already on line %d", n, e.Name, prev)
		}
		names[e.Name] = n
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (e *TokenEntry) validate() error {
	if e.Name == "" || strings.ContainsAny(e.Name, "\n\r\t") {
		return errors.New("name: must be a non-empty single line")
	}
	if !e.Role.Valid() {
		return fmt.Errorf("role: unknown role %q (one of viewer, operator, admin)", e.Role)
	}
	if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
		return errors.New("sha256: must be 64 hex digits")
	}
	for _, t := range e.Tenants {
		if t == "" {
			return errors.New("tenants: empty tenant id")
		}
	}
	return nil
}

// EntryLine is e as one line of the token file.
func EntryLine(e TokenEntry) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// AppendToken creates a token for e (Name, Role, Tenants, Expires), appends
// its hashed entry to the file (created 0600 if missing; a name already in
// the file is an error) and returns the token, which is not stored.
func AppendToken(path string, e TokenEntry, now time.Time) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	old, err := ParseTokenFile(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if slices.ContainsFunc(old, func(o TokenEntry) bool { return o.Name == e.Name }) {
		return "", fmt.Errorf("%s: a token named %q exists (delete its line to revoke it first)", path, e.Name)
	}
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	e.SHA256, e.Created = HashToken(tok), now.UTC().Truncate(time.Second)
	line, err := EntryLine(e)
	if err != nil {
		return "", err
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		line = append([]byte{'\n'}, line...)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return tok, nil
}

// TokenFile authenticates "Authorization: Bearer vmf_..." against a token
// file, re-read when its size, modification time or inode changes (checked
// at most once per CheckEvery). A file that fails to parse keeps the
// previous tokens and is reported by OnReload.
type TokenFile struct {
	Path       string
	CheckEvery time.Duration // 0: one second
	Now        func() time.Time
	// OnReload, when set, is told of every (re)load: the entries before and
	// after, or the error that kept the old ones.
	OnReload func(before, after []TokenEntry, err error)

	mu      sync.Mutex
	checked time.Time
	stamp   fileStamp
	entries []TokenEntry
	byHash  map[string]*TokenEntry
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// Load reads the file now; an error when it cannot be read or parsed.
func (t *TokenFile) Load() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reload(true)
}

func (t *TokenFile) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// reload re-reads when the file changed (or force); t.mu held.
func (t *TokenFile) reload(force bool) error {
	st, err := os.Stat(t.Path)
	if errors.Is(err, os.ErrNotExist) {
		// No file yet (vmflow token create makes it): no tokens.
		if t.byHash == nil || len(t.entries) > 0 {
			before := t.entries
			t.stamp, t.entries, t.byHash = fileStamp{}, nil, map[string]*TokenEntry{}
			if t.OnReload != nil && before != nil {
				t.OnReload(before, nil, nil)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	stamp := fileStamp{size: st.Size(), mtime: st.ModTime(), ino: inode(st)}
	if !force && stamp == t.stamp {
		return nil
	}
	data, err := os.ReadFile(t.Path)
	if err == nil {
		var entries []TokenEntry
		if entries, err = ParseTokenFile(data); err == nil {
			before := t.entries
			t.stamp, t.entries = stamp, entries
			t.byHash = make(map[string]*TokenEntry, len(entries))
			for i := range entries {
				t.byHash[entries[i].SHA256] = &entries[i]
			}
			if t.OnReload != nil {
				t.OnReload(before, entries, nil)
			}
			return nil
		}
	}
	err = fmt.Errorf("token file %s: %w", t.Path, err)
	t.stamp = stamp // do not re-parse a broken file on every request
	if t.OnReload != nil {
		t.OnReload(t.entries, t.entries, err)
	}
	return err
}

// Entries is the current token list (a copy).
func (t *TokenFile) Entries() []TokenEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.entries)
}

// Authenticate implements Authenticator.
func (t *TokenFile) Authenticate(r *http.Request) (*Identity, error) {
	tok := BearerToken(r)
	if !strings.HasPrefix(tok, TokenPrefix) {
		return nil, ErrNoCredentials
	}
	now, wall := t.now(), time.Now()
	t.mu.Lock()
	every := t.CheckEvery
	if every <= 0 {
		every = time.Second
	}
	if wall.Sub(t.checked) >= every || wall.Before(t.checked) {
		t.checked = wall
		_ = t.reload(false) // reported through OnReload; old tokens stay
	}
	e := t.byHash[HashToken(tok)]
	var id *Identity
	if e != nil {
		id = &Identity{Name: e.Name, Role: e.Role, Tenants: slices.Clone(e.Tenants), Expires: e.Expires, Method: MethodToken}
	}
	t.mu.Unlock()
	if id == nil {
		return nil, fmt.Errorf("%w: unknown token", ErrInvalid)
	}
	if !id.Expires.IsZero() && !now.Before(id.Expires) {
		return nil, fmt.Errorf("%w: token %s expired at %s", ErrExpired, id.Name, id.Expires.UTC().Format(time.RFC3339))
	}
	return id, nil
}
