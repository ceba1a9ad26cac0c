package collector

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With Inline (the IPFIX and NetFlow v9 default) the readers handle what
// they read, and the kernel steers every datagram of an exporter address to
// one socket: each exporter, whatever source ports it sends from, is
// handled by one reader in the order it sent, while the exporters spread
// over the sockets.
func TestInlineSteersExportersToOneReader(t *testing.T) {
	for _, p := range []Protocol{ProtoIPFIX, ProtoNetFlow9} {
		t.Run(p.String(), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SFlow.Listen, cfg.IPFIX.Listen, cfg.NetFlow9.Listen = "", "", ""
			lc := inlineListener("127.0.0.1:0")
			lc.Sockets, lc.ReadBuffer = 4, 8<<20
			if p == ProtoIPFIX {
				cfg.IPFIX = lc
			} else {
				cfg.NetFlow9 = lc
			}
			h := &orderHandler{seen: map[netip.Addr][]uint32{}, workers: map[netip.Addr]map[int]bool{}}
			c, err := New(cfg, h, prometheus.NewRegistry())
			require.NoError(t, err)
			require.NoError(t, c.Start(context.Background()))
			defer c.Stop()
			l := c.listeners[0]
			require.True(t, l.inline, "the steering program attaches on Linux")
			to := c.Addrs()[p][0].(*net.UDPAddr).AddrPort()

			// 8 exporters, each sending from 8 source ports in turn
			const exporters, ports, per = 8, 8, 50
			var conns [exporters][ports]*net.UDPConn
			for e := range exporters {
				for k := range ports {
					laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(e + 1)}), 0))
					conn, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(to))
					require.NoError(t, err)
					defer conn.Close()
					conns[e][k] = conn
				}
			}
			buf := make([]byte, 64)
			for i := range per * ports {
				for e := range exporters {
					binary.BigEndian.PutUint32(buf, uint32(i))
					_, err := conns[e][i%ports].Write(buf)
					require.NoError(t, err)
				}
			}
			require.Eventually(t, func() bool {
				return c.Stats()[p].Handled == exporters*ports*per
			}, 10*time.Second, 5*time.Millisecond)
			st := c.Stats()[p]
			assert.Zero(t, st.SocketDrops)
			assert.Zero(t, st.Queued, "nothing goes through the queue")

			h.mu.Lock()
			defer h.mu.Unlock()
			readers := map[int]bool{}
			for e := range exporters {
				a := netip.AddrFrom4([4]byte{127, 0, 1, byte(e + 1)})
				require.Len(t, h.workers[a], 1, "%s: all its datagrams on one reader", a)
				for id := range h.workers[a] {
					readers[id] = true
				}
				seq := h.seen[a]
				require.Len(t, seq, ports*per)
				for i, v := range seq {
					require.Equal(t, uint32(i), v, "%s: handled in the order sent", a)
				}
			}
			assert.GreaterOrEqual(t, len(readers), 2, "exporters spread over the readers: %v", readers)
		})
	}
}

// The steering program is valid classic BPF for any socket count.
func TestSteerProgramAssembles(t *testing.T) {
	for _, n := range []int{1, 2, 3, 16, 256} {
		raw, err := steerProgram(n)
		require.NoError(t, err, fmt.Sprint(n))
		assert.NotEmpty(t, raw)
	}
}
