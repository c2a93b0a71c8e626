#!/usr/bin/env bash
# bench/soak.sh [ROUNDS]: deploys and rollbacks in a row (default 20: a new
# model, a rollback, a health check the app fails and that is rolled back
# automatically, the right check again, ...) on a simulated fleet of 4 app
# VMs behind one HAProxy VM, each under open-loop load of 200 requests/s
# with a new connection per request. Prints a markdown table: requests sent
# and failed per step, and whether the fleet serves the revision the ledger
# says. Uses the fleet in $MLCTL_FLEET_DIR when set, else starts one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
export MLCTL_SOAK_ROUNDS=$ROUNDS MLCTL_FAULT_KILLS=0
exec bash bench/faults.sh --only soak
