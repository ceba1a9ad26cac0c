package peer

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
)

// fillStats sets every field of Stats by reflection, so that a field added
// to aggregate.Stats but not to the codec fails the round trip.
func fillStats(t *testing.T, st *aggregate.Stats, seed float64) {
	v := reflect.ValueOf(st).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Float64:
			f.SetFloat(seed + float64(i) + 0.5)
		case reflect.Uint64, reflect.Uint32:
			f.SetUint(uint64(seed) + uint64(i))
		case reflect.Int64:
			f.SetInt(int64(seed)*1e9 + int64(i))
		case reflect.Array:
			if f.Type() == reflect.TypeOf([6]byte{}) {
				f.Set(reflect.ValueOf([6]byte{0x52, 0x54, 0, 0, byte(i), byte(seed)}))
			} else {
				for k := 0; k < f.Len(); k++ {
					f.Index(k).Set(reflect.ValueOf(aggregate.PortCount{Proto: 6, Port: uint16(k + 1), Bytes: seed * float64(k+1)}))
				}
			}
		case reflect.Struct:
			if f.Type() == reflect.TypeOf(netip.Addr{}) {
				f.Set(reflect.ValueOf(netip.AddrFrom4([4]byte{10, 0, byte(i), byte(seed)})))
				continue
			}
			t.Fatalf("field %s: type %s not covered", v.Type().Field(i).Name, f.Type())
		case reflect.Pointer:
			if f.Type() != reflect.TypeOf(&aggregate.Latency{}) {
				t.Fatalf("field %s: type %s not covered", v.Type().Field(i).Name, f.Type())
			}
			l := &aggregate.Latency{}
			for k := uint32(1); k <= 50; k++ {
				l.Handshake.Add(k*37 + uint32(seed))
				l.Guest.Add(k * 3)
				l.Echo.Add(k * 41)
			}
			l.Client.Attempts, l.Client.Established, l.Server.Refused = uint64(seed)+3, uint64(seed)+2, 1
			f.Set(reflect.ValueOf(l))
		default:
			t.Fatalf("field %s: kind %s not covered", v.Type().Field(i).Name, f.Kind())
		}
	}
}

func codecWindows(t *testing.T) []*aggregate.Window {
	end := time.Date(2026, 12, 2, 12, 0, 10, 0, time.UTC)
	var full aggregate.Pair
	full.Key = aggregate.PairKey{Src: aggregate.EndpointKey{VM: 7}, Dst: aggregate.EndpointKey{IP: netip.MustParseAddr("2001:db8::1")}, Source: decoder.SourceIPFIX}
	full.Src = aggregate.Endpoint{VM: "web-1", UUID: "u-1", Host: "hv1", Tenant: "t1", TenantName: "Acme", IP: "10.0.0.1", MAC: "52:54:00:00:00:01"}
	full.Dst = aggregate.Endpoint{IP: "2001:db8::1"}
	fillStats(t, &full.Stats, 3)
	zero := aggregate.Pair{Src: full.Src, Dst: full.Src} // zero stats, repeated strings
	zero.Key.Source = decoder.SourceSFlow
	return []*aggregate.Window{
		{Start: end.Add(-10 * time.Second), End: end, Pairs: []aggregate.Pair{full, zero}},
		{Start: end, End: end.Add(10 * time.Second), Pairs: []aggregate.Pair{}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	ws := codecWindows(t)
	var buf bytes.Buffer
	require.NoError(t, EncodeWindows(&buf, ws))
	got, err := DecodeWindows(&buf)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, ws[0], got[0])
	assert.Equal(t, ws[1].End, got[1].End)
	assert.Empty(t, got[1].Pairs)
	// Every truncation is an error, never a panic.
	var full bytes.Buffer
	require.NoError(t, EncodeWindows(&full, ws))
	b := full.Bytes()
	for n := 0; n < len(b); n++ {
		_, err := DecodeWindows(bytes.NewReader(b[:n]))
		assert.Error(t, err, "truncated at %d of %d", n, len(b))
	}
}

func FuzzDecodeWindows(f *testing.F) {
	var buf bytes.Buffer
	_ = EncodeWindows(&buf, codecWindows(&testing.T{}))
	f.Add(buf.Bytes())
	f.Add([]byte(magic + "\x01\x00\x00\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ws, err := DecodeWindows(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := EncodeWindows(&out, ws); err != nil {
			t.Fatal(err)
		}
	})
}
