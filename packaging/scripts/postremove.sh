#!/bin/sh
# vmflow postremove (deb: "remove" | "purge" | "upgrade" ...; rpm: 0 remove, 1 upgrade).
# On purge, deletes the state (/var/lib/vmflow: the InfluxDB spool). The
# vmflow user is kept, as Debian recommends (files it owned may remain).
set -e
case "$1" in
purge)
	rm -rf /var/lib/vmflow
	;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
