#!/usr/bin/env bash
# bench/faults.sh [--only soak|kill|faults]: the fault suite
# (tests/e2e/test_faults) with more rounds than the e2e run, on the Python
# example: MLCTL_SOAK_ROUNDS deploys and rollbacks (default 4, one of
# each step; bench/soak.sh runs 20), MLCTL_FAULT_KILLS kill -9 of the
# controller at random moments of a deploy, each followed by `mlctl
# recover` (default 10), then one of each other fault: kill -9 during an automatic rollback, an app VM's link down
# during a deploy, a full disk on one VM, an app VM's dockerd restarted in
# its batch, the LB VM's HAProxy killed during a deploy, a controller frozen
# past its lease while another deploys, two controllers deploying different
# commits at once. All under open-loop load through
# HAProxy at the highest rate from 200 requests/s down that the fleet holds
# first. Prints one markdown table row per step: requests sent, failed, and
# whether the fleet serves one model version, the one of the revision the
# ledger says. Uses the fleet in $MLCTL_FLEET_DIR when set, else starts its
# own (4 app VMs + 1 LB). ML_LOADGEN_TRACE=FILE lists every failed or slow
# request with its times.
set -euo pipefail
cd "$(dirname "$0")/.."
only=${2:-}
[ "${1:-}" = --only ] || only=
export MLCTL_SOAK_ROUNDS=${MLCTL_SOAK_ROUNDS:-4}
export MLCTL_FAULT_KILLS=${MLCTL_FAULT_KILLS:-10}
export ML_TEST_SLOW=1 # a benchmark runs the slow cases the suite skips
case $only in
soak) export ML_TEST_CASES='*soak' ;;
kill) export ML_TEST_CASES='*kill_during_deploy*' ;;
faults) export ML_TEST_CASES='*__fault_*' ;; # every one but soak and kill
'') ;;
*) echo "usage: bench/faults.sh [--only soak|kill|faults]" >&2; exit 2 ;;
esac
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
