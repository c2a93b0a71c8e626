#!/usr/bin/env bash
# bench/prune.sh: disk use under prune. Twelve deploys of a model-like image
# whose weights layer (WEIGHTS_MB of random bytes, 200 by default) changes
# every time, to VMS app VMs (2), with `prune: {retain: 3}` and revision 2
# pinned; then `mlctl rollback 2` (pinned: no image bytes) and `mlctl
# rollback 5` (pruned: delivered again). Per step: wall time, bytes each VM
# received (its interface counters), vm1's blob store and Docker disk use,
# and how many of the app's images vm1 holds (from Docker). Prints a
# markdown table.
#
# Uses the fleet in $FLEET_DIR when set (it must have vm1..vmVMS), else
# brings one up (prefix mlp, subnet 10.73.0) and tears it down at the end.
# The images it builds in the controller's Docker are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
WEIGHTS_MB=${WEIGHTS_MB:-200}
VMS=${VMS:-2}
DEPLOYS=12
mlctl=$PWD/bin/mlctl
fleet=tests/fleet/fleet
own_fleet=
dir=${FLEET_DIR:-}
repo=$(mktemp -d /tmp/mlctl-bench-prune.XXXXXX)
export MLCTL_LEDGER=$repo.ledger MLCTL_CACHE_DIR=$repo.cache
cleanup() {
	"$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" remove >/dev/null 2>&1 || true
	docker images -q bench-prune | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
	[ -z "$own_fleet" ] || $fleet down --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$repo" "$repo.ledger"* "$repo.cache"
}
trap cleanup EXIT
bash scripts/dockerd.sh >/dev/null
if [ -z "$dir" ]; then
	dir=/tmp/mlctl-bench-prune-fleet
	own_fleet=1
	$fleet up --dir "$dir" --vms "$VMS" --prefix mlp --subnet 10.73.0 >/dev/null
fi
# shellcheck disable=SC1091
. "$dir/env"
vms=$(seq -f 'vm%g' 1 "$VMS" | tr '\n' ' ')

git -C "$repo" -c init.defaultBranch=main init -q
cat >"$repo/Dockerfile" <<'DOCKERFILE'
FROM mlctl-test/busybox:latest
COPY weights.bin /model/weights.bin
COPY www/ /www/
CMD ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/www"]
DOCKERFILE
mkdir -p "$repo/www"
echo ok >"$repo/www/healthz"
echo "*.bin" >"$repo/.gitignore"
cp "$dir/inventory.yaml" "$repo/inventory.yaml"
gitc() { git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid "$@"; }
# The image is built by Docker here and named in the playbook: a build from
# the commit's tree would read the weights whole through libgit2.
build() { # build N
	head -c $((WEIGHTS_MB << 20)) /dev/urandom >"$repo/weights.bin"
	docker build -q -t "bench-prune:v$1" "$repo" >/dev/null
	cat >"$repo/mlctl.yaml" <<EOF
app: bench-prune
image: bench-prune:v$1
port: 8000
health: {path: /healthz, interval: 500ms, timeout: 500ms, start_period: 10s}
targets: [$(echo $vms | sed 's/ /, /g')]
rollout: {batch: $VMS, drain_timeout: 1s}
prune: {retain: 3}
EOF
	gitc add -A && gitc commit -qm "v$1"
}
rx() { # bytes received by each VM, one line each
	local vm
	for vm in $vms; do cat "/sys/class/net/$FLEET_PREFIX-$vm/statistics/tx_bytes"; done
}
avg_mib() { # avg_mib BEFORE AFTER
	paste <(echo "$1") <(echo "$2") | awk '{ s += $2 - $1; n++ } END { printf "%.1f", s / n / 1048576 }'
}
vm_du() { # vm_du PATH: MiB used under PATH on vm1
	$fleet exec --dir "$dir" vm1 -- du -sm "$1" 2>/dev/null | awk '{ print $1 }'
}
row() { # row STEP CMD...
	local step=$1 b a t0 t1
	shift
	b=$(rx)
	t0=$EPOCHREALTIME
	"$@" >/dev/null
	t1=$EPOCHREALTIME
	a=$(rx)
	printf '| %s | %s | %s | %s | %s | %s |\n' "$step" \
		"$(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')" \
		"$(avg_mib "$b" "$a")" "$(vm_du /var/lib/mlctl/blobs)" \
		"$(vm_du /var/lib/docker)" \
		"$($fleet exec --dir "$dir" vm1 -- docker images -q bench-prune | wc -l)"
}
m() { "$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" "$@"; }

build 1
m bootstrap >/dev/null
echo
echo "image: ${WEIGHTS_MB} MiB of new weights per deploy on busybox; $VMS app VMs; retain 3, revision 2 pinned; $(nproc) cores"
echo
echo "| step | s | MiB received per VM | vm1 blob store MiB | vm1 Docker MiB | app images on vm1 |"
echo "|---|---|---|---|---|---|"
for i in $(seq 1 $DEPLOYS); do
	[ "$i" = 1 ] || build "$i"
	row "deploy $i" m deploy
	[ "$i" != 2 ] || m pin 2 >/dev/null
done
row "rollback 2 (pinned)" m rollback 2
row "rollback 5 (pruned)" m rollback 5
