#!/usr/bin/env bash
# bench/deploy.sh [N]: how long deploy and rollback take on a simulated
# fleet of N app VMs (default 16) behind one HAProxy VM, with the example
# model API (examples/iris: scikit-learn behind FastAPI on mlctl's base
# image, its Dockerfile written by `mlctl init`) and the playbook's rolling
# policy of BATCH hosts at a time (default 25%). Rows: first deploy
# (build, cold delivery of the base and the app, start everywhere), a
# retrained model (the weights layer only), a code-only change, rollback
# to the first, and a deploy with nothing to do. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-16}
BATCH=${BATCH:-25%}
mlctl=$PWD/bin/mlctl
fleet=tests/fleet/fleet
dir=/tmp/mlctl-bench-deploy
repo=$(mktemp -d /tmp/mlctl-bench-repo.XXXXXX)
export MLCTL_LEDGER=$repo.ledger MLCTL_CACHE_DIR=$repo.cache
cleanup() {
	$fleet down --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$repo" "$repo.ledger"* "$repo.cache"
}
trap cleanup EXIT
bash scripts/dockerd.sh
$fleet up --dir "$dir" --vms "$N" --lb --prefix mly --subnet 10.73.0 >/dev/null

"$mlctl" image base >/dev/null
cp examples/iris/app.py examples/iris/requirements.txt "$repo/"
cp -r examples/iris/model "$repo/"
cp "$dir/inventory.yaml" "$repo/inventory.yaml"
gitc() { git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid "$@"; }
git -C "$repo" -c init.defaultBranch=main init -q
"$mlctl" -C "$repo" init --name bench-deploy >/dev/null
cat >"$repo/mlctl.yaml" <<PLAYBOOK
app: bench-deploy
image: {build: {context: .}}
port: 8000
health: {path: /healthz, interval: 1s, timeout: 1s, start_period: 30s, expect_status: [200]}
targets: [web]
rollout: {batch: "$BATCH", drain_timeout: 5s}
load_balancer: {hosts: [lb], listen: 80}
PLAYBOOK
gitc add -A
gitc commit -qm v1
m() { "$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" "$@"; }
m bootstrap >/dev/null

timed() { # timed LABEL CMD...
	local label=$1 t0 t1
	shift
	t0=$EPOCHREALTIME
	"$@" >/dev/null
	t1=$EPOCHREALTIME
	printf '| %s | %s |\n' "$label" "$(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')"
}

echo
echo "$N app VMs + 1 HAProxy VM, the Python example, batches of $BATCH, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| step | seconds |"
echo "|---|---|"
timed "first deploy (build, deliver, start)" m deploy
sed -i 's/"version": "v1"/"version": "v2"/' "$repo/model/meta.json"
gitc commit -qam "retrained: v2"
timed "deploy of a retrained model (weights layer)" m deploy
echo "# a code-only change" >>"$repo/app.py"
gitc commit -qam "code only"
timed "deploy of a code-only change" m deploy
timed "rollback to revision 1" m rollback 1
timed "deploy with nothing to do" m deploy --commit HEAD~2
