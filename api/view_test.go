package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmflow/vmflow/aggregate"
	"github.com/vmflow/vmflow/decoder"
	"github.com/vmflow/vmflow/enrich"
	"github.com/vmflow/vmflow/store"
)

// windowsOnly hides the memory store's fast paths (Scanner, Querier): the
// routes then read windows, as they do over InfluxDB history.
type windowsOnly struct{ r store.Reader }

func (w windowsOnly) Windows(ctx context.Context, from, to time.Time) ([]*aggregate.Window, error) {
	return w.r.Windows(ctx, from, to)
}

// TestConsoleFastPathSameAnswer: every console route answers the same
// from the memory store's scan as from whole windows, on the fixture (two
// protocols, IP endpoints, a VM seen under two names) and on a generated
// cloud with several windows.
func TestConsoleFastPathSameAnswer(t *testing.T) {
	routes := []string{
		"/api/v1/overview?since=1m", "/api/v1/overview?since=1m&group=protocol", "/api/v1/overview?since=1m&group=host",
		"/api/v1/overview?since=1m&source=sflow", "/api/v1/overview?since=1m&protocol=tcp", "/api/v1/overview?since=1m&port=443",
		"/api/v1/overview?since=1m&tenant=t1", "/api/v1/overview?since=1m&step=30s&top=1",
		"/api/v1/graph?since=1m", "/api/v1/graph?since=1m&level=group", "/api/v1/graph?since=1m&level=group&group=tenant&expand=t1",
		"/api/v1/graph?since=1m&metric=pps&top=2", "/api/v1/graph?since=1m&metric=flows&vm=web-1", "/api/v1/graph?since=1m&source=ipfix",
		"/api/v1/graph?since=1m&protocol=udp", "/api/v1/graph?since=1m&level=group&expand=hv1,hv2",
		"/api/v1/capacity?since=1m", "/api/v1/capacity?since=1m&kind=pair", "/api/v1/capacity?since=1m&kind=vm&vm=web-1",
		"/api/v1/capacity?since=1m&kind=pair&sort=peak&top=2", "/api/v1/capacity?since=1m&kind=pair&step=20s&sort=growth",
		"/api/v1/overview?since=1m&group=protocol&protocol=udp", "/api/v1/overview?since=1m&group=protocol&port=443&host=hv1",
		"/api/v1/overview?since=1m&group=host&protocol=tcp&port=442", "/api/v1/graph?since=1m&port=441&level=group",
		"/api/v1/capacity?since=1m&kind=pair&tenant=t2&protocol=tcp", "/api/v1/capacity?since=1m&kind=vm&port=443",
		"/api/v1/overview?since=45s&step=20s", "/api/v1/graph?since=25s&host=hv2&metric=pps",
	}
	fill := map[string]func(*store.Memory){
		"fixture": func(m *store.Memory) {
			for _, w := range fixtureWindows() {
				m.Write(w)
			}
		},
		"cloud": func(m *store.Memory) {
			for _, w := range cloudWindows(6, 300, 60) {
				m.Write(w)
			}
		},
	}
	for name, fn := range fill {
		t.Run(name, func(t *testing.T) {
			fast := newEnv(t, func(d *Deps, _ *Config) {
				m := store.NewMemory(store.DefaultMemoryConfig(), nil)
				fn(m)
				d.Store, d.Recent = m, m
			})
			slow := newEnv(t, func(d *Deps, _ *Config) {
				m := store.NewMemory(store.DefaultMemoryConfig(), nil)
				fn(m)
				d.Store, d.Recent = windowsOnly{m}, m
			})
			for _, u := range routes {
				a, ca := rawGet(t, fast, u)
				b, cb := rawGet(t, slow, u)
				require.Equal(t, 200, ca, "%s: %s", u, a)
				require.Equal(t, cb, ca, u)
				require.Greater(t, len(a), 300, u)
				assert.JSONEq(t, b, a, u)
			}
		})
	}
}

func rawGet(t *testing.T, e *testEnv, path string) (string, int) {
	t.Helper()
	resp, err := http.Get(e.ts.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(body, &v), "%s: %s", path, body)
	return string(body), resp.StatusCode
}

// cloudWindows: n 10 s windows ending at T+10s..T+n*10s, pairs among vms
// VMs (4 hosts, 3 tenants), some over IPFIX too, some to an external IP.
func cloudWindows(n, pairs, vms int) []*aggregate.Window {
	var out []*aggregate.Window
	name := func(i int) aggregate.Endpoint {
		return aggregate.Endpoint{VM: fmt.Sprintf("vm-%d", i), Host: fmt.Sprintf("hv%d", i%4), Tenant: fmt.Sprintf("t%d", i%3)}
	}
	for wi := 0; wi < n; wi++ {
		w := &aggregate.Window{Start: T.Add(time.Duration(wi) * 10 * time.Second), End: T.Add(time.Duration(wi+1) * 10 * time.Second)}
		for p := 0; p < pairs; p++ {
			if (p+wi)%5 == 0 {
				continue // silent this window
			}
			s, d := p%vms, (p*7+p/vms+1)%vms
			b := float64(1000 + (p*31+wi*17)%977)
			st := aggregate.Stats{Bytes: b, Packets: 10, Samples: 1, Flows: 1, TCPBytes: b * 0.75, TCPPackets: 7, UDPBytes: b * 0.25, UDPPackets: 3}
			st.TopPorts[0] = aggregate.PortCount{Proto: 6, Port: uint16(440 + p%5), Bytes: b * 0.5}
			src := aggregate.EndpointKey{VM: enrich.VMID(s + 1)}
			dst := aggregate.EndpointKey{VM: enrich.VMID(d + 1)}
			de := name(d)
			if p%11 == 0 {
				dst = aggregate.EndpointKey{IP: netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", p%200))}
				de = aggregate.Endpoint{IP: dst.IP.String()}
			}
			w.Pairs = append(w.Pairs, aggregate.Pair{Key: aggregate.PairKey{Src: src, Dst: dst, Source: decoder.SourceSFlow}, Src: name(s), Dst: de, Stats: st})
			if p%3 == 0 {
				st2 := st
				st2.Bytes *= 1.1
				w.Pairs = append(w.Pairs, aggregate.Pair{Key: aggregate.PairKey{Src: src, Dst: dst, Source: decoder.SourceIPFIX}, Src: name(s), Dst: de, Stats: st2})
			}
		}
		out = append(out, w)
	}
	return out
}

// TestSubjectCmp: comparing a pair's subject without building it orders
// like the built strings.
func TestSubjectCmp(t *testing.T) {
	names := []string{"", "a", "ab", "a b", "a →", "b", "vm-1", "vm-10", "vm-1 x", "é", "\x01"}
	for _, s1 := range names {
		for _, d1 := range names {
			for _, s2 := range names {
				for _, d2 := range names {
					a, b := [3]string{s1, pairSep, d1}, [3]string{s2 + pairSep + d2}
					want := 0
					if x, y := s1+pairSep+d1, s2+pairSep+d2; x < y {
						want = -1
					} else if x > y {
						want = 1
					}
					require.Equal(t, want, partsCmp(a, b), "%q %q / %q %q", s1, d1, s2, d2)
				}
			}
		}
	}
}
