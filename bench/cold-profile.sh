#!/usr/bin/env bash
# bench/cold-profile.sh [N] [MB]: where the CPU of a cold delivery goes.
# `perf record -a` around a cold `mlctl deliver` (relay on, no egress cap)
# of an image with a MB (default 200) MiB layer of random bytes to N
# (default 8) app VMs, then the share of all CPUs per process name; and
# the same for the layer sent once through plain ssh to one VM
# (`ssh vm1 'cat >/dev/null'`), which shows what sshd costs per byte with
# the fastest reader. The controller's build and blob cache are warm, the
# VMs cold (image and blobs removed). Prints markdown tables.
# FLEET_DIR=DIR uses a fleet already up instead of bringing one up (and
# down) in /tmp/mlctl-bench-cold.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-8}
MB=${2:-200}
mlctl=$PWD/bin/mlctl
fleet=$PWD/tests/fleet/fleet
if ! command -v perf >/dev/null; then
	echo "installing linux-perf from Debian" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null
fi
own=0
dir=${FLEET_DIR:-}
if [ -z "$dir" ]; then
	dir=/tmp/mlctl-bench-cold
	own=1
fi
repo=$(mktemp -d /tmp/mlctl-bench-cold-repo.XXXXXX)
export MLCTL_LEDGER=$repo.ledger MLCTL_CACHE_DIR=$repo.cache
cleanup() {
	[ $own = 1 ] && $fleet down --dir "$dir" >/dev/null 2>&1
	rm -rf "$repo" "$repo.ledger"* "$repo.cache"
}
trap cleanup EXIT
if [ $own = 1 ]; then
	$fleet up --dir "$dir" --vms "$N" --prefix mlk --subnet 10.73.5 >/dev/null
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
printf 'app: bench-cold\nimage: {build: {context: .}}\nport: 8000\ntargets: [web]\n' >"$repo/mlctl.yaml"
echo '*.ledger*' >"$repo/.gitignore"
gitc() { git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid "$@"; }
git -C "$repo" -c init.defaultBranch=main init -q
gitc add -A
gitc commit -qm bench
kh=(--known-hosts "$FLEET_KNOWN_HOSTS")
ml() { (cd "$repo" && "$mlctl" "$@"); }
ml "${kh[@]}" bootstrap >/dev/null || ml "${kh[@]}" bootstrap

ml "${kh[@]}" deliver --json >"$repo/warm.json"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["image"])' "$repo/warm.json")
for v in $vms; do
	$fleet exec --dir "$dir" "$v" -- sh -c \
		"docker rmi -f $id >/dev/null 2>&1; rm -rf /var/lib/mlctl/blobs" || true
done

# share of all samples per process name, the top rows and idle
shares() {
	perf report -i "$1" --no-children --sort comm --stdio -g none 2>/dev/null |
		awk '/%/ { sub("%", "", $1); n = $2; for (i = 3; i <= NF; i++) n = n " " $i;
			   if (n == "swapper") n = "idle (swapper)";
			   if (rows++ < 8) printf "| %s | %.1f%% |\n", n, $1 }'
}

t0=$(date +%s.%N)
(cd "$repo" && perf record -a -q -o "$repo/cold.data" -- \
	"$mlctl" -vv "${kh[@]}" deliver >/dev/null 2>"$repo/cold.err")
t1=$(date +%s.%N)
relay=$(grep -o 'relay: [0-9]* hosts.*' "$repo/cold.err" | head -1 || true)
loads=$(grep -o 'image_load: ok in [0-9]* ms' "$repo/cold.err" |
	awk '{ ms = $4 / 1000; if (!n++ || ms < lo) lo = ms; if (ms > hi) hi = ms }
	     END { if (n) printf "%.1f to %.1f s", lo, hi }')

t2=$(date +%s.%N)
perf record -a -q -o "$repo/ssh.data" -- \
	"$fleet" ssh --dir "$dir" vm1 -- 'cat >/dev/null' <"$repo/weights.bin"
t3=$(date +%s.%N)

echo
echo "cold deliver of a ${MB} MiB layer to $N VMs, relay on, no cap; $(nproc) CPUs"
python3 -c "print('deliver: %.1f s' % ($t1 - $t0))"
[ -n "$relay" ] && echo "mlctl: $relay"
[ -n "$loads" ] && echo "image_load on each VM: $loads"
echo
echo "| process | share of all CPUs |"
echo "|---|---|"
shares "$repo/cold.data"
echo
python3 -c "print('the layer once through ssh to vm1 (cat >/dev/null): %.1f s' % ($t3 - $t2))"
echo
echo "| process | share of all CPUs |"
echo "|---|---|"
shares "$repo/ssh.data"
