#!/usr/bin/env bash
# bench/model.sh [N]: what the Python example (examples/iris: scikit-learn
# behind FastAPI on uvicorn, one worker per container) holds through
# HAProxy on a simulated fleet of N app VMs (default 3), one replica each.
# The app is set up the way a user would: `mlctl init`, commit, deploy.
# wrk sends GET /predict?x=... for 10 s per row, with keep-alive and with
# a new connection per request ("Connection: close"), at 1, 8 and 32
# connections. Uses the fleet at $MLCTL_FLEET_DIR when set, else starts
# its own. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
DUR=${DUR:-10s}
mlctl=$PWD/bin/mlctl
fleet=tests/fleet/fleet
repo=$(mktemp -d /tmp/mlctl-bench-model.XXXXXX)
export MLCTL_LEDGER=$repo.ledger MLCTL_CACHE_DIR=$repo.cache
own=
if [ -n "${MLCTL_FLEET_DIR:-}" ]; then
	dir=$MLCTL_FLEET_DIR
else
	dir=/tmp/mlctl-bench-model-fleet
	own=1
fi
cleanup() {
	"$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" remove >/dev/null 2>&1 || true
	[ -n "$own" ] && $fleet down --dir "$dir" >/dev/null 2>&1
	rm -rf "$repo" "$repo.ledger"* "$repo.cache"
}
trap cleanup EXIT
bash scripts/dockerd.sh
"$mlctl" image base >/dev/null
[ -n "$own" ] && $fleet up --dir "$dir" --vms "$N" --lb --prefix mlz --subnet 10.72.0 >/dev/null

cp examples/iris/app.py examples/iris/requirements.txt "$repo/"
cp -r examples/iris/model "$repo/"
cp "$dir/inventory.yaml" "$repo/inventory.yaml"
gitc() { git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid "$@"; }
git -C "$repo" -c init.defaultBranch=main init -q
"$mlctl" -C "$repo" init --name bench-model >/dev/null
gitc add -A
gitc commit -qm v1
kh=(--known-hosts "$dir/known_hosts")
"$mlctl" -C "$repo" "${kh[@]}" bootstrap >/dev/null
"$mlctl" -C "$repo" "${kh[@]}" deploy >/dev/null
lb=$(sed -n '/lb1:/,/address:/s/^ *address: *//p' "$dir/inventory.yaml")
url="http://$lb/predict?x=5.1,3.5,1.4,0.2"
curl -sf --max-time 5 "$url" >/dev/null

apps=$(grep -c '^  vm' "$dir/inventory.yaml" || true)
echo "| connections | connection per request | requests/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
for close in no yes; do
	for c in 1 8 32; do
		hdr=()
		[ "$close" = yes ] && hdr=(-H "Connection: close")
		out=$(wrk -t "$((c < 2 ? 1 : 2))" -c "$c" -d "$DUR" --latency "${hdr[@]}" "$url")
		rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
		p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
		p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
		errs=$(awk '/Non-2xx|Socket errors/ { sub(/^ +/, ""); printf "%s; ", $0 }' <<<"$out")
		ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } printf "%.1f", v }'; }
		echo "| $c | $close | $rps | $(ms "$p50") | $(ms "$p99") | ${errs:-0} |"
	done
done
echo
echo "($apps app VMs, one uvicorn worker each, HAProxy on its own VM; $(nproc) cores shared by everything)"
