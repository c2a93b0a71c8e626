#!/usr/bin/env bash
# The main job on the built-in default, with the Python example model API
# (examples/iris: scikit-learn behind FastAPI): start a simulated fleet (3
# app VMs and a load balancer, each with its own sshd and dockerd), build
# mlctl's Python base image without a registry (once: minutes the first
# time, a no-op after), make a git repository holding only the app, its
# requirements and its model, run `mlctl init` there and commit, deploy
# (built from the commit, delivered without a registry, started behind
# HAProxy), predict through HAProxy, retrain the model in a second commit
# (only the weights layer changes), change only code in a third (only the
# code layer changes), and roll back to the first. Run through `make
# demo`, which installs packages and builds first. The fleet stays up
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
gitc() { git -C "$work/app" -c user.name=demo -c user.email=demo@mlctl.invalid "$@"; }

# the controller's Docker Engine first: a dockerd started on the host turns
# the FORWARD policy to DROP, which the fleet then opens for its own bridge
bash scripts/dockerd.sh

step "mlctl image base: Debian 12 + Python 3.11 + scikit-learn, FastAPI, uvicorn (no registry)"
base=$("$mlctl" image base)
echo "$base"

fleet=$work/fleet
step "a simulated fleet: 3 app VMs and a load balancer"
tests/fleet/fleet up --dir "$fleet" --vms 3 --lb --prefix mld --subnet 10.76.0 >/dev/null
cat "$fleet/inventory.yaml"

step "a model API's repository: a FastAPI app, its requirements and its model, nothing else"
cp examples/iris/app.py examples/iris/train.py examples/iris/requirements.txt "$work/app/"
cp -r examples/iris/model "$work/app/"
cp "$fleet/inventory.yaml" "$work/app/inventory.yaml"
gitc init -q -b main
ls -R "$work/app"

step "mlctl init"
"$mlctl" -C "$work/app" init --name iris
cat "$work/app/Dockerfile"
gitc add -A
gitc commit -qm "iris v1"
gitc log --oneline

step "mlctl validate"
"$mlctl" -C "$work/app" validate

step "mlctl plan --offline (HEAD): the desired state, no host asked"
"$mlctl" -C "$work/app" plan --offline

ssh_opts=(--known-hosts "$fleet/known_hosts")

step "mlctl bootstrap: install the agent on every VM, check Docker and HAProxy"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" bootstrap

lb=$(sed -n '/lb1:/,/address:/s/^ *address: *//p' "$fleet/inventory.yaml")
ask() {
	printf 'POST http://%s/predict -> ' "$lb"
	curl -s --max-time 5 -H 'Content-Type: application/json' \
		-d '{"features": [[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 5.1, 1.6]]}' \
		"http://$lb/predict"
	echo
}

step "mlctl plan: what the first deploy would do on each host (changes nothing)"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" plan

step "mlctl deploy: build, deliver, start behind HAProxy, record revision 1"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" deploy
ask

step "mlctl status"
"$mlctl" -C "$work/app" "${ssh_opts[@]}" status

step "a second commit retrains the model (in the base image): only the weights layer changes"
docker run --rm -v "$work/app:/w" -w /w "$base" \
	python3 train.py --C 0.05 --version v2
gitc commit -qam "iris: retrain with C=0.05 (v2)"
"$mlctl" -C "$work/app" image check
"$mlctl" -C "$work/app" "${ssh_opts[@]}" deploy
ask

step "a third commit changes only code: only the code layer changes"
sed -i 's/^app = FastAPI(title="iris model API")$/app = FastAPI(title="iris model API", version="1.1")/' "$work/app/app.py"
gitc commit -qam "iris: API version 1.1"
"$mlctl" -C "$work/app" image check
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
