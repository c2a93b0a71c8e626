#!/usr/bin/env bash
# The main job on the built-in default: make a git repository holding the
# example model API with its playbook and inventory, then validate it and
# show the plan at HEAD and at the previous commit. Later stages (fleet,
# deploy, status, rollback) join as they land. Run through `make demo`,
# which installs packages and builds first.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
mlctl=$top/bin/mlctl

work=${MLCTL_DEMO_DIR:-/tmp/mlctl-demo}
rm -rf "$work"
mkdir -p "$work/app"
export MLCTL_LEDGER=$work/ledger.db

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "the example app: a model API with its playbook and inventory"
cp -r examples/sentiment/. "$work/app/"
cp playbooks/example.yaml "$work/app/mlctl.yaml"
cp inventory/example.yaml "$work/app/inventory.yaml"
git -C "$work/app" -c init.defaultBranch=main init -q
git -C "$work/app" add -A
git -C "$work/app" -c user.name=demo -c user.email=demo@mlctl.invalid \
	commit -qm "sentiment v1"
sed -i 's/^replicas: 1$/replicas: 2/' "$work/app/mlctl.yaml"
git -C "$work/app" -c user.name=demo -c user.email=demo@mlctl.invalid \
	commit -qam "sentiment: two replicas per host"
git -C "$work/app" log --oneline

step "mlctl validate"
"$mlctl" -C "$work/app" validate

step "mlctl plan (HEAD)"
"$mlctl" -C "$work/app" plan

step "mlctl plan --commit HEAD~1"
"$mlctl" -C "$work/app" plan --commit HEAD~1

step "mlctl history"
"$mlctl" -C "$work/app" history
echo
echo "demo files are in $work"
