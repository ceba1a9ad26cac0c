package decoder

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	sh "github.com/vmflow/vmflow/internal/sflowhost"
)

func hostSeeds(f *testing.F) {
	f.Add(hostDatagramFixture())
	f.Add(sh.Datagram(hostAgent, 1, 2, 3, hostSampleFixture()))
	f.Add(sh.Datagram(hostAgent, 1, 2, 3, vmSampleFixture()))
	for _, d := range readClassicPcapUDP(nil, realHostCapture)[:2] { // a real hsflowd's
		f.Add(d)
	}
	f.Add(sh.Datagram(hostAgent, 1, 2, 3, sh.CounterSample(1, 3, 5, sh.HostAdapters(
		sh.Adapter{IfIndex: 1, MACs: make([][6]byte, 20)}, sh.Adapter{IfIndex: 2}))))
}

// checkHostDecode is the rule both the fuzz target and the mutation test
// apply: the two paths accept the same host records and decode them
// identically (the fast path may only be stricter in the documented ways:
// ErrTruncated, ErrBadLength), and what is decoded stays in its bounds.
func checkHostDecode(t *testing.T, fast, slow *Decoder, fb, sb *Batch, data []byte) (both bool) {
	ferr := fast.Decode(SourceSFlow, testExporter, data, 42, fb)
	serr := slow.Decode(SourceSFlow, testExporter, data, 42, sb)
	switch {
	case ferr == nil && serr == nil:
		if !slices.Equal(fb.Hosts, sb.Hosts) {
			t.Fatalf("host counters differ (-goflow2 +fast):\n%s", cmp.Diff(sb.Hosts, fb.Hosts, cmpAddrs))
		}
		for i := range fb.Hosts {
			h := &fb.Hosts[i]
			if int(h.HostnameLen) > HostnameMax || int(h.OSReleaseLen) > OSReleaseMax || int(h.NumMACs) > HostMACsMax {
				t.Fatalf("host %d out of bounds: %+v", i, h)
			}
			if h.Have == 0 {
				t.Fatalf("host %d without any record", i)
			}
		}
		if len(fb.Hosts) > len(fb.Counters) {
			t.Fatalf("%d host samples, %d counter samples", len(fb.Hosts), len(fb.Counters))
		}
		return true
	case ferr == nil:
		t.Fatalf("fast path accepts, goflow2 path rejects: %v", serr)
	case serr == nil:
		if !errors.Is(ferr, ErrTruncated) && !errors.Is(ferr, ErrBadLength) {
			t.Fatalf("fast path rejects for an unexplained reason, goflow2 accepts: %v", ferr)
		}
	default:
		if len(fb.Hosts) > 0 && classify(ferr) == reasonOther {
			t.Fatalf("unclassified error %v", ferr)
		}
	}
	return false
}

// FuzzSFlowHost: hsflowd datagrams, both paths, the rule of checkHostDecode.
func FuzzSFlowHost(f *testing.F) {
	hostSeeds(f)
	fast := newTestDecoder(f, true)
	slow := newTestDecoder(f, false)
	var fb, sb Batch
	f.Fuzz(func(t *testing.T, data []byte) { checkHostDecode(t, fast, slow, &fb, &sb, data) })
}

// TestSFlowHostWordMutations applies checkHostDecode to every 32-bit word of
// the golden datagram and of a real hsflowd datagram replaced by values that stress lengths and counts.
func TestSFlowHostWordMutations(t *testing.T) {
	fast := newTestDecoder(t, true)
	slow := newTestDecoder(t, false)
	var fb, sb Batch
	agree, total := 0, 0
	for _, in := range [][]byte{hostDatagramFixture(), readClassicPcapUDP(t, realHostCapture)[0]} {
		for off := 0; off+4 <= len(in); off += 4 {
			orig := binary.BigEndian.Uint32(in[off:])
			for _, v := range []uint32{0, 1, 2, 3, 64, 65, 2000, 2101, orig + 4, orig - 4, orig + 1, 0x7fffffff, 0xffffffff} {
				data := append([]byte(nil), in...)
				binary.BigEndian.PutUint32(data[off:], v)
				total++
				if checkHostDecode(t, fast, slow, &fb, &sb, data) {
					agree++
				}
			}
		}
	}
	t.Logf("%d mutants, %d accepted by both paths with equal host counters", total, agree)
	if agree == 0 || agree == total {
		t.Fatal("mutations exercised neither agreement nor rejection")
	}
}
