package aggregate

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/vmflow/vmflow/decoder"
)

// FuzzPortDeltas feeds arbitrary counter sample sequences (hostile
// agents: counters, uptimes and sequence numbers jumping anywhere) to the
// port table: it never panics, covered time is never negative, no
// counter gives more per sample than its width allows, octets never more
// than the largest value sent per sample, and state stays bounded.
func FuzzPortDeltas(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 5})
	f.Add(make([]byte, 200))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		cfg.MaxPorts = 4
		a, err := New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		const rec = 26
		var c [1]decoder.Counters
		var maxOct uint64
		for ; len(data) >= rec; data = data[rec:] {
			be := binary.BigEndian
			c[0] = decoder.Counters{Agent: expA, HasIf: true,
				IfIndex:    uint32(data[0] % 6),
				Received:   int64(be.Uint16(data[1:])) * int64(time.Millisecond) * 10,
				Uptime:     be.Uint32(data[3:]),
				SampleSeq:  uint32(data[7]),
				InOctets:   be.Uint64(data[8:]),
				InUcast:    uint64(be.Uint32(data[16:])),
				InErrors:   uint64(be.Uint32(data[20:])),
				OutDiscard: uint64(be.Uint16(data[24:])) * 0x10001,
			}
			a.AddCounters(c[:])
			maxOct = max(maxOct, c[0].InOctets)
		}
		w := a.closeWindow(time.Unix(1000, 0))
		for _, p := range w.Ports {
			if p.Seconds < 0 {
				t.Fatalf("negative covered time %+v", p)
			}
			lim := uint64(p.Samples) * (1<<32 - 1)
			if p.InPackets > 3*lim || p.InErrors > lim || p.OutDiscards > lim {
				t.Fatalf("32-bit delta beyond the counter width: %+v", p)
			}
			if float64(p.InOctets) > float64(p.Samples)*float64(maxOct) {
				t.Fatalf("octets beyond what was sent: %+v (max %d)", p, maxOct)
			}
		}
		if len(w.Ports) > cfg.MaxPorts {
			t.Fatalf("%d ports tracked, max %d", len(w.Ports), cfg.MaxPorts)
		}
	})
}
