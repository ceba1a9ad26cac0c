package cfgload

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// PathTag marks a configuration field that holds a file or directory path:
//
//	File string `mapstructure:"file" yaml:"file" cfgload:"path"`
//
// The field may be a string or a []string, and may sit anywhere, also in
// the elements of a slice of structs (inventory.libvirt.connections[].tls).
// Load makes every such value absolute: a relative value written in the
// config file is taken relative to the directory of that file (as
// Prometheus and most daemons do), a relative value from the environment or
// a default relative to the working directory. So a config file works
// whatever directory vmflow is started from, and `--dump` prints the paths
// it will use.
const PathTag = "path"

// resolvePaths makes every PathTag field of the struct v absolute. base
// returns the directory a key's relative value is relative to (key: the
// configuration key as Keys lists it, e.g. "inventory.libvirt.connections").
func resolvePaths(v reflect.Value, base func(key string) string) error {
	var errs []string
	var walkValue func(v reflect.Value, prefix, key string)
	walkValue = func(v reflect.Value, prefix, key string) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walkValue(v.Elem(), prefix, key)
			}
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				walkValue(v.Index(i), fmt.Sprintf("%s[%d]", prefix, i), key)
			}
		case reflect.Struct:
			fields(v.Type(), prefix, func(index []int, sf reflect.StructField, path string) {
				fv := v.FieldByIndex(index)
				k := key
				if k == "" && isLeaf(sf.Type) {
					k = path // the configuration key this value belongs to
				}
				if isPathField(sf) {
					if err := makeAbs(fv, base(keyOr(k, path))); err != nil {
						errs = append(errs, path+": "+err.Error())
					}
					return
				}
				walkValue(fv, path, k)
			})
		}
	}
	walkValue(v, "", "")
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func keyOr(key, path string) string {
	if key != "" {
		return key
	}
	return path
}

func isPathField(sf reflect.StructField) bool {
	for _, opt := range strings.Split(sf.Tag.Get("cfgload"), ",") {
		if opt == PathTag {
			return true
		}
	}
	return false
}

// makeAbs joins a relative string (or each of a []string) to dir.
func makeAbs(v reflect.Value, dir string) error {
	abs := func(s string) string {
		if s == "" || filepath.IsAbs(s) {
			return s
		}
		return filepath.Join(dir, s)
	}
	switch {
	case v.Kind() == reflect.String:
		v.SetString(abs(v.String()))
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		for i := 0; i < v.Len(); i++ {
			v.Index(i).SetString(abs(v.Index(i).String()))
		}
	default:
		return fmt.Errorf("cfgload:%q on a %s (want string or []string)", PathTag, v.Type())
	}
	return nil
}

// PathKeys lists the keys (with "[]" for slice elements) tagged as paths
// in the struct v, for documentation and tests.
func PathKeys(v any) []string {
	var out []string
	var walkType func(t reflect.Type, prefix string)
	walkType = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			if t.Kind() != reflect.Pointer {
				prefix += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == timeType {
			return
		}
		fields(t, prefix, func(_ []int, sf reflect.StructField, path string) {
			if isPathField(sf) {
				out = append(out, path)
				return
			}
			walkType(sf.Type, path)
		})
	}
	walkType(reflect.TypeOf(v), "")
	return out
}

// baseDirs returns the function resolvePaths needs: the config file's
// directory for keys the file sets (and the environment does not), the
// working directory otherwise.
func baseDirs(file string, inFile func(key string) bool, fromEnv map[string]bool) (func(string) string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}
	fileDir := wd
	if file != "" {
		abs, err := filepath.Abs(file)
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, err)
		}
		fileDir = filepath.Dir(abs)
	}
	return func(key string) string {
		if file != "" && !fromEnv[key] && inFile(key) {
			return fileDir
		}
		return wd
	}, nil
}
