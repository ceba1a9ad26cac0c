package libvirt

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A tiny XDR (RFC 4506) writer and reader for the handful of types the
// remote protocol uses here. It is hand-written rather than built on
// github.com/davecgh/go-xdr because libvirt's optional data (remote_string,
// remote_domain: "pointer" types encoded as a 0/1 bool followed by the value)
// has no natural Go mapping in that library, and because every length read
// from the wire must be checked against what is left of the packet before
// anything is allocated: a hostile or corrupt reply must end in an error,
// never a panic or a huge allocation.

// ErrShort is returned when a body ends before the value being read.
var ErrShort = errors.New("xdr: truncated data")

// xdrMaxString bounds any string read (REMOTE_STRING_MAX in remote_protocol.x).
const xdrMaxString = 4194304

type xdrWriter struct{ b []byte }

func (w *xdrWriter) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *xdrWriter) i32(v int32)  { w.u32(uint32(v)) }
func (w *xdrWriter) bool(v bool) {
	if v {
		w.u32(1)
	} else {
		w.u32(0)
	}
}

func (w *xdrWriter) str(s string) {
	w.u32(uint32(len(s)))
	w.b = append(w.b, s...)
	w.pad(len(s))
}

// optStr writes a remote_string: absent when s is nil.
func (w *xdrWriter) optStr(s *string) {
	if s == nil {
		w.u32(0)
		return
	}
	w.u32(1)
	w.str(*s)
}

func (w *xdrWriter) fixed(p []byte) { w.b = append(w.b, p...); w.pad(len(p)) }

func (w *xdrWriter) pad(n int) {
	for ; n%4 != 0; n++ {
		w.b = append(w.b, 0)
	}
}

func (w *xdrWriter) domain(d Domain) {
	w.str(d.Name)
	w.fixed(d.UUID[:])
	w.i32(d.ID)
}

type xdrReader struct {
	b   []byte
	off int
	err error
}

func (r *xdrReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *xdrReader) left() int { return len(r.b) - r.off }

func (r *xdrReader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	if r.left() < 4 {
		r.fail(ErrShort)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *xdrReader) i32() int32 { return int32(r.u32()) }

func (r *xdrReader) u64() uint64 {
	hi := uint64(r.u32())
	lo := uint64(r.u32())
	return hi<<32 | lo
}

func (r *xdrReader) bool() bool {
	v := r.u32()
	if v > 1 {
		r.fail(fmt.Errorf("xdr: bad bool %d", v))
	}
	return v == 1
}

func (r *xdrReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	padded := (n + 3) &^ 3
	if n < 0 || padded < n || r.left() < padded {
		r.fail(ErrShort)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += padded
	return p
}

func (r *xdrReader) str() string {
	n := r.u32()
	if r.err != nil {
		return ""
	}
	if n > xdrMaxString {
		r.fail(fmt.Errorf("xdr: string length %d over limit", n))
		return ""
	}
	return string(r.bytes(int(n)))
}

func (r *xdrReader) optStr() *string {
	if !r.bool() || r.err != nil {
		return nil
	}
	s := r.str()
	return &s
}

// count reads an array length and checks it against max and against the
// bytes left (each element takes at least minElem bytes), so a corrupt
// count cannot make the caller allocate.
func (r *xdrReader) count(max, minElem int) int {
	n := r.u32()
	if r.err != nil {
		return 0
	}
	if int64(n) > int64(max) {
		r.fail(fmt.Errorf("xdr: array length %d over limit %d", n, max))
		return 0
	}
	if minElem > 0 && int64(n)*int64(minElem) > int64(r.left()) {
		r.fail(ErrShort)
		return 0
	}
	return int(n)
}

func (r *xdrReader) domain() Domain {
	var d Domain
	d.Name = r.str()
	copy(d.UUID[:], r.bytes(16))
	d.ID = r.i32()
	return d
}

func (r *xdrReader) optDomain() *Domain {
	if !r.bool() || r.err != nil {
		return nil
	}
	d := r.domain()
	return &d
}
