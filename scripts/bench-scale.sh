#!/usr/bin/env bash
# make bench-scale: the scale benchmarks at 200,000 active pairs among
# 10,000 VMs (windows synthesised in Go by internal/scalefx; no datagrams),
# printed as one table. Each is run once with a small fixed count.
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
