package libvirt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/internal/testenv/libvirtd"
)

// writeStatsNode writes a test-driver node file with n running domains,
// each with one disk, one vNIC and a memballoon.
func writeStatsNode(tb testing.TB, dir string, n int) string {
	var b strings.Builder
	b.WriteString("<node>\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<domain type='test'><name>st-%05d</name><uuid>d0000000-0000-4000-8000-%012x</uuid>
<memory>65536</memory><vcpu>2</vcpu><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><source file='/img/%d.img'/><target dev='vda' bus='virtio'/></disk>
<interface type='bridge'><mac address='fa:16:3f:%02x:%02x:%02x'/><source bridge='br-int'/><target dev='tst%05d'/></interface>
<memballoon model='virtio'/></devices></domain>
`, i, i, i, (i>>16)&0xff, (i>>8)&0xff, i&0xff, i)
	}
	b.WriteString("</node>\n")
	p := filepath.Join(dir, fmt.Sprintf("stats%d.xml", n))
	require.NoError(tb, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

// BenchmarkStatsPollPerDomain times one per-domain stats poll (list, then
// per domain DomainGetInfo, DomainGetCPUStats, DomainMemoryStats, one
// DomainBlockStats and one DomainInterfaceStats) of 1,000 and 10,000
// domains through a real libvirtd (test driver). Run with -benchtime=1x.
func BenchmarkStatsPollPerDomain(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			d := libvirtd.Start(b)
			uri := d.URI("test://" + writeStatsNode(b, d.Dir, n))
			ctx := context.Background()
			cl, err := Dial(ctx, uri, DialOptions{CallTimeout: 5 * time.Minute})
			require.NoError(b, err)
			defer cl.Close()
			cfg := testConfig()
			cfg.AddressSources = nil
			s := NewSource(ConnConfig{URI: uri}, cfg, nil)
			s.host = "bench"
			require.NoError(b, s.resync(ctx, cl)) // learns each domain's devices
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, err := s.pollPerDomain(ctx, cl)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != n || len(got[0].Disks) != 1 || len(got[0].NICs) != 1 {
					b.Fatalf("poll gave %d samples", len(got))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/domain")
		})
	}
}

// bulkDomains builds n domains with the figures of db-1 in
// testdata/libvirt/allstats-qemu.txt (2 disks, 2 vNICs, 70 typed params).
func bulkDomains(tb testing.TB, n int) []bulkDomain {
	tmpl := readBulkSpec(tb, fixtureDir+"allstats-qemu.txt")[0]
	out := make([]bulkDomain, n)
	for i := range out {
		out[i] = bulkDomain{name: fmt.Sprintf("vm-%05d", i), uuid: fmt.Sprintf("e0000000-0000-4000-8000-%012x", i), id: int32(i + 1), params: tmpl.params}
	}
	return out
}

// BenchmarkStatsBulk times one bulk poll from a recorded-format
// CONNECT_GET_ALL_DOMAIN_STATS reply of 1,000 and 10,000 domains, replayed
// by a fake daemon: the transfer, go-libvirt's XDR decoding and
// DecodeBulkRecord into samples.
func BenchmarkStatsBulk(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			body := encodeAllStatsRet(b, bulkDomains(b, n))
			s, cl := bulkSource(b, body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, complete, err := s.pollBulk(context.Background(), cl)
				if err != nil || !complete || len(got) != n {
					b.Fatal(err, complete, len(got))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/domain")
		})
	}
}
