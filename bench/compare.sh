#!/usr/bin/env bash
# bench/compare.sh [N...]: Ansible and mlctl side by side on the same
# simulated fleet, in one run, for each fleet size N of app VMs (default:
# 4 and 8) behind one HAProxy VM. The image is model-like: WEIGHTS_MB
# (default 190) of random weights in one layer and a small code layer on
# the busybox base, built by Docker beforehand (neither side's time
# includes the build).
#
# Ansible (ansible-core from Debian, installed here with apt when
# ansible-playbook is missing) follows the usual recipe: forks=50,
# pipelining, ControlPersist, no fact gathering; `docker save` on the
# controller, `copy` of the tar to every host, `docker load`, replace the
# container, wait for the port. All hosts at once. It does not touch the
# load balancer (mlctl does: one more step on its side).
# mlctl: `mlctl deploy` with rollout.batch 100% (one batch, like Ansible),
# health checks every second.
#
# The app stops on SIGTERM (a shell that forwards it to httpd), as a model
# server does; busybox httpd as PID 1 would ignore it and make every stop
# wait out Docker's timeout.
#
# Rows: cold (nothing on the VMs, an empty controller cache for mlctl),
# code-only (only the code layer changed), mlctl's rollback to the first
# revision, mlctl's rollback to a paused standby (rollout.standby: v1
# deployed again with it on, then the rollback to v0 resumes v0's paused
# containers), and Docker's own floor for a rollback that starts
# containers: on every VM at
# once, without mlctl, `docker run` of the image with its port published
# and `docker stop` of it (what a rollback must do on each host at the
# least). Then Docker's floors for the other two cases, also on every VM
# at once and over ssh: for code-only, `docker load` of a tar holding
# only the new code layer and the config (the VM has the rest), then
# `docker run` and `docker stop`; for cold, the whole `docker save` tar
# into `docker load`, then `docker run`. Prints a markdown table; times
# are wall seconds of one
# run on a shared machine, so read them as approximate.
#
# With N = CAP_VMS (default 0: none; CAP_VMS=8 for 8 VMs) two more rows: the controller's egress
# capped at CAP (default 100mbit; `fleet egress`, a tbf qdisc on the
# controller's side of the bridge), a cold deploy on each side, and the
# time of sending the image's bytes once over that link (ssh to one VM).
# bench/relay.sh measures the relay alone the same way.
#
# Environment: WEIGHTS_MB, PREFIX (fleet prefix, default mlq), SUBNET
# (default 10.77.32), DIR (the fleet's directory, default
# /tmp/mlctl-bench-PREFIX), LOGS (a directory: mlctl runs with -vv, whose
# lines carry the time since start and each agent request's time, and
# each run's output is kept there as N-case.log), ONLY=mlctl (leave
# Ansible out, to profile mlctl alone). Two runs with different PREFIX, SUBNET and DIR
# do not touch each other's fleet or images.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(4 8 16)
CAP=${CAP:-100mbit}
CAP_VMS=${CAP_VMS:-0}
WEIGHTS_MB=${WEIGHTS_MB:-190}
PREFIX=${PREFIX:-mlq}
SUBNET=${SUBNET:-10.77.32}
mlctl=$PWD/bin/mlctl
fleet=$PWD/tests/fleet/fleet
dir=${DIR:-/tmp/mlctl-bench-$PREFIX}
img=bench-compare-$PREFIX # the controller's images of this run
repo=$(mktemp -d /tmp/mlctl-bench-repo.XXXXXX)
ans=$repo.ansible
export MLCTL_LEDGER=$repo.ledger MLCTL_CACHE_DIR=$repo.cache
cleanup() {
	$fleet down --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$repo" "$repo.ledger"* "$repo.cache" "$ans"
	docker rmi -f $(docker images -q "$img") >/dev/null 2>&1 || true
}
trap cleanup EXIT

if ! command -v ansible-playbook >/dev/null; then
	echo "installing ansible-core from Debian" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q ansible-core >/dev/null
fi
bash scripts/dockerd.sh

# the app: weights + code on the busybox base, as in bench/deliver.sh
git -C "$repo" -c init.defaultBranch=main init -q
cat >"$repo/Dockerfile" <<'DOCKERFILE'
FROM mlctl-test/busybox:latest
COPY weights.bin /model/weights.bin
COPY www/ /www/
CMD ["/bin/busybox", "sh", "-c", "trap 'kill $p; exit 0' TERM; /bin/busybox httpd -f -p 8000 -h /www & p=$!; wait"]
DOCKERFILE
mkdir -p "$repo/www"
echo ok >"$repo/www/healthz"
head -c $((WEIGHTS_MB << 20)) /dev/urandom >"$repo/weights.bin"
printf 'weights.bin\n' >"$repo/.gitignore"
gitc() { git -C "$repo" -c user.name=bench -c user.email=bench@mlctl.invalid "$@"; }
build() { # build TAG: the image, and the playbook naming it, committed
	# (STANDBY=1: with rollout.standby)
	docker build -q -t "$1" "$repo" >/dev/null 2>&1
	cat >"$repo/mlctl.yaml" <<PLAYBOOK
app: bench-compare
image: $1
port: 8000
health: {path: /healthz, interval: 1s, timeout: 500ms, start_period: 30s}
targets: [web]
rollout: {batch: "100%", drain_timeout: 5s${STANDBY:+, standby: true}}
load_balancer: {hosts: [lb], listen: 80}
PLAYBOOK
	gitc add -A
	gitc commit -qm "$1"
}
vv=()
[ -z "${LOGS:-}" ] || { mkdir -p "$LOGS"; vv=(-vv); }
m() { "$mlctl" "${vv[@]}" -C "$repo" --known-hosts "$dir/known_hosts" "$@"; }
keep() { [ -z "${LOGS:-}" ] || cp "$repo.log" "$LOGS/$1.log"; }

# Ansible's side: config, inventory and playbook (argv lists only)
mkdir -p "$ans/cp"
cat >"$ans/deploy.yml" <<'PLAY'
- hosts: web
  gather_facts: false
  vars:
    tar: /tmp/bench-compare.tar
  tasks:
    - name: docker save on the controller
      delegate_to: localhost
      run_once: true
      command:
        argv: [docker, save, -o, "{{ tar }}", "{{ image }}"]
    - name: copy the image to every host
      copy: {src: "{{ tar }}", dest: "{{ tar }}", mode: "0600"}
    - name: docker load
      command:
        argv: [docker, load, -i, "{{ tar }}"]
    - name: remove the old container
      command:
        argv: [docker, rm, -f, bench-compare]
      failed_when: false
    - name: start the new one
      command:
        argv: [docker, run, -d, --name, bench-compare, -p, "8000:8000", "{{ image }}"]
    - name: wait until it answers
      wait_for: {port: 8000, timeout: 60}
PLAY
ansible_setup() { # the inventory of the fleet now up
	{
		echo "[web]"
		awk '/^  vm[0-9]+:/ { h = $1; sub(":", "", h) }
		     /address:/ && h { print h, "ansible_host=" $2; h = "" }' "$dir/inventory.yaml"
		echo "[all:vars]"
		echo "ansible_user=root"
		echo "ansible_ssh_private_key_file=$dir/id_ed25519"
		echo "ansible_python_interpreter=/usr/bin/python3"
	} >"$ans/hosts.ini"
	cat >"$ans/ansible.cfg" <<CFG
[defaults]
inventory = $ans/hosts.ini
forks = 50
gathering = explicit
host_key_checking = True
retry_files_enabled = False
interpreter_python = /usr/bin/python3
[ssh_connection]
pipelining = True
control_path_dir = $ans/cp
ssh_args = -F none -o ControlMaster=auto -o ControlPersist=300s -o BatchMode=yes -o UserKnownHostsFile=$dir/known_hosts
CFG
}
a() { ANSIBLE_CONFIG=$ans/ansible.cfg ansible-playbook "$ans/deploy.yml" -e "image=$1"; }

wipe() { # containers, bench images and mlctl's blobs off every app VM
	local vm
	for vm in $FLEET_VMS; do
		$fleet exec --dir "$dir" "$vm" -- sh -c \
			'docker rm -f $(docker ps -aq) >/dev/null 2>&1; docker rmi -f $(docker images -q "$1") >/dev/null 2>&1; rm -rf /var/lib/mlctl/blobs /tmp/bench-compare.tar; true' sh "$img"
	done
}
vm_addr() { awk -v h="  $1:" '$0 == h { f = 1 } f && /address:/ { print $2; exit }' "$dir/inventory.yaml"; }
vm_ssh() { # vm_ssh VM SCRIPT ARG: sh -c SCRIPT on VM as root, over ssh
	ssh -F none -o BatchMode=yes -o UserKnownHostsFile="$dir/known_hosts" \
		-i "$dir/id_ed25519" "root@$(vm_addr "$1")" sh -c "'$2'" sh "$3"
}
wait_all() { # wait for every background job; fail if one failed
	local j
	for j in $(jobs -p); do wait "$j" || { echo "failed: a floor step" >&2; exit 1; }; done
}
delta_tar() { # delta_tar IMAGE OUT: IMAGE's `docker save` tar without the
	# layers before its last (what a VM holding the previous revision needs)
	local x
	x=$(mktemp -d "$repo.delta.XXXXXX")
	docker save "$1" | tar -C "$x" -xf -
	python3 - "$x" <<'PY'
import json, os, shutil, sys
root = sys.argv[1]
m = json.load(open(os.path.join(root, "manifest.json")))
for layer in m[0]["Layers"][:-1]:
    path = os.path.join(root, layer)
    shutil.rmtree(os.path.dirname(path)) if layer.endswith("/layer.tar") else os.remove(path)
PY
	tar -C "$x" -cf "$2" .
	rm -rf "$x"
}
secs() { echo "$1 $2" | awk '{ printf "%.1f", $2 - $1 }'; }
timed() { # timed CMD...: T = wall seconds; output kept in $repo.log
	local t0
	t0=$EPOCHREALTIME
	if ! "$@" >"$repo.log" 2>&1; then
		echo "failed: $*" >&2
		tail -20 "$repo.log" >&2
		exit 1
	fi
	T=$(secs "$t0" "$EPOCHREALTIME")
}
ratio() { echo "$1 $2" | awk '$2 == "-" { printf "-"; next } { printf "%.2f", $1 / $2 }'; }

echo
echo "image: ${WEIGHTS_MB} MiB of weights + a small code layer on busybox; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo
echo "| VMs | case | Ansible s | mlctl s | mlctl / Ansible |"
echo "|---|---|---|---|---|"
for n in "${sizes[@]}"; do
	$fleet down --dir "$dir" >/dev/null 2>&1 || true
	$fleet up --dir "$dir" --vms "$n" --lb --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null
	# shellcheck disable=SC1091
	. "$dir/env"
	cp "$dir/inventory.yaml" "$repo/inventory.yaml"
	ansible_setup
	rm -rf "$MLCTL_LEDGER"* "$MLCTL_CACHE_DIR"
	echo "v0 $n" >"$repo/www/version"
	build "$img:v0-$n"
	"$mlctl" -C "$repo" --known-hosts "$dir/known_hosts" bootstrap >/dev/null

	a_cold=- a_code=-
	[ "${ONLY:-}" = mlctl ] || { timed a "$img:v0-$n"; a_cold=$T; }
	echo "v1 $n $RANDOM" >"$repo/www/version"
	build "$img:v1-$n"
	[ "${ONLY:-}" = mlctl ] || { timed a "$img:v1-$n"; a_code=$T; }

	wipe
	timed m deploy --commit HEAD~1
	m_cold=$T
	keep "$n-cold"
	timed m deploy
	m_code=$T
	keep "$n-code"
	timed m rollback 1
	m_back=$T
	keep "$n-rollback"
	echo "| $n | cold | $a_cold | $m_cold | $(ratio "$m_cold" "$a_cold") |"
	echo "| $n | code-only | $a_code | $m_code | $(ratio "$m_code" "$a_code") |"
	t0=$EPOCHREALTIME
	for vm in $FLEET_VMS; do
		$fleet exec --dir "$dir" "$vm" -- sh -c \
			'docker run -d --name bench-floor -p 18999:8000 "$1" >/dev/null && docker stop bench-floor >/dev/null && docker rm bench-floor >/dev/null' sh "$img:v0-$n" &
	done
	wait
	d_floor=$(secs "$t0" "$EPOCHREALTIME")
	echo "| $n | rollback (mlctl only) | | $m_back | |"
	echo "| $n | docker run + stop on every VM at once (no mlctl) | | $d_floor | |"
	# rollout.standby: v1 again with the standby on (v0 stays paused),
	# then the rollback to v0 resumes it
	STANDBY=1 build "$img:v1-$n"
	timed m deploy
	keep "$n-standby-deploy"
	timed m rollback
	m_resume=$T
	keep "$n-standby-rollback"
	echo "| $n | rollback to the paused standby (rollout.standby, mlctl only) | | $m_resume | |"
	if [ "$n" = "$CAP_VMS" ]; then
		$fleet egress --dir "$dir" set "$CAP" >/dev/null
		first=${FLEET_VMS%% *}
		t0=$EPOCHREALTIME
		docker save "$img:v0-$n" | ssh -F none -o BatchMode=yes \
			-o UserKnownHostsFile="$dir/known_hosts" -i "$dir/id_ed25519" \
			"root@$(vm_addr "$first")" \
			'cat >/dev/null'
		once=$(secs "$t0" "$EPOCHREALTIME")
		wipe
		a_cap=-
		[ "${ONLY:-}" = mlctl ] || { timed a "$img:v0-$n"; a_cap=$T; }
		wipe
		rm -rf "$MLCTL_CACHE_DIR"
		timed m deploy --commit HEAD~1
		m_cap=$T
		keep "$n-cold-capped"
		$fleet egress --dir "$dir" off >/dev/null
		echo "| $n | the image sent once over the capped link ($CAP) | | $once | |"
		echo "| $n | cold, controller egress $CAP | $a_cap | $m_cap | $(ratio "$m_cap" "$a_cap") |"
	fi
	# Docker's own floors, without mlctl, on every VM at once (each VM's
	# bytes over ssh, as both sides send them): a code-only change is
	# `docker load` of a tar holding only the new code layer (and the
	# config; the VM has the rest), `docker run`, and `docker stop` of
	# one container; a cold deploy is `docker load` of the whole image
	# and `docker run`
	echo "v2 $n $RANDOM" >"$repo/www/version"
	build "$img:v2-$n"
	delta_tar "$img:v2-$n" "$repo.delta.tar"
	t0=$EPOCHREALTIME
	for vm in $FLEET_VMS; do
		vm_ssh "$vm" 'docker load >/dev/null && docker run -d --name bench-floor -p 18999:8000 "$1" >/dev/null && docker stop bench-floor >/dev/null' "$img:v2-$n" <"$repo.delta.tar" &
	done
	wait_all
	f_code=$(secs "$t0" "$EPOCHREALTIME")
	wipe
	docker save -o "$repo.full.tar" "$img:v0-$n"
	t0=$EPOCHREALTIME
	for vm in $FLEET_VMS; do
		vm_ssh "$vm" 'docker load >/dev/null && docker run -d --name bench-floor -p 18999:8000 "$1" >/dev/null' "$img:v0-$n" <"$repo.full.tar" &
	done
	wait_all
	f_cold=$(secs "$t0" "$EPOCHREALTIME")
	rm -f "$repo.delta.tar" "$repo.full.tar"
	wipe
	echo "| $n | Docker's floor, code-only: load of the code layer + run + stop on every VM at once (no mlctl) | | $f_code | |"
	echo "| $n | Docker's floor, cold: the image over ssh, load + run on every VM at once (no mlctl) | | $f_cold | |"
done
echo
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
