#!/usr/bin/env bash
# bench/status.sh [N]: wall time of `mlctl status` on a simulated fleet of N
# app VMs plus a load balancer (default 16), next to N parallel
# `ssh HOST true` (OpenSSH, one connection each) on the same fleet, and
# mlctl's peak RSS. Prints a markdown table. RUNS=5 by default; the median
# is reported with min and max.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-16}
RUNS=${RUNS:-5}
dir=${BENCH_FLEET_DIR:-/tmp/mlctl-bench-fleet}
mlctl=$PWD/bin/mlctl

tests/fleet/fleet up --dir "$dir" --vms "$N" --lb --prefix mlb --subnet 10.78.0 >/dev/null
repo=$(mktemp -d /tmp/mlctl-bench-repo.XXXXXX)
cleanup() {
	tests/fleet/fleet down --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$repo" "$repo.ledger"
}
trap cleanup EXIT
cp playbooks/example.yaml "$repo/mlctl.yaml"
cp "$dir/inventory.yaml" "$repo/inventory.yaml"
git -C "$repo" -c init.defaultBranch=main init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid commit -qm bench
export MLCTL_LEDGER=$repo.ledger
run_mlctl() { "$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" "$@"; }
run_mlctl bootstrap >/dev/null

mapfile -t addrs < <(sed -n 's/^ *address: *//p' "$dir/inventory.yaml")
ssh_all() {
	local a
	for a in "${addrs[@]}"; do
		ssh -n -i "$dir/id_ed25519" -F none -o BatchMode=yes \
			-o UserKnownHostsFile="$dir/known_hosts" \
			-o StrictHostKeyChecking=yes "root@$a" true &
	done
	wait
}

# median min max of the numbers on stdin (milliseconds)
stats() { sort -n | awk '{ v[NR] = $1 } END {
	printf "%d | %d | %d", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
ms() { echo $(( ${1/./} / 1000 )); }

measure() { # measure CMD...: RUNS wall times in ms, one a line
	local i t0 t1
	for ((i = 0; i < RUNS; i++)); do
		t0=$EPOCHREALTIME
		"$@" >/dev/null 2>&1
		t1=$EPOCHREALTIME
		echo $(( $(ms "$t1") - $(ms "$t0") ))
	done
}

status_ms=$(measure run_mlctl status | stats)
ssh_ms=$(measure ssh_all | stats)
rss=$(/usr/bin/time -f %M "$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" status 2>&1 >/dev/null | tail -1)
hosts=$((N + 1))

echo
echo "status on $N app VMs + 1 LB ($hosts hosts), $RUNS runs, $(nproc) cores"
echo
echo "| what | median ms | min ms | max ms |"
echo "|---|---|---|---|"
echo "| \`mlctl status\` (connect, agent hello, list + inspect per host) | $status_ms |"
echo "| $hosts parallel \`ssh HOST true\` (OpenSSH) | $ssh_ms |"
echo
echo "mlctl status peak RSS: $((rss / 1024)) MiB"
