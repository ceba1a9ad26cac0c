#!/bin/sh
# vmflow postinstall (deb: "configure" [old-version]; rpm: 1 install, 2 upgrade).
# Creates the vmflow system user, gives it its state directory and read
# access to the configuration, and restarts a running vmflow on upgrade.
set -e

upgrade=0
case "$1" in
configure) [ -n "$2" ] && upgrade=1 ;;
2) upgrade=1 ;;
esac

if ! getent group vmflow >/dev/null 2>&1; then
	groupadd --system vmflow
fi
if ! getent passwd vmflow >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	useradd --system --gid vmflow --home-dir /var/lib/vmflow --no-create-home \
		--shell "$nologin" --comment "vmflow collector" vmflow
fi

mkdir -p /var/lib/vmflow
chown vmflow:vmflow /var/lib/vmflow
chmod 0750 /var/lib/vmflow
for f in /etc/vmflow/vmflow.yaml /etc/vmflow/inventory.yaml; do
	[ -e "$f" ] && chgrp vmflow "$f" || true
done

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$upgrade" = 1 ]; then
		systemctl try-restart vmflow.service >/dev/null 2>&1 || true
	else
		echo "vmflow: installed. Edit /etc/vmflow/vmflow.yaml, then: systemctl enable --now vmflow"
	fi
fi
exit 0
