#!/usr/bin/env bash
# Installs what vmflow's tests need, only when missing. Idempotent: on a
# machine that has everything it changes nothing and runs no network calls.
#
#   Debian packages (apt-get): Open vSwitch (userspace datapath lab), iperf3,
#   ethtool, iproute2, ping (traffic and ground truth), libvirt (inventory
#   tests), chromium (web UI tests), tshark (capture tooling).
#   prometheus-alertmanager, nmap, hping3 (alerts), nfdump (IPFIX comparison),
#   systemd (systemd-analyze verify of the units).
#   influxd 1.8.10 (go install): the InfluxDB store's integration tests.
#   mailpit 1.33.1 (go install): SMTP receiver for the alert tests.
#   victoria-metrics v1.151.0 (go install): the InfluxDB-compatible store check.
set -euo pipefail

log() { printf 'install-deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		log "not root and no sudo: cannot install packages"
	fi
fi

# package -> a file it installs (checked instead of dpkg state, so a binary
# that is present by other means also counts).
declare -A PKG_FILE=(
	[openvswitch-switch]=/usr/sbin/ovs-vswitchd
	[iperf3]=/usr/bin/iperf3
	[ethtool]=/usr/sbin/ethtool
	[iproute2]=/usr/sbin/ip
	[iputils-ping]=/usr/bin/ping
	[libvirt-daemon-system]=/usr/sbin/libvirtd
	[libvirt-clients]=/usr/bin/virsh
	[chromium]=/usr/bin/chromium
	[tshark]=/usr/bin/tshark
	[curl]=/usr/bin/curl
	[prometheus-alertmanager]=/usr/bin/prometheus-alertmanager
	[nmap]=/usr/bin/nmap
	[hping3]=/usr/sbin/hping3
	[nfdump]=/usr/bin/nfcapd
	[systemd]=/usr/bin/systemd-analyze
)

missing=()
for pkg in "${!PKG_FILE[@]}"; do
	f="${PKG_FILE[$pkg]}"
	if [ -x "$f" ] && dpkg -s "$pkg" >/dev/null 2>&1; then
		continue
	fi
	missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture; answer no.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q "${missing[@]}"
	# With recommends, as on the machines the tests were verified on (the
	# libvirt qemu driver, fonts for chromium). The Debian package starts the system OVS daemons on install where it
	# can; the tests start their own private ones and need nothing else.
else
	log "Debian packages: all present"
fi

GOBIN_DIR="$(go env GOBIN)"
if [ -z "$GOBIN_DIR" ]; then
	GOBIN_DIR="$(go env GOPATH)/bin"
fi
if [ -x "$GOBIN_DIR/influxd" ]; then
	log "influxd: present at $GOBIN_DIR/influxd"
else
	log "building influxd 1.8.10 with go install (takes a few minutes on a fresh module cache)"
	# Build in a temp dir so the project's go.mod is not touched.
	(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)
	log "influxd: installed at $GOBIN_DIR/influxd"
fi

# mailpit: a real SMTP server with an HTTP API (alert delivery tests).
if [ -x "$GOBIN_DIR/mailpit" ]; then
	log "mailpit: present at $GOBIN_DIR/mailpit"
else
	log "building mailpit v1.33.1 with go install"
	(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go install github.com/axllent/mailpit@v1.33.1)
	log "mailpit: installed at $GOBIN_DIR/mailpit"
fi

# victoria-metrics: single-node VictoriaMetrics, an InfluxDB line-protocol
# compatible store (store/influx's compatibility test; README "Beyond one InfluxDB").
if [ -x "$GOBIN_DIR/victoria-metrics" ]; then
	log "victoria-metrics: present at $GOBIN_DIR/victoria-metrics"
else
	log "building victoria-metrics v1.151.0 with go install"
	(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@v1.151.0)
	log "victoria-metrics: installed at $GOBIN_DIR/victoria-metrics"
fi
