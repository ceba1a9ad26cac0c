// Command vmflow-blast replays captured sFlow/IPFIX/NetFlow datagrams to a
// collector over UDP with sendmmsg, at a set rate or as fast as possible,
// and prints what it sent as JSON.
//
//	vmflow-blast -pcap testdata/ovs-lab-1/ovs-sflow16.pcapng -port 6343 \
//	    -target 127.0.0.1:6343 -samples-per-s 1000000 -duration 10s
//
// IPFIX from four exporters (127.0.0.1-4), templates first, 200,000 flow
// records per second:
//
//	vmflow-blast -pcap testdata/ovs-lab-1/ovs-ipfix1.pcapng -port 4739 -ipfix \
//	    -target 127.0.0.1:4739 -sockets 4 -sources 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4 \
//	    -samples-per-s 200000 -duration 10s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmflow/vmflow/collector/blast"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vmflow-blast:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		pcap     = flag.String("pcap", "", "pcap or pcapng file to replay (UDP payloads)")
		port     = flag.Uint("port", 6343, "with -pcap: only UDP datagrams to this destination port (0: all)")
		dir      = flag.String("dir", "", "directory of raw datagram files to replay (instead of -pcap)")
		target   = flag.String("target", "127.0.0.1:6343", "destination host:port")
		rate     = flag.Float64("rate", 0, "datagrams per second over all sockets (0: as fast as possible)")
		srate    = flag.Float64("samples-per-s", 0, "pace by sFlow samples per second instead of -rate")
		duration = flag.Duration("duration", 0, "stop after this long")
		count    = flag.Uint64("count", 0, "stop after this many datagrams (with neither -count nor -duration: one pass)")
		sockets  = flag.Int("sockets", 1, "sending sockets (source ports); each gets its own sFlow sub-agent so sequences stay gap-free")
		batch    = flag.Int("batch", 64, "messages per sendmmsg call")
		rewrite  = flag.Bool("rewrite", true, "rewrite sFlow sequence numbers and uptime so the receiver sees no false gaps or restarts")
		gso      = flag.Bool("gso", false, "send equal-size datagrams with UDP GSO (less sender CPU; the receiver still gets single datagrams)")
		ipfix    = flag.Bool("ipfix", false, "IPFIX replay: each socket is an exporter that sends the template messages first, then loops over the data; sequence numbers and export times rewritten; -samples-per-s counts flow records")
		sources  = flag.String("sources", "", "comma-separated local addresses to send from, socket i from the i-th (mod count); e.g. 127.0.0.1,127.0.0.2 for two exporters")
	)
	flag.Parse()
	var payloads [][]byte
	var err error
	switch {
	case *pcap != "" && *dir != "":
		return errors.New("use -pcap or -dir, not both")
	case *pcap != "":
		if *port > 65535 {
			return fmt.Errorf("-port %d: must be 0-65535", *port)
		}
		payloads, err = blast.LoadPcap(*pcap, uint16(*port))
	case *dir != "":
		payloads, err = blast.LoadDir(*dir)
	default:
		return errors.New("-pcap or -dir is required")
	}
	if err != nil {
		return err
	}
	if *srate > 0 && !*ipfix {
		avg := blast.AvgSamples(payloads)
		if avg == 0 {
			return errors.New("-samples-per-s: the payloads hold no sFlow samples")
		}
		*rate = *srate / avg // reported only; the pace counts samples
	}
	if *rate < 0 || *sockets < 1 || *batch < 1 {
		return errors.New("-rate must be >= 0, -sockets and -batch >= 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var srcs []string
	if *sources != "" {
		srcs = strings.Split(*sources, ",")
	}
	res, err := blast.Run(ctx, blast.Config{
		Target: *target, Sockets: *sockets, Batch: *batch, Rate: *rate, SampleRate: *srate,
		Duration: *duration, Count: *count, RewriteSFlow: *rewrite && !*ipfix, GSO: *gso,
		RewriteIPFIX: *ipfix, Sources: srcs,
	}, payloads)
	if err != nil {
		return err
	}
	out := struct {
		blast.Result
		Payloads   int     `json:"payloads"`
		TargetRate float64 `json:"target_datagrams_per_s,omitempty"`
		Started    string  `json:"started"`
	}{res, len(payloads), *rate, time.Now().Add(-time.Duration(res.Seconds * float64(time.Second))).UTC().Format(time.RFC3339)}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
