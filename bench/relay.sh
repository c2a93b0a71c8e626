#!/usr/bin/env bash
# bench/relay.sh [N] [MB]: a cold `mlctl deliver` of an image with a MB
# (default 200) MiB layer of random bytes to N (default 8) app VMs with the
# controller's egress capped at RATE (default 100mbit, `fleet egress`),
# with the relay between hosts off and on, against the time of sending the
# layer's bytes once over that link (`ssh vm1 cat >/dev/null`, which is
# the floor for any delivery). Each delivery starts cold: the image and
# every blob are removed from the VMs first (the controller's build and
# blob cache are warm, so the rows time the delivery only). Prints a
# markdown table. FLEET_DIR=DIR uses a fleet already up instead of
# bringing one up (and down) in /tmp/mlctl-bench-relay.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-8}
MB=${2:-200}
RATE=${RATE:-100mbit}
mlctl=$PWD/bin/mlctl
fleet=$PWD/tests/fleet/fleet
own=0
dir=${FLEET_DIR:-}
if [ -z "$dir" ]; then
	dir=/tmp/mlctl-bench-relay
	own=1
fi
repo=$(mktemp -d /tmp/mlctl-bench-relay-repo.XXXXXX)
export MLCTL_LEDGER=$repo.ledger MLCTL_CACHE_DIR=$repo.cache
cleanup() {
	$fleet egress --dir "$dir" off >/dev/null 2>&1 || true
	[ $own = 1 ] && $fleet down --dir "$dir" >/dev/null 2>&1
	rm -rf "$repo" "$repo.ledger"* "$repo.cache"
}
trap cleanup EXIT
if [ $own = 1 ]; then
	$fleet up --dir "$dir" --vms "$N" --prefix mlb --subnet 10.73.1 >/dev/null
fi
# shellcheck disable=SC1091
. "$dir/env"
vms=$FLEET_VMS
N=$(echo "$vms" | wc -w)

cp "$dir/inventory.yaml" "$repo/inventory.yaml"
mkdir -p "$repo/www"
echo ok >"$repo/www/healthz"
head -c $((MB << 20)) /dev/urandom >"$repo/weights.bin"
cat >"$repo/Dockerfile" <<'DOCKERFILE'
FROM mlctl-test/busybox:latest
COPY weights.bin /model/weights.bin
COPY www/ /www/
CMD ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/www"]
DOCKERFILE
printf 'app: bench-relay\nimage: {build: {context: .}}\nport: 8000\ntargets: [web]\n' >"$repo/mlctl.yaml"
echo '*.ledger*' >"$repo/.gitignore"
gitc() { git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid "$@"; }
git -C "$repo" -c init.defaultBranch=main init -q
gitc add -A
gitc commit -qm bench
kh=(--known-hosts "$FLEET_KNOWN_HOSTS")
ml() { (cd "$repo" && "$mlctl" "$@"); }
ml "${kh[@]}" bootstrap >/dev/null || ml "${kh[@]}" bootstrap

# the image and every blob off every VM
cold() {
	local v id=$1
	for v in $vms; do
		$fleet exec --dir "$dir" "$v" -- sh -c \
			"docker rmi -f $id >/dev/null 2>&1; rm -rf /var/lib/mlctl/blobs" || true
	done
}
# deliver with MLCTL_RELAY=$1; prints seconds and controller bytes
timed() {
	local t0 t1 out
	t0=$(date +%s.%N)
	out=$(MLCTL_RELAY=$1 ml "${kh[@]}" deliver --json 2>"$repo/err")
	t1=$(date +%s.%N)
	echo "$out" >"$repo/last.json"
	python3 - "$t0" "$t1" "$repo/last.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[3]))
sent = sum(h.get("controller_bytes", h["raw_bytes"]) for h in d["hosts"])
ok = all(h["ok"] for h in d["hosts"])
rel = sum(1 for h in d["hosts"] if h.get("relayed"))
print("%.1f %d %d %s" % (float(sys.argv[2]) - float(sys.argv[1]), sent, rel, "ok" if ok else "FAILED"))
PY
}

# warm the controller: build, blob cache and its compressed copies
MLCTL_RELAY=off ml "${kh[@]}" deliver --json >"$repo/warm.json"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["image"])' "$repo/warm.json")
$fleet egress --dir "$dir" set "$RATE" >/dev/null

t0=$(date +%s.%N)
$fleet ssh --dir "$dir" vm1 -- 'cat >/dev/null' <"$repo/weights.bin"
t1=$(date +%s.%N)
once=$(python3 -c "print('%.1f' % ($t1 - $t0))")

cold "$id"
read -r off_s off_b off_r off_ok < <(timed off)
cold "$id"
read -r on_s on_b on_r on_ok < <(timed on)
relay_line=$(grep -o 'relay: .*' "$repo/err" || true)
cold "$id"

echo
echo "cold delivery of a ${MB} MiB layer to $N VMs, controller egress capped at $RATE"
echo
echo "| what | time | controller sent | hosts relayed | result |"
echo "|---|---|---|---|---|"
echo "| the layer once over the link (ssh cat) | ${once} s | ${MB} MiB | - | - |"
echo "| deliver, relay off | ${off_s} s | $((off_b >> 20)) MiB | $off_r | $off_ok |"
echo "| deliver, relay on | ${on_s} s | $((on_b >> 20)) MiB | $on_r | $on_ok |"
echo
python3 -c "print('relay on / once over the link: %.2f x' % ($on_s / $once))"
[ -n "$relay_line" ] && echo "mlctl: $relay_line"
