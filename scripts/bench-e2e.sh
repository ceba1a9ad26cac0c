#!/usr/bin/env bash
# The end-to-end scale run (issue 12, "What it must show" 1 and 3): the
# synthetic cloud (vmflow synth --preset scale: 10,000 VMs on 500
# hypervisors, 200,000 active directed pairs, heavy-tailed, real sFlow v5
# datagrams over loopback from 500 agent addresses) at RATE flow samples/s
# into a separate vmflow process (default config, 10 s windows, one hour of
# memory retention) for DURATION; optionally also writing to a local influxd
# (BENCH_E2E_INFLUX=1). Prints one table: samples sent and aggregated,
# loss, window close p99 and max (from vmflow_aggregate_window_close_seconds
# and its phases), vmflow RSS (now and peak), every non-zero drop counter,
# and with InfluxDB: points written, spool, bytes/point, influxd CPU/point.
#
#   BENCH_E2E_DURATION=10m (default)   BENCH_E2E_RATE=1000000
#   BENCH_E2E_INFLUX=0|1               BENCH_E2E_INFLUX_WINDOW=0s (influx.window)
#   BENCH_E2E_PPROF=DIR  build vmflow with -tags pprof and save heap
#                        profiles (heap-*.pb.gz, go tool pprof) into DIR
#
# The figures are only meaningful on a quiet machine: the generator and
# vmflow share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_E2E_DURATION:-10m}
RATE=${BENCH_E2E_RATE:-1000000}
INFLUX=${BENCH_E2E_INFLUX:-0}
IWIN=${BENCH_E2E_INFLUX_WINDOW:-0s}
D=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT
log() { printf 'bench-e2e: %s\n' "$*" >&2; }

PPROF_DIR=${BENCH_E2E_PPROF:-}
if [ -n "$PPROF_DIR" ]; then
	mkdir -p "$PPROF_DIR"
	go build -tags pprof -o "$D/vmflow" ./cmd/vmflow
else
	go build -o "$D/vmflow" ./cmd/vmflow
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SFLOW_PORT=$(free_port)
API_PORT=$(free_port)
PPROF_PORT=$(free_port)
"$D/vmflow" synth --preset scale --inventory-out "$D/inv.yaml" --inventory-only >/dev/null 2>&1

env_influx=()
if [ "$INFLUX" = 1 ]; then
	INFLUXD=$(command -v influxd || echo "$(go env GOPATH)/bin/influxd")
	IPORT=$(free_port)
	mkdir -p "$D/influx"
	cat >"$D/influx/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$(free_port)"
[meta]
  dir = "$D/influx/meta"
[data]
  dir = "$D/influx/data"
  wal-dir = "$D/influx/wal"
  cache-max-memory-size = "2g"
[http]
  bind-address = "127.0.0.1:$IPORT"
  flux-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
CONF
	"$INFLUXD" run -config "$D/influx/influxdb.conf" >"$D/influxd.log" 2>&1 &
	pids+=($!)
	INFLUXD_PID=$!
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$IPORT/ping" >/dev/null && break; sleep 0.2; done
	curl -sf -XPOST "http://127.0.0.1:$IPORT/query" --data-urlencode 'q=CREATE DATABASE vmflow' >/dev/null
	env_influx=(VMFLOW_INFLUX_ENABLED=true VMFLOW_INFLUX_URL="http://127.0.0.1:$IPORT"
		VMFLOW_INFLUX_SPOOL_DIR="$D/spool" VMFLOW_INFLUX_WINDOW="$IWIN")
fi

env VMFLOW_COLLECTOR_SFLOW_LISTEN="127.0.0.1:$SFLOW_PORT" VMFLOW_COLLECTOR_IPFIX_LISTEN= VMFLOW_COLLECTOR_NETFLOW9_LISTEN= \
	VMFLOW_API_LISTEN="127.0.0.1:$API_PORT" VMFLOW_ENRICH_STATIC_FILE="$D/inv.yaml" VMFLOW_ENRICH_STATIC_RELOAD=0s \
	VMFLOW_ALERT_ENABLED=false VMFLOW_LOG_LEVEL=warn PPROF_LISTEN="${PPROF_DIR:+127.0.0.1:$PPROF_PORT}" "${env_influx[@]}" \
	"$D/vmflow" >"$D/vmflow.log" 2>&1 &
pids+=($!)
VMFLOW_PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$API_PORT/api/v1/health" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$API_PORT/api/v1/health" >/dev/null || { log "vmflow did not start:"; cat "$D/vmflow.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
[ "$INFLUX" = 1 ] && I_CPU0=$(cpu_ticks "$INFLUXD_PID")
V_CPU0=$(cpu_ticks "$VMFLOW_PID")
log "sending $RATE sFlow samples/s for $DUR (200,000 pairs, 10,000 VMs) to 127.0.0.1:$SFLOW_PORT"
T0=$(date +%s.%N)
"$D/vmflow" synth --preset scale --rate "$RATE" --sflow "127.0.0.1:$SFLOW_PORT" --ipfix "" --duration "$DUR" --stats 0 \
	>"$D/synth.json" 2>"$D/synth.log" &
SYNTH_PID=$!
pids+=($SYNTH_PID)
# API timings under load, at 80% of the run (at least 2 windows in).
AT=$(python3 -c 'import re,sys; d=sys.argv[1]; s=sum(float(n)*{"h":3600,"m":60,"s":1,"ms":.001}[u] for n,u in re.findall(r"([0-9.]+)(ms|h|m|s)", d)); print(max(25, 0.8*s))' "$DUR")
sleep "$AT"
heap() { [ -z "$PPROF_DIR" ] || curl -sf -o "$PPROF_DIR/heap-$1.pb.gz" "http://127.0.0.1:$PPROF_PORT/debug/pprof/heap?gc=1" || log "heap profile $1 failed"; }
heap load
# (with BENCH_E2E_INFLUX=1, ranges reaching before vmflow's start are read
# from InfluxDB: history, not the memory store)
api() { curl -s --max-time 120 -o /dev/null -w "GET $1 %{http_code} %{time_total}s\n" "http://127.0.0.1:$API_PORT$1" || echo "GET $1 failed"; }
TOP=$(curl -s "http://127.0.0.1:$API_PORT/api/v1/pairs?since=1m&limit=1" | python3 -c 'import json,sys; p=json.load(sys.stdin)["pairs"][0]; print(p["src"]["vm"] + "/" + p["dst"]["vm"])' 2>/dev/null || true)
TIMING=$(
	api "/api/v1/pairs?since=1h&limit=50"
	api "/api/v1/pairs?since=5m&limit=50"
	[ -n "$TOP" ] && api "/api/v1/pairs/$TOP/series?since=1h"
	api "/api/v1/overview?since=1h"
	api "/api/v1/graph?since=5m"
	api "/api/v1/capacity?since=1h"
)
wait "$SYNTH_PID"
T1=$(date +%s.%N)
RSS_END=$(awk '/VmRSS/{print $2}' "/proc/$VMFLOW_PID/status")
RSS_PEAK=$(awk '/VmHWM/{print $2}' "/proc/$VMFLOW_PID/status")
curl -sf "http://127.0.0.1:$API_PORT/metrics" | awk '/^vmflow_aggregate_window_pairs /{print $2}' >"$D/pairs"
sleep 25 # the last windows close (10 s) and are written
heap end
curl -sf "http://127.0.0.1:$API_PORT/metrics" >"$D/metrics"
V_CPU1=$(cpu_ticks "$VMFLOW_PID")
if [ "$INFLUX" = 1 ]; then
	for _ in $(seq 60); do
		pend=$(awk '/^vmflow_influx_spool_pending_points /{print $2}' "$D/metrics")
		q=$(awk '/^vmflow_influx_queue_windows /{print $2}' "$D/metrics")
		[ "${pend:-0}" = 0 ] && [ "${q:-0}" = 0 ] && break
		sleep 2
		curl -sf "http://127.0.0.1:$API_PORT/metrics" >"$D/metrics"
	done
	I_CPU1=$(cpu_ticks "$INFLUXD_PID")
fi
TCK=$(getconf CLK_TCK)

python3 - "$D" "$RATE" "$DUR" "$T0" "$T1" "$RSS_END" "$RSS_PEAK" "$V_CPU0" "$V_CPU1" "$TCK" "$INFLUX" "${I_CPU0:-0}" "${I_CPU1:-0}" "$IWIN" <<'PY'
import json, re, sys
d, rate, dur, t0, t1, rss, peak, v0, v1, tck, influx, i0, i1, iwin = sys.argv[1:]
secs = float(t1) - float(t0)
st = json.loads(open(d + "/synth.json").read().strip().splitlines()[-1])
m = {}
for l in open(d + "/metrics"):
    if l.startswith("#") or not l.strip():
        continue
    k, v = l.rsplit(" ", 1)
    m[k] = float(v)
def get(name, **lab):
    tot = 0.0
    for k, v in m.items():
        n = k.split("{")[0]
        if n != name:
            continue
        if all(f'{a}="{b}"' in k for a, b in lab.items()):
            tot += v
    return tot
def quantile(name, q, **lab):
    bs = []
    for k, v in m.items():
        if k.startswith(name + "_bucket") and all(f'{a}="{b}"' in k for a, b in lab.items()):
            le = re.search(r'le="([^"]+)"', k).group(1)
            bs.append((float("inf") if le == "+Inf" else float(le), v))
    bs.sort()
    if not bs or bs[-1][1] == 0:
        return None, None, 0
    n = bs[-1][1]
    rank, prev_le, prev_c = q * n, 0.0, 0.0
    qv = None
    for le, c in bs:
        if c >= rank:
            qv = le if le == float("inf") else prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
            break
        prev_le, prev_c = le, c
    mx = next(le for le, c in bs if c >= n)
    return qv, mx, n
sent = st["flow_samples"]
got = get("vmflow_aggregate_records_total")
dec = get("vmflow_collector_samples_total", protocol="sflow") - st.get("counter_samples", 0)
print()
print(f"| end-to-end, {rate} sFlow samples/s target, {dur} (measured {secs:.0f} s), 200,000 pairs, 10,000 VMs | figure |")
print("|---|---|")
print(f"| flow samples sent (generator) | {sent:,.0f} ({sent/secs:,.0f}/s; behind schedule {st.get('behind',0):,}) |")
print(f"| flow records aggregated | {got:,.0f} |")
print(f"| loss (1 - aggregated/sent) | {100*(1-got/sent) if sent else 0:.4f}% |")
for ph in [None, "merge", "sort", "fill", "sinks"]:
    if ph is None:
        qv, mx, n = quantile("vmflow_aggregate_window_close_seconds", 0.99)
        label = "window close"
    else:
        qv, mx, n = quantile("vmflow_aggregate_window_close_phase_seconds", 0.99, phase=ph)
        label = f"  phase {ph}"
    if qv is not None:
        print(f"| {label} p99 / max bucket ({n:.0f} windows) | {1000*qv:.0f} ms / ≤ {1000*mx:.0f} ms |")
print(f"| pairs in the last window before the end | {float(open(d + '/pairs').read() or 0):,.0f} |")
print(f"| vmflow RSS at the end / peak | {int(rss)/1024:,.0f} MB / {int(peak)/1024:,.0f} MB |")
print(f"| vmflow CPU | {(int(v1)-int(v0))/int(tck)/secs:.2f} cores |")
drops = []
for k, v in sorted(m.items()):
    n = k.split("{")[0]
    if v and re.search(r"drop|lost|overflow|error|untracked|suppressed|unknown|missing|rejected|fallback", n) and "unknown_endpoints" not in n and not n.endswith(("_bucket", "_sum", "_count")):
        drops.append(f"{k}={v:,.0f}")
print(f"| non-zero drop/loss/error counters | {'; '.join(drops) if drops else 'none'} |")
print(f"| endpoints that are no VM (the cloud's external peers, by design) | {get('vmflow_aggregate_unknown_endpoints_total'):,.0f} |")
if influx == "1":
    w = get("vmflow_influx_points_written_total")
    print(f"| InfluxDB points written (influx.window={iwin}) | {w:,.0f} ({w/secs:,.0f}/s) |")
    print(f"| spool pending / dropped points | {get('vmflow_influx_spool_pending_points'):,.0f} / {get('vmflow_influx_spool_dropped_points_total'):,.0f} |")
    print(f"| queue overflows (windows) | {get('vmflow_influx_queue_overflow_windows_total'):,.0f} |")
    ic = (int(i1) - int(i0)) / int(tck)
    print(f"| influxd CPU | {ic/secs:.2f} cores, {1e6*ic/w if w else 0:.1f} µs/point |")
PY
echo "$TIMING" | sed 's/^/| under load: /; s/ \([0-9.]*s\)$/ | \1 |/'
