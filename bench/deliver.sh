#!/usr/bin/env bash
# bench/deliver.sh [N...]: image delivery on simulated fleets of N app VMs
# (default: 4 and 16) with a model-like image of about 200 MB: one large
# weights layer (random bytes, as real weights barely compress) and one
# small code layer. For each fleet size: cold delivery, redelivery after a
# change to the code layer only, and a no-op; for each, wall time, bytes
# received per VM (from the VMs' interface counters) and the controller's
# peak RSS; side by side, in the same run, with the plain way
# (`docker save IMAGE | ssh HOST docker load`, all VMs at once). The
# code-only row of mlctl includes extracting the new layer from Docker into
# the controller's cache (a `docker save` read locally).
# Prints a markdown table. WEIGHTS_MB=190 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(4 16)
WEIGHTS_MB=${WEIGHTS_MB:-190}
mlctl=$PWD/bin/mlctl
fleet=tests/fleet/fleet
dir=/tmp/mlctl-bench-deliver
repo=$(mktemp -d /tmp/mlctl-bench-repo.XXXXXX)
export MLCTL_LEDGER=$repo.ledger MLCTL_CACHE_DIR=$repo.cache
cleanup() {
	$fleet down --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$repo" "$repo.ledger"* "$repo.cache"
}
trap cleanup EXIT
bash scripts/dockerd.sh

# the app: weights + code on the busybox base
git -C "$repo" -c init.defaultBranch=main init -q
cat >"$repo/Dockerfile" <<'DOCKERFILE'
FROM mlctl-test/busybox:latest
COPY weights.bin /model/weights.bin
COPY www/ /www/
CMD ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/www"]
DOCKERFILE
mkdir -p "$repo/www"
echo ok >"$repo/www/healthz"
head -c $((WEIGHTS_MB << 20)) /dev/urandom >"$repo/weights.bin"
# The image is built by Docker here and named in the playbook, so that what
# is measured is delivery (a build from the commit's tree reads each file of
# the context whole through libgit2: see the README).
build() { # build TAG
	docker build -q -t "$1" "$repo" >/dev/null
	printf 'app: bench\nimage: %s\nport: 8000\ntargets: [web]\n' "$1" >"$repo/mlctl.yaml"
}
gitc() { git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid "$@"; }

rx_total() { # bytes each app VM received, one number a VM: what the
	# host side of its veth sent (the VM's eth0 counts the same)
	local vm
	for vm in $FLEET_VMS; do
		cat "/sys/class/net/mlx-$vm/statistics/tx_bytes"
	done
}
avg_delta() { # avg_delta BEFORE AFTER: mean per-VM difference
	paste <(echo "$1") <(echo "$2") | awk '{ s += $2 - $1; n++ } END { printf "%.0f", s / n / 1024 }'
}
timed() { # timed CMD...: sets T (seconds) and RSS (MiB of the command)
	local t0 t1 out
	t0=$EPOCHREALTIME
	out=$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1)
	t1=$EPOCHREALTIME
	T=$(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')
	RSS=$((out / 1024))
}

plain_all() { # docker save | ssh docker load, every VM at once
	local a pids=()
	for a in $FLEET_ADDRS; do
		( docker save "$1" | ssh -i "$dir/id_ed25519" -F none -o BatchMode=yes \
			-o UserKnownHostsFile="$dir/known_hosts" "root@$a" docker load >/dev/null ) &
		pids+=($!)
	done
	wait "${pids[@]}"
}

wipe() { # wipe [store]: remove mlctl/bench images (and mlctl's blob store)
	local vm
	for vm in $FLEET_VMS; do
		$fleet exec --dir "$dir" "$vm" -- sh -c \
			"docker rmi -f \$(docker images -q bench-model) >/dev/null 2>&1; ${1:+rm -rf /var/lib/mlctl/blobs;} true"
	done
}
row() { # row N CASE: measure mlctl deliver, then the plain way
	local b a mt mr mrss tag
	b=$(rx_total)
	timed "$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" deliver
	a=$(rx_total)
	mt=$T; mr=$(avg_delta "$b" "$a"); mrss=$RSS
	tag=$(sed -n 's/^image: //p' "$repo/mlctl.yaml")
	if [ "$2" = cold ]; then wipe; fi
	b=$(rx_total)
	timed bash -c "$(declare -f plain_all); FLEET_ADDRS='$FLEET_ADDRS' dir='$dir' plain_all '$tag'"
	a=$(rx_total)
	echo "| $1 | $2 | $mt | $mr | $mrss | $T | $(avg_delta "$b" "$a") | $RSS |"
}

echo
echo "image: ${WEIGHTS_MB} MiB of weights + a small code layer on busybox; $(nproc) cores"
echo
echo "| VMs | case | mlctl s | mlctl KiB/VM received | mlctl peak RSS MiB | plain s | plain KiB/VM received | plain peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
	$fleet down --dir "$dir" >/dev/null 2>&1 || true
	$fleet up --dir "$dir" --vms "$n" --prefix mlx --subnet 10.74.0 >/dev/null
	# shellcheck disable=SC1091
	. "$dir/env"
	FLEET_ADDRS=$(sed -n 's/^ *address: *//p' "$dir/inventory.yaml")
	cp "$dir/inventory.yaml" "$repo/inventory.yaml"
	echo "v0 $n" >"$repo/www/version"
	build "bench-model:v0-$n"
	gitc add -A && gitc commit -qm "v0 $n"
	"$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" bootstrap >/dev/null
	# build and fill the controller's cache once: cold measures delivery
	"$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" deliver >/dev/null 2>&1
	wipe store
	row "$n" cold
	# code-only: the new code layer is built and cached as part of it
	echo "v1 $n $RANDOM" >"$repo/www/version"
	build "bench-model:v1-$n"
	gitc commit -qam "code $n"
	row "$n" code-only
	row "$n" no-op
done
