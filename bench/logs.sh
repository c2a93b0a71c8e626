#!/usr/bin/env bash
# bench/logs.sh [N] [SECONDS]: what `mlctl logs` costs when the app prints
# as fast as it can. On N app VMs (default 4) each container prints
# numbered lines in a tight shell loop (half a CPU each); `mlctl logs -f`
# follows them for SECONDS (default 20), then `mlctl logs --tail 10000`
# reads a burst. Prints a markdown table: lines printed, lines/s, gap
# notices (lines the containers printed faster than one poll reads), and
# mlctl's peak RSS, which stays flat whatever the volume.
# BENCH_FLEET_DIR with BENCH_REUSE=1 uses a fleet that is already up.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4}
SECS=${2:-20}
dir=${BENCH_FLEET_DIR:-/tmp/mlctl-bench-logs}
mlctl=$PWD/bin/mlctl

if [ -z "${BENCH_REUSE:-}" ]; then
	tests/fleet/fleet up --dir "$dir" --vms "$N" --prefix mbl \
		--subnet "${BENCH_SUBNET:-10.78.5}" >/dev/null
fi
repo=$(mktemp -d /tmp/mlctl-bench-repo.XXXXXX)
cleanup() {
	"$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" remove >/dev/null 2>&1 || true
	[ -n "${BENCH_REUSE:-}" ] || tests/fleet/fleet down --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$repo" "$repo.ledger"
}
trap cleanup EXIT
mkdir -p "$repo/www"
echo ok >"$repo/www/healthz"
cat >"$repo/Dockerfile" <<'DF'
FROM mlctl-test/busybox:latest
COPY www/ /www/
CMD ["/bin/sh", "-c", "/bin/busybox httpd -p 8200 -h /www; i=0; while :; do i=$((i+1)); echo \"line $i of a container that prints as fast as it can\"; done"]
DF
cat >"$repo/mlctl.yaml" <<PB
app: bench-logs
image: {build: {context: .}}
port: 8200
health: {path: /healthz, interval: 500ms, timeout: 400ms, start_period: 5s}
resources: {cpus: 0.5}
targets: [web]
logs: {max_size: 10m, max_files: 2}
PB
cp "$dir/inventory.yaml" "$repo/inventory.yaml"
git -C "$repo" -c init.defaultBranch=main init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid commit -qm bench
export MLCTL_LEDGER=$repo.ledger
run_mlctl() { "$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" "$@"; }
run_mlctl bootstrap >/dev/null
run_mlctl deploy >/dev/null

out=$repo/follow.out
err=$repo/follow.err
# timeout signals the whole group: time and mlctl get the Ctrl-C
timeout -s INT "$SECS" /usr/bin/time -f %M "$mlctl" -C "$repo" \
	--known-hosts "$dir/known_hosts" logs -f >"$out" 2>"$err" || true
rss_f=$(tail -1 "$err")
lines_f=$(wc -l <"$out")
gaps=$(grep -c 'lines were skipped' "$err" || true)
t0=$EPOCHREALTIME
rss_t=$( { /usr/bin/time -f %M "$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" \
	logs --tail 10000 >"$out"; } 2>&1 | tail -1)
t1=$EPOCHREALTIME
lines_t=$(wc -l <"$out")
ms_t=$(( (${t1/./} - ${t0/./}) / 1000 ))

echo
echo "mlctl logs on $N app VMs, each container printing in a tight loop (0.5 CPU), $(nproc) cores"
echo
echo "| what | lines printed | lines/s | gap notices | peak RSS MiB |"
echo "|---|---|---|---|---|"
echo "| \`logs -f\` for $SECS s | $lines_f | $((lines_f / SECS)) | $gaps | $((rss_f / 1024)) |"
echo "| \`logs --tail 10000\` | $lines_t | $((lines_t * 1000 / (ms_t > 0 ? ms_t : 1))) | - | $((rss_t / 1024)) |"
