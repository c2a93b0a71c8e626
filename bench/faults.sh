#!/usr/bin/env bash
# bench/faults.sh [--only soak|kill]: the fault suite (tests/e2e/test_faults)
# with more rounds than the e2e run: MLCTL_SOAK_ROUNDS deploys and
# rollbacks (default 8) and MLCTL_FAULT_KILLS kill -9 of the controller at
# random moments of a deploy, each followed by `mlctl recover` (default
# 10), all under open-loop load of 200 requests/s through HAProxy. Prints
# one markdown table row per step: requests sent, failed, and whether the
# fleet serves one revision, the one the ledger says. Uses the fleet in
# $MLCTL_FLEET_DIR when set, else starts its own (4 app VMs + 1 LB).
set -euo pipefail
cd "$(dirname "$0")/.."
only=${2:-}
[ "${1:-}" = --only ] || only=
export MLCTL_SOAK_ROUNDS=${MLCTL_SOAK_ROUNDS:-8}
export MLCTL_FAULT_KILLS=${MLCTL_FAULT_KILLS:-10}
[ "$only" = soak ] && export MLCTL_FAULT_KILLS=0
[ "$only" = kill ] && export MLCTL_SOAK_ROUNDS=0
make -s -j2 all e2e-bins >/dev/null
bash scripts/dockerd.sh
dir=${MLCTL_FLEET_DIR:-}
if [ -z "$dir" ]; then
	dir=/tmp/mlctl-bench-faults
	trap 'tests/fleet/fleet down --dir "$dir" >/dev/null 2>&1 || true' EXIT
	tests/fleet/fleet up --dir "$dir" --vms 4 --lb --prefix mlz \
		--subnet 10.74.0 >/dev/null
fi
t0=$SECONDS
echo "$(nproc) cores; 4 app VMs + 1 HAProxy VM"
MLCTL_FLEET_DIR=$dir MLCTL_SRC=$PWD MLCTL_BIN=$PWD/bin/mlctl \
	build/tests/e2e/test_faults 2>/dev/null | grep -E '^(\||$|[a-z])' |
	grep -v '^\[' || true
echo
echo "took $((SECONDS - t0)) s"
