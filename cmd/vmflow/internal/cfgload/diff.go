package cfgload

import (
	"fmt"
	"reflect"
)

// Changed lists the keys (as Keys names them) whose values differ between
// the structs a and b (same type), in field order.
func Changed(a, b any) []string {
	va, vb := reflect.Indirect(reflect.ValueOf(a)), reflect.Indirect(reflect.ValueOf(b))
	var out []string
	for _, k := range Keys(a, "") {
		fa, fb := fieldByPath(va, k.Path), fieldByPath(vb, k.Path)
		if !equalValues(fa, fb) {
			out = append(out, k.Path)
		}
	}
	return out
}

// equalValues compares two key values; nil and empty slices and maps are equal.
func equalValues(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// CopyKeys sets, in the struct dst points to, the value of each key from
// the struct src (same type).
func CopyKeys(dst, src any, keys []string) error {
	vd := reflect.ValueOf(dst)
	if vd.Kind() != reflect.Pointer {
		return fmt.Errorf("cfgload: CopyKeys needs a pointer, got %T", dst)
	}
	vd = vd.Elem()
	vs := reflect.Indirect(reflect.ValueOf(src))
	for _, k := range keys {
		fd, fs := fieldByPath(vd, k), fieldByPath(vs, k)
		if !fd.IsValid() || !fs.IsValid() {
			return fmt.Errorf("cfgload: no key %s", k)
		}
		fd.Set(fs)
	}
	return nil
}
