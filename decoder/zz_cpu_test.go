package decoder

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
)

func fxCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func TestZZCPU(t *testing.T) {
	runtime.LockOSThread()
	for _, dir := range []string{"ingress", "both"} {
		f, _ := fxNewFlow(t, func(c *FlowConfig) { c.Directions = dir })
		from := netip.MustParseAddrPort("127.0.0.1:60536")
		var batch Batch
		var data [][]byte
		for _, d := range fxCaptureDatagrams(t) {
			f.Decode(SourceIPFIX, from, d, 0, &batch)
			if batch.Header.DataRecords > 0 {
				data = append(data, d)
			}
		}
		const N = 2000000
		st := fxCPU()
		for i := 0; i < N; i++ {
			f.Decode(SourceIPFIX, from, data[i%len(data)], 0, &batch)
		}
		fmt.Printf("%s: %.0f ns cpu/record\n", dir, float64(fxCPU()-st)/N)
	}
	f, _ := fxNewFlow(t, func(c *FlowConfig) { c.Directions = "both" })
	var batch Batch
	f.Decode(SourceIPFIX, fxExpA, fxIPFIX(1, 0, 123, fxSet(2, fxTmpl(true, 291, fxOVSTunnelFields...))), 0, &batch)
	var recs [][]byte
	for i := 0; i < 12; i++ {
		recs = append(recs, fxOVSTunnelRecord(uint8(i&1), 20))
	}
	msg := fxIPFIX(1, 0, 123, fxSet(291, recs...))
	const N = 200000
	st := fxCPU()
	for i := 0; i < N; i++ {
		f.Decode(SourceIPFIX, fxExpA, msg, 0, &batch)
	}
	fmt.Printf("large: %.0f ns cpu/record\n", float64(fxCPU()-st)/N/12)
}
