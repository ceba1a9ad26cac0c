package decoder

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/netsampler/goflow2/v2/decoders/sflow"
)

func TestTmpDump(t *testing.T) {
	ds := readCaptureUDP(t, os.Getenv("CAP"), 16343)
	d := newTestDecoder(t, true)
	var b Batch
	for _, dg := range ds {
		var p sflow.Packet
		if err := sflow.DecodeMessageVersion(bytes.NewBuffer(dg.Payload), &p); err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Samples {
			switch s := s.(type) {
			case sflow.FlowSample:
				fmt.Printf("FLOW src=%d/%d in=%#x out=%#x rate=%d\n", s.Header.SourceIdType, s.Header.SourceIdValue, s.Input, s.Output, s.SamplingRate)
				for _, r := range s.Records {
					switch v := r.Data.(type) {
					case sflow.RawRecord:
						fmt.Printf("   rec %d raw %x\n", r.Header.DataFormat, v.Data)
					case sflow.SampledHeader:
						fmt.Printf("   rec %d hdr proto=%d frame=%d stripped=%d hlen=%d %x\n", r.Header.DataFormat, v.Protocol, v.FrameLength, v.Stripped, v.OriginalLength, v.HeaderData[:v.OriginalLength])
					default:
						fmt.Printf("   rec %d %+v\n", r.Header.DataFormat, v)
					}
				}
			case sflow.CounterSample:
				fmt.Printf("CTR src=%d/%d n=%d\n", s.Header.SourceIdType, s.Header.SourceIdValue, len(s.Records))
				for _, r := range s.Records {
					if v, ok := r.Data.(sflow.RawRecord); ok {
						fmt.Printf("   rec %d raw %x\n", r.Header.DataFormat, v.Data)
					} else {
						fmt.Printf("   rec %d\n", r.Header.DataFormat)
					}
				}
			default:
				fmt.Printf("%T\n", s)
			}
		}
		if err := d.Decode(SourceSFlow, dg.From, dg.Payload, dg.Received, &b); err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Records {
			fmt.Printf(" => in=%d out=%d %v>%v %v>%v proto=%d %d>%d bytes=%d tun=%v vni=%d outer %v>%v %x>%x flags=%b\n", r.InIf, r.OutIf, r.SrcMAC, r.DstMAC, r.SrcIP, r.DstIP, r.Proto, r.SrcPort, r.DstPort, r.Bytes, r.Tunnel, r.VNI, r.OuterSrcIP, r.OuterDstIP, r.OuterSrcMAC, r.OuterDstMAC, r.Flags)
		}
	}
}
