#!/bin/sh
# vmflow preremove (deb: "remove" | "upgrade" ...; rpm: 0 remove, 1 upgrade).
# Stops and disables the units on removal (not on upgrade).
set -e
case "$1" in
remove|0)
	if [ -d /run/systemd/system ]; then
		systemctl stop vmflow.service vmflow-probe.service >/dev/null 2>&1 || true
	fi
	systemctl disable vmflow.service vmflow-probe.service >/dev/null 2>&1 || true
	;;
esac
exit 0
