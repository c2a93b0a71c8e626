#!/usr/bin/env bash
# bench/memory.sh [MB...]: peak memory of the controller and of the agent
# while an image with one weights layer of MB MiB (default 64 and 2048) is
# delivered cold to one simulated VM. The controller's figure is
# /usr/bin/time's maximum resident set of `mlctl deliver` (which reads the
# layer from Docker, compresses it once into its cache and streams it);
# the agent's is the largest VmHWM of the mlctl-agent processes on the VM,
# read from /proc every 100 ms while the delivery runs (the agent stores
# the blob and streams it into `docker load`). Both stream in fixed-size
# chunks, so neither should grow with the layer; 64 MiB is the budget.
#
# Environment: PREFIX (fleet prefix, default mlmem), SUBNET (default
# 10.77.34), DIR (default /tmp/mlctl-bench-PREFIX).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(64 2048)
PREFIX=${PREFIX:-mlmem}
SUBNET=${SUBNET:-10.77.34}
mlctl=$PWD/bin/mlctl
fleet=$PWD/tests/fleet/fleet
dir=${DIR:-/tmp/mlctl-bench-$PREFIX}
img=bench-memory-$PREFIX
repo=$(mktemp -d /tmp/mlctl-bench-repo.XXXXXX)
export MLCTL_LEDGER=$repo.ledger MLCTL_CACHE_DIR=$repo.cache
watcher=
cleanup() {
	[ -z "$watcher" ] || kill "$watcher" 2>/dev/null || true
	$fleet down --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$repo" "$repo.ledger"* "$repo.cache" "$repo.hwm"
	docker rmi -f $(docker images -q "$img") >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash scripts/dockerd.sh

git -C "$repo" -c init.defaultBranch=main init -q
cat >"$repo/Dockerfile" <<'DOCKERFILE'
FROM mlctl-test/busybox:latest
COPY weights.bin /model/weights.bin
CMD ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/model"]
DOCKERFILE

$fleet up --dir "$dir" --vms 1 --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
cp "$dir/inventory.yaml" "$repo/inventory.yaml"
commit() { # commit IMAGE: the playbook naming it
	printf 'app: bench-memory\nimage: %s\nport: 8000\ntargets: [web]\n' "$1" >"$repo/mlctl.yaml"
	git -C "$repo" add mlctl.yaml inventory.yaml
	git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid commit -qm "$1"
}
commit mlctl-test/busybox:latest
"$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" bootstrap >/dev/null
# the VM's network namespace: only its agents count (other fleets may run)
ns="net:[$(stat -L -c %i "/var/run/netns/$PREFIX-vm1")]"

agent_hwm() { # the largest VmHWM (KiB) of any mlctl-agent process, polled
	# until killed; written to $repo.hwm after each poll
	local max=0 p v
	while :; do
		for p in $(pgrep -x mlctl-agent || true); do
			[ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$ns" ] || continue
			v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
			[ -n "$v" ] && [ "$v" -gt "$max" ] && max=$v
		done
		echo "$max" >"$repo.hwm"
		sleep 0.1
	done
}

echo
echo "one VM, cold delivery of one weights layer; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo
echo "| weights MiB | deliver s | controller peak RSS MiB | agent peak RSS MiB |"
echo "|---|---|---|---|"
for mb in "${sizes[@]}"; do
	head -c $((mb << 20)) /dev/urandom >"$repo/weights.bin"
	docker build -q -t "$img:$mb" "$repo" >/dev/null 2>&1
	commit "$img:$mb"
	rm -f "$repo/weights.bin"
	$fleet exec --dir "$dir" vm1 -- sh -c 'docker rmi -f $(docker images -q "$1") >/dev/null 2>&1; rm -rf /var/lib/mlctl/blobs; true' sh "$img"
	rm -rf "$MLCTL_CACHE_DIR"
	agent_hwm &
	watcher=$!
	t0=$EPOCHREALTIME
	ctl=$(/usr/bin/time -f %M "$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" deliver 2>&1 >/dev/null | tail -1)
	t1=$EPOCHREALTIME
	sleep 0.3
	kill "$watcher"
	wait "$watcher" 2>/dev/null || true
	watcher=
	echo "| $mb | $(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }') | $(awk -v k="$ctl" 'BEGIN { printf "%.1f", k / 1024 }') | $(awk -v k="$(cat "$repo.hwm")" 'BEGIN { printf "%.1f", k / 1024 }') |"
	docker rmi -f "$img:$mb" >/dev/null 2>&1 || true
done
echo
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
