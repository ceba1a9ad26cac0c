#!/usr/bin/env bash
# make bench-scale: the scale benchmarks at 200,000 active pairs among
# 10,000 VMs (windows synthesised in Go by internal/scalefx; no datagrams),
# printed as one table. Each is run once with a small fixed count.
# Then the end-to-end run (scripts/bench-e2e.sh: 1,000,000 sFlow samples/s
# from the synthetic cloud into a vmflow process) for BENCH_E2E_DURATION
# (default 10m; 0 skips it; BENCH_E2E_INFLUX=1 also writes to a local
# influxd), and with BENCH_INFLUX_LOAD=10m the InfluxDB load figure
# (TestInfluxLoad: 200,000 pairs per 10 s window into influxd, full vs
# lean vs lean+influx.window=60s points, each for that long).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
run() { go test -run XXX -count 1 -timeout 30m "$@" | tee -a "$out" >&2; }
run -bench 'BenchmarkMemoryHour200k$' -benchtime 1x ./store/
run -bench 'BenchmarkMemoryWrite200k$' -benchtime 10x ./store/
run -bench 'BenchmarkWindowClose200k$' -benchtime 10x ./aggregate/
run -bench 'BenchmarkScale200k' -benchtime 5x ./api/
echo
echo "| benchmark (200,000 active pairs, 10,000 VMs) | figure | allocs/op |"
echo "|---|---|---|"
awk '
/^Benchmark/ {
  name=$1; sub(/-[0-9]+$/, "", name)
  fig=""; allocs=""
  for (i=3; i<NF; i+=2) {
    u=$(i+1)
    if (u=="ns/op") fig=fig sprintf("%.1f ms/op ", $i/1e6)
    else if (u=="allocs/op") allocs=$i
    else if (u=="B/op" || u=="ms/req") { }
    else fig=fig $i " " u " "
  }
  printf "| %s | %s| %s |\n", name, fig, allocs
}' "$out"
if [ "${BENCH_E2E_DURATION:-10m}" != 0 ]; then
	scripts/bench-e2e.sh
fi
if [ -n "${BENCH_INFLUX_LOAD:-}" ]; then
	VMFLOW_INTEGRATION=1 VMFLOW_INFLUX_LOAD="$BENCH_INFLUX_LOAD" go test -count 1 -timeout 3h -run 'TestInfluxLoad$' -v ./store/influx/ 2>&1 |
		grep -E 'load_test.go|^(ok|FAIL|---)' | sed 's/^ *load_test.go:[0-9]*: /| influx load | /; s/$/ |/'
fi
