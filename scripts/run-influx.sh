#!/usr/bin/env bash
# make run-influx: start a private InfluxDB 1.8 (data in .run/influxd) on
# 127.0.0.1:8086 unless one already answers there, create vmflow's database,
# retention policies and rollups (`vmflow influx setup`), then run vmflow
# with configs/vmflow-influx.yaml. Ctrl-C stops vmflow and the influxd it
# started.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG="${CONFIG:-configs/vmflow-influx.yaml}"
BIN="${BIN:-bin/vmflow}"
INFLUX_HTTP="${INFLUX_HTTP:-127.0.0.1:8086}"
INFLUX_RPC="${INFLUX_RPC:-127.0.0.1:8088}"
DIR="$PWD/.run/influxd"

INFLUXD="$(command -v influxd || true)"
if [ -z "$INFLUXD" ] && [ -x "$(go env GOPATH)/bin/influxd" ]; then
	INFLUXD="$(go env GOPATH)/bin/influxd"
fi

pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

if curl -fsS "http://$INFLUX_HTTP/ping" >/dev/null 2>&1; then
	echo "run-influx: using the InfluxDB already at $INFLUX_HTTP"
else
	if [ -z "$INFLUXD" ]; then
		echo "run-influx: influxd not found; run scripts/install-deps.sh" >&2
		exit 1
	fi
	mkdir -p "$DIR"
	cat > "$DIR/influxd.conf" <<CONF
reporting-disabled = true
bind-address = "$INFLUX_RPC"
[meta]
  dir = "$DIR/meta"
[data]
  dir = "$DIR/data"
  wal-dir = "$DIR/wal"
  query-log-enabled = false
[http]
  bind-address = "$INFLUX_HTTP"
  flux-enabled = true
  log-enabled = false
CONF
	"$INFLUXD" -config "$DIR/influxd.conf" > "$DIR/influxd.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		curl -fsS "http://$INFLUX_HTTP/ping" >/dev/null 2>&1 && break
		kill -0 "$pid" 2>/dev/null || { cat "$DIR/influxd.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "run-influx: influxd on $INFLUX_HTTP (data in $DIR, log $DIR/influxd.log)"
fi

"$BIN" influx setup --config "$CONFIG"
"$BIN" --config "$CONFIG"
