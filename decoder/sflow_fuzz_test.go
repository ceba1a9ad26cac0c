package decoder

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sflowSeeds adds every datagram of the real capture and the crafted
// datagrams of the unit tests to the fuzz corpus.
func sflowSeeds(f *testing.F) {
	for _, d := range readCaptureUDP(f, sflowCapture, 6343) {
		f.Add(d.Payload)
	}
	for _, path := range []string{vxlanEgressCapture, vxlanIngressCapture} {
		for _, d := range readCaptureUDP(f, path, 16343) {
			f.Add(d.Payload)
		}
	}
	inner := sfbCat(hbEth(hbMAC(2), hbMAC(1), etherTypeIPv4), hbIPv4(protoTCP, ip1, ip2, 20, nil, 0, false), hbTCP(1000, 22, 0x02))
	f.Add(sfbDatagram(testAgent, 7, 99, 5000,
		sfbFlowSample(1, 2<<24|1000, 64, 6400, 0, 9, 10,
			sfbRawHeader(1, uint32(len(inner)+4), 4, inner),
			sfbRecord(sfExtSwitch, sfbXDR(5, 0, 5, 0)),
			sfbSampledIPv4(sfIPv4TunnelIngres, 100, protoUDP, vtep1, vtep2, 55555, portVXLAN, 0, 0),
			sfbRecord(sfVNIIngress, sfbXDR(4242)),
			sfbSampledIPv6(sfIPv6TunnelEgress, 100, protoUDP, ip61, ip62, 1, portGeneve, 0, 0),
			sfbRecord(sfVNIEgress, sfbXDR(17)),
			sfbRecord(sfExtRouter, sfbXDR(1, 0x0a000001, 24, 24)),
			sfbRecord(sfExtGateway, sfbXDR(1, 0x0a000001, 65000, 65001, 65002, 1, 2, 2, 65001, 65002, 1, 100, 50)),
			sfbRecord(sfExtACL, sfbCat(sfbXDR(3, 4), []byte("deny"), sfbXDR(1))),
			sfbRecord(sfExtFunction, sfbCat(sfbXDR(4), []byte("drop"))),
			sfbRecord(sfEgressQueue, sfbXDR(1)),
			sfbRecord(sfSampledEthernet, make([]byte, 24)),
		),
		sfbExpandedFlowSample(1, 0, 3, 512, 1000, 2, 0, 70000, 2, 3,
			sfbSampledIPv4(sfSampledIPv4, 1500, protoUDP, ip1, ip2, 53, 9999, 0, 0x10)),
		sfbFlowSample(2, 0, 16, 0, 0, 5, 0x80000004,
			sfbSampledIPv6(sfSampledIPv6, 60, protoTCP, ip61, ip62, 1, 2, 0x11, 3)),
		sfbCounterSample(1, 7, sfbIfCounters(7, 1<<40, 1<<41), sfbRecord(sfEthCounters, make([]byte, 52)),
			sfbOFPort(0x463d91dcd941, 1), sfbPortName("vnet1"), sfbRecord(2207, make([]byte, 24))),
		sfbExpandedCounterSample(2, 0, 70000, sfbPortName("br0")),
		sfbSample(sflowDropSample, sfbCat(sfbXDR(1, 0, 3, 10, 3, 0, 1, 1), sfbRecord(sfEgressQueue, sfbXDR(2)))),
	))
	for _, h := range hazardDatagrams() {
		f.Add(h)
	}
}

// FuzzSFlowFastVsGoflow2 is the differential test between the fast path and
// the goflow2 path.
//
//   - Both accept: Header, Records and Counters are equal.
//   - Fast accepts, goflow2 rejects: a failure (the fast path must be the
//     stricter one).
//   - Fast rejects, goflow2 accepts: allowed only for the documented
//     strictness of the fast path, which goflow2 lacks: (1) a sample or
//     record length running past its container, or announced samples or
//     records missing, where goflow2 itself stops silently: our goflow2
//     path rejects it too (ErrTruncated) when goflow2 leaves a nil sample
//     or record, but not in every case goflow2 reads past or around;
//     (2) sample or record lengths that are not a multiple of 4, as XDR
//     requires (ErrBadLength); (3) a sampled_ethernet record (0:2) of 20-23
//     bytes: its XDR size is 24 (MACs padded to 8 bytes), goflow2 reads 20.
func FuzzSFlowFastVsGoflow2(f *testing.F) {
	sflowSeeds(f)
	fast := newTestDecoder(f, true)
	slow := newTestDecoder(f, false)
	var fb, sb Batch
	f.Fuzz(func(t *testing.T, data []byte) {
		ferr := fast.Decode(SourceSFlow, testExporter, data, 42, &fb)
		serr := slow.Decode(SourceSFlow, testExporter, data, 42, &sb)
		switch {
		case ferr == nil && serr == nil:
			if fb.Header == sb.Header && slices.Equal(fb.Records, sb.Records) && slices.Equal(fb.Counters, sb.Counters) {
				return // cheap check first: cmp.Diff is slow
			}
			if diff := cmp.Diff(sb, fb, cmpAddrs); diff != "" {
				t.Fatalf("paths differ (-goflow2 +fast):\n%s", diff)
			}
		case ferr == nil:
			t.Fatalf("fast path accepts, goflow2 path rejects: %v", serr)
		case serr == nil:
			if errors.Is(ferr, ErrTruncated) || errors.Is(ferr, ErrBadLength) ||
				(errors.Is(ferr, ErrMalformed) && strings.Contains(ferr.Error(), "flow record 0:2:")) {
				return
			}
			t.Fatalf("fast path rejects for an unexplained reason, goflow2 accepts: %v", ferr)
		}
	})
}

// FuzzDecodeSFlow exercises the Decoder entry point (fast path): no panic,
// and what it returns is consistent.
func FuzzDecodeSFlow(f *testing.F) {
	sflowSeeds(f)
	d := newTestDecoder(f, true)
	var b Batch
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(nil), data...)
		err := d.Decode(SourceSFlow, testExporter, in, 42, &b)
		if string(in) != string(data) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode sflow: ") || classify(err) == reasonOther {
				t.Fatalf("error not wrapped or not classified: %v", err)
			}
			return
		}
		if b.Header.Version != 5 || b.Header.Source != SourceSFlow {
			t.Fatalf("bad header %+v", b.Header)
		}
		if len(b.Records)+len(b.Counters) > b.Header.Samples || b.Header.Samples > DefaultSFlowConfig().MaxSamples {
			t.Fatalf("%d records + %d counters for %d samples", len(b.Records), len(b.Counters), b.Header.Samples)
		}
		// Each sample takes at least 8 bytes of the datagram.
		if 8*(len(b.Records)+len(b.Counters)) > len(data) {
			t.Fatal("more output than input can hold")
		}
		for i := range b.Records {
			r := &b.Records[i]
			if r.Packets != 1 || r.Source != SourceSFlow || r.Received != 42 || r.Exporter != testExporter.Addr() {
				t.Fatalf("record %d: %+v", i, r)
			}
		}
		for i := range b.Counters {
			if int(b.Counters[i].PortNameLen) > PortNameMax {
				t.Fatalf("counters %d: port name length %d", i, b.Counters[i].PortNameLen)
			}
		}
	})
}

// TestSFlowWordMutationsAgree applies the differential rule of
// FuzzSFlowFastVsGoflow2 to every 32-bit word of a few real datagrams and the
// crafted seed, each replaced by values that stress lengths and counts: a
// deterministic complement to fuzzing, which is slow on a shared machine.
func TestSFlowWordMutationsAgree(t *testing.T) {
	var inputs [][]byte
	dgs := readCaptureUDP(t, sflowCapture, 6343)
	for i := 0; i < len(dgs); i += len(dgs) / 4 {
		inputs = append(inputs, dgs[i].Payload)
	}
	for _, path := range []string{vxlanEgressCapture, vxlanIngressCapture} {
		inputs = append(inputs, readCaptureUDP(t, path, 16343)[0].Payload)
	}
	fast := newTestDecoder(t, true)
	slow := newTestDecoder(t, false)
	var fb, sb Batch
	var agree, fastStricter int
	for _, in := range inputs {
		for off := 0; off+4 <= len(in); off += 4 {
			orig := binary.BigEndian.Uint32(in[off:])
			for _, v := range []uint32{0, 1, 2, 3, 5, 1001, orig + 4, orig - 4, orig + 1, 0xffffffff} {
				data := append([]byte(nil), in...)
				binary.BigEndian.PutUint32(data[off:], v)
				ferr := fast.Decode(SourceSFlow, testExporter, data, 42, &fb)
				serr := slow.Decode(SourceSFlow, testExporter, data, 42, &sb)
				switch {
				case ferr == nil && serr == nil:
					agree++
					if fb.Header == sb.Header && slices.Equal(fb.Records, sb.Records) && slices.Equal(fb.Counters, sb.Counters) {
						continue
					}
					if diff := cmp.Diff(sb, fb, cmpAddrs); diff != "" {
						t.Fatalf("word %d = %#x: paths differ (-goflow2 +fast):\n%s", off/4, v, diff)
					}
				case ferr == nil:
					t.Fatalf("word %d = %#x: fast accepts, goflow2 rejects: %v", off/4, v, serr)
				case serr == nil:
					fastStricter++
					if !errors.Is(ferr, ErrTruncated) && !errors.Is(ferr, ErrBadLength) {
						t.Fatalf("word %d = %#x: unexplained fast-only rejection: %v", off/4, v, ferr)
					}
				}
			}
		}
	}
	t.Logf("%d mutants accepted by both and equal, %d rejected only by the stricter fast path", agree, fastStricter)
	if agree == 0 || fastStricter == 0 {
		t.Fatal("mutations exercised neither agreement nor strictness")
	}
}
