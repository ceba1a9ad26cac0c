// Package cfgload loads a configuration struct with viper: defaults from
// the struct's current value, then a YAML file, then environment variables
// PREFIX_KEY_PATH (every key, `.` → `_`, upper case). Unknown keys and
// values that do not fit their field are errors naming the key.
//
// Keys are the structs' `mapstructure` tags. A struct field is a section
// (its fields are keys) unless its type decodes from text
// (encoding.TextUnmarshaler) or is time.Time; slices and maps are single
// keys (from the environment: comma-separated slices of scalars).
//
// Fields tagged `cfgload:"path"` hold paths: Load makes them absolute,
// relative to the config file's directory when the file sets them (see
// PathTag).
package cfgload

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// Options tune Load.
type Options struct {
	// EnvPrefix is the environment prefix without the trailing "_" ("VMFLOW").
	EnvPrefix string
	// Environ is the environment to read ("KEY=value" entries); nil means os.Environ().
	Environ []string
}

// Result tells what Load used.
type Result struct {
	File string // the config file read, "" for none
	// EnvUsed lists the environment variables that set a key.
	EnvUsed []string
	// Warnings: environment variables with the prefix that match no key.
	Warnings []string
}

// Key is one configuration key and its environment variable.
type Key struct {
	Path string // "collector.sflow.listen"
	Env  string // "VMFLOW_COLLECTOR_SFLOW_LISTEN"
	Type reflect.Type
}

// Keys lists the keys of the struct pointed to (or held) by v, in field order.
func Keys(v any, envPrefix string) []Key {
	var out []Key
	walk(reflect.Indirect(reflect.ValueOf(v)), "", func(path string, f reflect.Value) {
		out = append(out, Key{Path: path, Env: EnvName(envPrefix, path), Type: f.Type()})
	})
	return out
}

// EnvName is the environment variable of a key path.
func EnvName(prefix, path string) string {
	s := strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
	if prefix == "" {
		return s
	}
	return prefix + "_" + s
}

var (
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	timeType        = reflect.TypeOf(time.Time{})
)

// isLeaf says whether a value of type t is one key rather than a section.
func isLeaf(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return true
	}
	return t == timeType || reflect.PointerTo(t).Implements(textUnmarshaler)
}

// tagName returns the key name of a struct field ("" to skip it) and
// whether it is squashed into its parent.
func tagName(f reflect.StructField) (name string, squash bool) {
	if !f.IsExported() {
		return "", false
	}
	tag := f.Tag.Get("mapstructure")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "-" {
		return "", false
	}
	if strings.Contains(opts, "squash") {
		return "", true
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, false
}

// fields calls fn for every keyed field of the struct type t, embedded
// squashed structs flattened: its index (for FieldByIndex) and key path.
func fields(t reflect.Type, prefix string, fn func(index []int, sf reflect.StructField, path string)) {
	var rec func(t reflect.Type, base []int)
	rec = func(t reflect.Type, base []int) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name, squash := tagName(sf)
			index := append(append([]int(nil), base...), i)
			if squash && sf.Type.Kind() == reflect.Struct {
				rec(sf.Type, index)
				continue
			}
			if name == "" {
				continue
			}
			path := name
			if prefix != "" {
				path = prefix + "." + name
			}
			fn(index, sf, path)
		}
	}
	rec(t, nil)
}

// walk calls leaf for every key of the struct value v.
func walk(v reflect.Value, prefix string, leaf func(path string, f reflect.Value)) {
	fields(v.Type(), prefix, func(index []int, sf reflect.StructField, path string) {
		fv := v.FieldByIndex(index)
		if isLeaf(sf.Type) {
			leaf(path, fv)
			return
		}
		walk(fv, path, leaf)
	})
}

// Load fills the struct dst points to. Its current value is the defaults;
// path ("" for none) is a YAML file; then the environment.
func Load(path string, dst any, opts Options) (Result, error) {
	var res Result
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return res, errors.New("cfgload: dst must point to a struct")
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	env := map[string]string{}
	for _, kv := range environ {
		k, val, ok := strings.Cut(kv, "=")
		if ok {
			env[k] = val
		}
	}

	v := viper.New()
	v.SetConfigType("yaml")
	known := map[string]bool{}
	fromEnv := map[string]bool{}
	for _, k := range Keys(dst, opts.EnvPrefix) {
		f := fieldByPath(rv.Elem(), k.Path)
		v.SetDefault(k.Path, f.Interface())
		known[k.Env] = true
		if val, ok := env[k.Env]; ok {
			v.Set(k.Path, val)
			fromEnv[k.Path] = true
			res.EnvUsed = append(res.EnvUsed, k.Env)
		}
	}
	if opts.EnvPrefix != "" {
		for k := range env {
			if strings.HasPrefix(k, opts.EnvPrefix+"_") && !known[k] {
				res.Warnings = append(res.Warnings, fmt.Sprintf("environment variable %s matches no config key", k))
			}
		}
		sort.Strings(res.Warnings)
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return res, fmt.Errorf("config file: %w", err)
		}
		err = v.ReadConfig(f)
		f.Close()
		if err != nil {
			return res, fmt.Errorf("config file %s: %w", path, err)
		}
		res.File = path
	}

	// Decode into a zero value: every key has a default or a setting, and
	// decoding over existing slices would keep their extra elements.
	out := reflect.New(rv.Elem().Type())
	var md mapstructure.Metadata
	err := v.Unmarshal(out.Interface(), func(dc *mapstructure.DecoderConfig) {
		dc.Metadata = &md
		dc.WeaklyTypedInput = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			mapstructure.TextUnmarshallerHookFunc(),
		)
	})
	if err != nil {
		return res, fmt.Errorf("config: %w", cleanDecodeError(err))
	}
	if len(md.Unused) > 0 {
		sort.Strings(md.Unused)
		var errs []error
		for _, k := range md.Unused {
			errs = append(errs, fmt.Errorf("%s: unknown key%s", k, suggest(dst, k)))
		}
		return res, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	base, err := baseDirs(path, v.InConfig, fromEnv)
	if err != nil {
		return res, fmt.Errorf("config: %w", err)
	}
	if err := resolvePaths(out.Elem(), base); err != nil {
		return res, fmt.Errorf("config: %w", err)
	}
	rv.Elem().Set(out.Elem())
	return res, nil
}

// cleanDecodeError rewords mapstructure's "'key' expected ..." messages
// so that they start with the key, like Validate's errors.
func cleanDecodeError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "decoding failed due to the following error(s):\n\n")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		// "'collector.sflow.sockets' expected type 'int', got ..." -> "collector.sflow.sockets: expected type ..."
		if strings.HasPrefix(l, "'") {
			if i := strings.Index(l[1:], "' "); i >= 0 {
				l = l[1:i+1] + ": " + l[i+3:]
			}
		}
		// "cannot parse 'a.b' as int: ..." -> "a.b: cannot parse as int: ..."
		if strings.HasPrefix(l, "cannot parse '") {
			rest := l[len("cannot parse '"):]
			if i := strings.Index(rest, "' "); i >= 0 {
				l = rest[:i] + ": cannot parse " + rest[i+2:]
			}
		}
		lines = append(lines, l)
	}
	return errors.New(strings.Join(lines, "\n"))
}

// suggest lists the valid keys beside an unknown one.
func suggest(dst any, unknown string) string {
	parent := ""
	if i := strings.LastIndexByte(unknown, '.'); i >= 0 {
		parent = unknown[:i]
	}
	seen := map[string]bool{}
	var names []string
	for _, k := range Keys(dst, "") {
		rest, ok := strings.CutPrefix(k.Path, parent)
		if parent != "" {
			if !ok || !strings.HasPrefix(rest, ".") {
				continue
			}
			rest = rest[1:]
		}
		name, _, _ := strings.Cut(rest, ".")
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	where := "here"
	if parent != "" {
		where = "under " + parent
	}
	return fmt.Sprintf(" (valid %s: %s)", where, strings.Join(names, ", "))
}

func fieldByPath(v reflect.Value, path string) reflect.Value {
	parts := strings.Split(path, ".")
	return fieldByParts(v, parts)
}

func fieldByParts(v reflect.Value, parts []string) reflect.Value {
	if len(parts) == 0 {
		return v
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, squash := tagName(sf)
		if squash && sf.Type.Kind() == reflect.Struct {
			if f := fieldByParts(v.Field(i), parts); f.IsValid() {
				return f
			}
			continue
		}
		if name == parts[0] {
			return fieldByParts(v.Field(i), parts[1:])
		}
	}
	return reflect.Value{}
}

// Dump renders v as YAML (the `yaml` tags; durations as "10s").
func Dump(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
