#!/usr/bin/env bash
# The main job on the built-in default: start a simulated fleet (3 app VMs
# and a load balancer, each with its own sshd and dockerd), make a git
# repository holding the example model API with its playbook and the
# fleet's inventory, validate and plan it, install the agent on every VM,
# deploy it (built from the commit by the controller's Docker Engine,
# delivered without a registry, started behind HAProxy), show the status,
# deploy a second commit, and roll back to the first. Run through
# `make demo`, which installs packages and builds first. The fleet stays up
# afterwards; the last line says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
mlctl=$top/bin/mlctl

work=${MLCTL_DEMO_DIR:-/tmp/mlctl-demo}
if [ -d "$work/fleet" ]; then
	tests/fleet/fleet down --dir "$work/fleet" >/dev/null 2>&1 || true
fi
rm -rf "$work"
mkdir -p "$work/app"
export MLCTL_LEDGER=$work/ledger.db

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# the controller's Docker Engine first: a dockerd started on the host turns
# the FORWARD policy to DROP, which the fleet then opens for its own bridge
bash scripts/dockerd.sh

fleet=$work/fleet
step "a simulated fleet: 3 app VMs and a load balancer"
tests/fleet/fleet up --dir "$fleet" --vms 3 --lb --prefix mld --subnet 10.76.0 >/dev/null
cat "$fleet/inventory.yaml"

step "the example app: a model API with its playbook and the fleet's inventory"
cp -r examples/sentiment/. "$work/app/"
cp playbooks/example.yaml "$work/app/mlctl.yaml"
cp "$fleet/inventory.yaml" "$work/app/inventory.yaml"
git -C "$work/app" -c init.defaultBranch=main init -q
git -C "$work/app" add -A
git -C "$work/app" -c user.name=demo -c user.email=demo@mlctl.invalid \
	commit -qm "sentiment v1"
git -C "$work/app" log --oneline

step "mlctl validate"
"$mlctl" -C "$work/app" validate

step "mlctl plan (HEAD)"
"$mlctl" -C "$work/app" plan

ssh_opts=(--known-hosts "$fleet/known_hosts")

step "mlctl bootstrap: install the agent on every VM, check Docker and HAProxy"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" bootstrap

lb=$(sed -n '/lb1:/,/address:/s/^ *address: *//p' "$fleet/inventory.yaml")
ask() {
	printf 'GET http://%s/cgi-bin/predict?text=great -> ' "$lb"
	curl -s --max-time 5 "http://$lb/cgi-bin/predict?text=great"
}

step "mlctl deploy: build, deliver, start behind HAProxy, record revision 1"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" deploy
ask

step "mlctl status"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" status

step "a second commit: the model says 'great' is worth 5"
sed -i 's/^great 3$/great 5/' "$work/app/model.txt"
git -C "$work/app" -c user.name=demo -c user.email=demo@mlctl.invalid \
	commit -qam "sentiment: great is worth 5"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" deploy
ask

step "mlctl rollback 1"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" rollback 1
ask

step "mlctl status"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" status

step "mlctl history"
"$mlctl" -C "$work/app" history
echo
echo "demo files are in $work; stop the fleet with:"
echo "  tests/fleet/fleet down --dir $fleet"
