#!/usr/bin/env bash
# Makes sure the controller's Docker Engine runs (it builds the app's images
# and holds them for delivery) and has the base image the example app is
# built on (mlctl-test/busybox:latest, made locally: no registry is
# reachable). Idempotent: a daemon that already answers on
# /var/run/docker.sock is used as it is. Machines with an init system
# normally run dockerd already; this starts it by hand when none does.
set -euo pipefail
cd "$(dirname "$0")/.."
sock=/var/run/docker.sock
pidfile=/run/mlctl-ctl-dockerd.pid
log=/var/log/mlctl-ctl-dockerd.log

ping() { curl -sf --max-time 2 --unix-socket "$sock" http://docker/_ping >/dev/null 2>&1; }

if ! ping; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "dockerd.sh: no Docker Engine on $sock and not root to start one" >&2
		exit 1
	fi
	echo "dockerd.sh: starting dockerd (log: $log)" >&2
	# at nice 10: on the simulated fleet the controller shares the
	# machine's cores with every VM, where a real one runs elsewhere; its
	# builds and image exports (a minute of both cores for some) must
	# not starve the VMs' load balancer and apps under test load
	nice -n 10 setsid dockerd --pidfile "$pidfile" -H "unix://$sock" >"$log" 2>&1 </dev/null &
	for _ in $(seq 1 120); do
		ping && break
		sleep 0.5
	done
	if ! ping; then
		echo "dockerd.sh: dockerd did not answer within 60s; its log:" >&2
		tail -20 "$log" >&2
		exit 1
	fi
fi

# the base image, built without a daemon by the fleet's image helper
. tests/fleet/lib/image.sh
if ! curl -sf --unix-socket "$sock" "http://docker/images/${FLEET_BUSYBOX_TAG/\//%2F}/json" >/dev/null; then
	tar=$(image_busybox_tar)
	curl -sf --unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' \
		--data-binary "@$tar" "http://docker/images/load?quiet=1" >/dev/null
fi
echo "dockerd.sh: controller Docker Engine ready on $sock" >&2
