#!/usr/bin/env bash
# Point one Open vSwitch bridge at vmflow: sFlow and IPFIX.
#
#   configs/ovs/setup-sflow-ipfix.sh [BRIDGE] [COLLECTOR_IP] [AGENT]
#   configs/ovs/setup-sflow-ipfix.sh --remove [BRIDGE]
#
# Run it on every hypervisor, as root, for every bridge that carries VM
# traffic (e.g. br-int). Environment overrides:
#   SFLOW_PORT (6343)  IPFIX_PORT (4739)  SFLOW_SAMPLING (64)  IPFIX_SAMPLING (1)
#   SFLOW_POLLING (10) SFLOW_HEADER (128) OBS_DOMAIN_ID (1)    OBS_POINT_ID (1)
#   IPFIX_ACTIVE_TIMEOUT (10)  IPFIX_MAX_FLOWS (10000)  ENABLE_SFLOW (1)  ENABLE_IPFIX (1)
#
# What vmflow needs to know about this hypervisor (configs/inventory.yaml,
# hosts[].exporters): the sFlow agent address (AGENT's IP, or the address
# given) and the address the IPFIX datagrams come from (this host's address
# on the route to COLLECTOR_IP). One address for both is simplest: use this
# host's management address as AGENT.
#
# IPFIX from OVS carries no sampling rate. If you set IPFIX_SAMPLING above 1,
# tell vmflow the rate for this exporter (decoder.flow config) or its
# byte and packet estimates will be 1/N of the truth.
#
# Choosing: sFlow samples packets (1-in-N) and is cheap at any rate; IPFIX
# with sampling=1 counts every packet exactly but costs OVS a flow cache.
# vmflow keeps the two apart (a pair is reported per protocol), so enabling
# both never double counts.
set -euo pipefail

if [ "${1:-}" = "--remove" ]; then
	BR="${2:-br0}"
	ovs-vsctl clear bridge "$BR" sflow ipfix
	echo "removed sFlow and IPFIX from $BR"
	exit 0
fi

BR="${1:-br0}"
COLLECTOR="${2:-127.0.0.1}"
AGENT="${3:-$(ip -o route get "$COLLECTOR" 2>/dev/null | sed -n 's/.* src \([^ ]*\).*/\1/p')}"
AGENT="${AGENT:-lo}"

SFLOW_PORT="${SFLOW_PORT:-6343}"
IPFIX_PORT="${IPFIX_PORT:-4739}"
SFLOW_SAMPLING="${SFLOW_SAMPLING:-64}"
SFLOW_POLLING="${SFLOW_POLLING:-10}"
SFLOW_HEADER="${SFLOW_HEADER:-128}"
IPFIX_SAMPLING="${IPFIX_SAMPLING:-1}"
OBS_DOMAIN_ID="${OBS_DOMAIN_ID:-1}"
OBS_POINT_ID="${OBS_POINT_ID:-1}"
IPFIX_ACTIVE_TIMEOUT="${IPFIX_ACTIVE_TIMEOUT:-10}"
IPFIX_MAX_FLOWS="${IPFIX_MAX_FLOWS:-10000}"

if [ "${ENABLE_SFLOW:-1}" = "1" ]; then
	# sFlow v5: 1-in-SFLOW_SAMPLING packets at bridge ingress, the first
	# SFLOW_HEADER bytes of each (128 covers Ethernet + VLAN + IPv6 + TCP, and
	# a VXLAN/Geneve inner header), interface counters every SFLOW_POLLING s.
	# agent= is an IP address or an interface name whose address OVS uses.
	ovs-vsctl -- --id=@s create sflow \
		agent="$AGENT" \
		target="\"$COLLECTOR:$SFLOW_PORT\"" \
		header="$SFLOW_HEADER" \
		sampling="$SFLOW_SAMPLING" \
		polling="$SFLOW_POLLING" \
		-- set bridge "$BR" sflow=@s
	echo "sFlow: $BR -> $COLLECTOR:$SFLOW_PORT (agent $AGENT, 1-in-$SFLOW_SAMPLING)"
fi

if [ "${ENABLE_IPFIX:-1}" = "1" ]; then
	# IPFIX (per-bridge): flow records every IPFIX_ACTIVE_TIMEOUT s for
	# long-lived flows; obs_domain_id tells bridges that share an exporter
	# address apart.
	ovs-vsctl -- set bridge "$BR" ipfix=@i \
		-- --id=@i create IPFIX \
		targets="\"$COLLECTOR:$IPFIX_PORT\"" \
		sampling="$IPFIX_SAMPLING" \
		obs_domain_id="$OBS_DOMAIN_ID" \
		obs_point_id="$OBS_POINT_ID" \
		cache_active_timeout="$IPFIX_ACTIVE_TIMEOUT" \
		cache_max_flows="$IPFIX_MAX_FLOWS"
	echo "IPFIX: $BR -> $COLLECTOR:$IPFIX_PORT (domain $OBS_DOMAIN_ID, 1-in-$IPFIX_SAMPLING)"
fi

# Check: ovs-vsctl list sflow; ovs-vsctl list ipfix
# and in vmflow: curl -s http://127.0.0.1:8080/api/v1/exporters
