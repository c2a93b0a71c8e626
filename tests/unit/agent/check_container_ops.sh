#!/usr/bin/env bash
# Check container_run, container_wait, container_logs and container_stop
# against a real dockerd on a simulated VM (tests/fleet), by hand (not run
# by tests/run). The agent is reached the way mlctl reaches it: `ssh VM
# .../bin/mlctl-agent -v serve`, spoken to by tests/unit/agent/agent_call
# (built here), one session per step. Every step prints "ok" or "FAIL" and
# the script exits 1 if any failed.
#
# What it does on the VM, with the fleet's mlctl-test/busybox image:
#  - runs demo-r1-a0 (busybox httpd, env, a secret with a newline, cpu and
#    memory limits), checks Docker's view of it (labels, env, ports,
#    restart policy, limits, log config, init), the secrets file (0600 in
#    a 0700 dir, JSON), that a second identical run is a no-op, and waits
#    for it through 127.0.0.1:<host port> on the VM;
#  - starts demo-r2-b0 beside it on another port, reaches both from the
#    controller's side, reads logs, stops r1 and checks r2 still serves;
#  - a crashing container (exit 3) fails the wait at once with its exit
#    code and log; a 404 health path is "unhealthy"; a missing image and
#    a taken port give clear errors and leave nothing behind;
#  - stops everything, twice (the second time is "removed": false), and
#    checks that no secret ever reached the agent's stderr (-v logs every
#    failed request).
#
# Needs root, the fleet's packages (scripts/setup.sh) and jq. Usage, from
# the top of the tree:  bash tests/unit/agent/check_container_ops.sh
# Environment: FLEET_DIR (use that running fleet; default: bring up a
# private one-VM fleet in CCO_DIR=/tmp/mlctl-cco with CCO_PREFIX=mcc and
# CCO_SUBNET=10.79.5, torn down on exit), VM (default vm1), O, BIN.
set -euo pipefail
cd "$(dirname "$0")/../../.."
O=${O:-build}
BIN=${BIN:-bin}
VM=${VM:-vm1}
FLEET=tests/fleet/fleet
SECRET='multi-line s3cr3t
-----END KEY-----'

command -v jq >/dev/null || { echo "jq is not installed" >&2; exit 1; }
make --no-print-directory "$BIN/mlctl-agent" "$O/tests/unit/agent/agent_call" >/dev/null

if [ -z "${FLEET_DIR:-}" ]; then
	FLEET_DIR=${CCO_DIR:-/tmp/mlctl-cco}
	trap '$FLEET down --dir "$FLEET_DIR" >/dev/null 2>&1 || true' EXIT
	$FLEET up --dir "$FLEET_DIR" --vms 1 --prefix "${CCO_PREFIX:-mcc}" \
		--subnet "${CCO_SUBNET:-10.79.5}" >/dev/null
fi
# shellcheck disable=SC1091
. "$FLEET_DIR/env"
addr_var=FLEET_ADDR_$VM
ADDR=${!addr_var}
AGENT="$PWD/$BIN/mlctl-agent"
ERRLOG=$(mktemp /tmp/mlctl-cco-stderr.XXXXXX)
failures=0

# One agent session over ssh; one JSON line per call on stdout.
call() {
	"$O/tests/unit/agent/agent_call" ssh -F "$FLEET_SSH_CONFIG" "$VM" \
		"$AGENT" -v serve -- "$@" 2>>"$ERRLOG" || true
}
vmx() { $FLEET exec --dir "$FLEET_DIR" "$VM" -- "$@"; }

# expect NAME JQ_FILTER INPUT: ok when the filter is true on INPUT.
expect() {
	if jq -e "$2" >/dev/null 2>&1 <<<"$3"; then
		echo "ok   $1"
	else
		echo "FAIL $1"
		echo "     filter: $2"
		echo "     input:  $3"
		failures=$((failures + 1))
	fi
}

# run_args REV SLOT HOST_PORT CMD_JSON [IMAGE]: container_run args.
run_args() {
	jq -cn --argjson rev "$1" --arg slot "$2" --argjson hp "$3" \
		--argjson cmd "$4" --arg image "${5:-mlctl-test/busybox:latest}" \
		--arg secret "$SECRET" \
		'{app: "demo", revision: $rev, slot: $slot, replica: 0,
		  commit: "0123abc", image: $image, port: 8000, host_port: $hp,
		  env: {GREETING: "hi"}, secrets: {API_TOKEN: $secret},
		  resources: {cpus: 0.5, memory_bytes: 67108864, gpus: 0},
		  cmd: $cmd}'
}
HTTPD='["/bin/sh","-c","echo starting; exec /bin/busybox httpd -f -v -p 8000 -h /var/www"]'
CRASH='["/bin/sh","-c","echo loading model; echo boom: no model.bin >&2; exit 3"]'
wait_args() {
	jq -cn --arg id "$1" --argjson hp "$2" --arg path "${3:-/}" \
		'{id: $id, host_port: $hp, path: $path, interval_ms: 200,
		  timeout_ms: 1000, start_period_ms: 0, healthy_threshold: 2,
		  unhealthy_threshold: 3, deadline_ms: 20000}'
}

echo "fleet $FLEET_DIR, $VM at $ADDR; dockerd $(vmx docker version --format '{{.Server.Version}}')"
for n in demo-r1-a0 demo-r2-b0 demo-r3-a0 demo-r4-a0 demo-r5-a0; do
	vmx docker rm -f "$n" >/dev/null 2>&1 || true
done

# 1. run, Docker's view, secrets file, idempotence, wait
out=$(call container_run "$(run_args 1 a 18080 "$HTTPD")" \
	container_run "$(run_args 1 a 18080 "$HTTPD")" \
	container_wait "$(wait_args demo-r1-a0 18080)")
r1=$(sed -n 1p <<<"$out")
expect "run r1 creates demo-r1-a0" \
	'.ok and .result.created == true and .result.name == "demo-r1-a0"' "$r1"
id1=$(jq -r .result.id <<<"$r1")
expect "a second identical run is a no-op" \
	".ok and .result.created == false and .result.id == \"$id1\"" \
	"$(sed -n 2p <<<"$out")"
expect "wait r1 through 127.0.0.1:18080 on the VM" \
	'.ok and .result.healthy and .result.probes == 2' "$(sed -n 3p <<<"$out")"

insp=$(vmx docker inspect demo-r1-a0 | jq -c '.[0]')
expect "labels" '.Config.Labels == {"mlctl.app":"demo","mlctl.revision":"1",
	"mlctl.slot":"a","mlctl.commit":"0123abc"}' "$insp"
expect "env: ours, the app's and the secret (newline kept)" \
	"(.Config.Env | index(\"MLCTL_REVISION=1\")) and
	 (.Config.Env | index(\"MLCTL_SLOT=a\")) and
	 (.Config.Env | index(\"GREETING=hi\")) and
	 (.Config.Env | index($(jq -n --arg s "API_TOKEN=$SECRET" '$s')))" "$insp"
expect "the secret is not on the command line" \
	"(.Args + .Config.Cmd | map(test(\"s3cr3t\")) | any) | not" "$insp"
expect "host config" '.HostConfig.PortBindings == {"8000/tcp":[{"HostIp":
	"0.0.0.0","HostPort":"18080"}]} and .HostConfig.RestartPolicy.Name ==
	"unless-stopped" and .HostConfig.NanoCpus == 500000000 and
	.HostConfig.Memory == 67108864 and .HostConfig.DeviceRequests == null
	and .HostConfig.LogConfig == {"Type":"json-file","Config":{"max-file":
	"3","max-size":"10m"}} and .HostConfig.Init == true' "$insp"
perm=$(vmx stat -c '%a %U' /var/lib/mlctl/secrets /var/lib/mlctl/secrets/demo-r1-a0.env | tr '\n' ' ')
expect "secrets dir 0700, file 0600: $perm" "." \
	"$([ "$perm" = "700 root 600 root " ] && echo true || echo false)"
expect "secrets file is JSON with the value" \
	"(.API_TOKEN == $(jq -n --arg s "$SECRET" '$s'))" \
	"$(vmx cat /var/lib/mlctl/secrets/demo-r1-a0.env)"

# 2. a second slot beside the first, both reachable from the controller
out=$(call container_run "$(run_args 2 b 18081 "$HTTPD")" \
	container_wait "$(wait_args demo-r2-b0 18081)" \
	container_logs '{"id":"demo-r1-a0","tail":50}')
expect "run r2 in slot b beside r1" '.ok and .result.created' "$(sed -n 1p <<<"$out")"
expect "wait r2" '.ok and .result.healthy' "$(sed -n 2p <<<"$out")"
logs=$(sed -n 3p <<<"$out")
expect "logs of r1" '.ok and (.result.lines | index("starting")) and
	(.result.lines | map(test("response:200")) | any)' "$logs"
n_docker=$(vmx docker logs --tail 50 demo-r1-a0 2>&1 | wc -l)
expect "logs have as many lines as docker logs ($n_docker)" \
	".result.lines | length == $n_docker" "$logs"
# (after the count: each request adds a line to the log)
for port in 18080 18081; do
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR:$port/" || true)
	expect "controller reaches $ADDR:$port" "." \
		"$([ "$code" = 200 ] && echo true || echo false)"
done

out=$(call container_stop '{"id":"demo-r1-a0","timeout_s":5}' \
	container_wait "$(wait_args demo-r2-b0 18081)")
expect "stop r1" '.ok and .result.removed and .result.was_running' \
	"$(sed -n 1p <<<"$out")"
expect "r1's secrets file is gone" "." \
	"$(vmx test -e /var/lib/mlctl/secrets/demo-r1-a0.env && echo false || echo true)"
expect "r2 still healthy" '.ok' "$(sed -n 2p <<<"$out")"

# 3. failures: crash, unhealthy, missing image, taken port
start=$(date +%s)
out=$(call container_run "$(run_args 3 a 18082 "$CRASH")" \
	container_wait "$(wait_args demo-r3-a0 18082)" \
	container_wait "$(wait_args demo-r2-b0 18081 /nope)" \
	container_run "$(run_args 4 a 18083 '["/bin/true"]' \
		sha256:0000000000000000000000000000000000000000000000000000000000000000)" \
	container_run "$(run_args 5 a 18081 "$HTTPD")")
took=$(($(date +%s) - start))
expect "run a crashing container" '.ok' "$(sed -n 1p <<<"$out")"
expect "its wait fails at once with exit code and log (${took}s)" \
	'(.ok | not) and (.error | test("exit code 3|exited with code 3"))
	 and (.error | test("boom: no model.bin")) and
	 (.error | test("loading model"))' "$(sed -n 2p <<<"$out")"
expect "a 404 health path is unhealthy" \
	'(.ok | not) and (.error | test("unhealthy: GET http://127.0.0.1:18081/nope: HTTP 404 \\(3 failed probes in a row\\)"))' \
	"$(sed -n 3p <<<"$out")"
expect "a missing image" \
	'.code == "not-found" and (.error | test("is not on this host: deliver it first"))' \
	"$(sed -n 4p <<<"$out")"
expect "a taken port" \
	'(.ok | not) and (.error | test("port is already allocated"))' \
	"$(sed -n 5p <<<"$out")"
expect "nothing left of the failed run" "." \
	"$(vmx docker ps -aq --filter name=demo-r5-a0 | grep -q . && echo false || echo true)"

# 4. stop everything, twice
out=$(call container_stop '{"id":"demo-r2-b0"}' \
	container_stop '{"id":"demo-r3-a0","timeout_s":1}' \
	container_stop '{"id":"demo-r2-b0"}')
expect "stop r2" '.ok and .result.removed' "$(sed -n 1p <<<"$out")"
expect "stop the crashing r3" '.ok and .result.removed' "$(sed -n 2p <<<"$out")"
expect "stop r2 again: absent is fine" '.ok and (.result.removed | not)' \
	"$(sed -n 3p <<<"$out")"
left=$(vmx docker ps -aq --filter label=mlctl.app=demo | wc -l)
expect "no demo container left ($left)" "." "$([ "$left" = 0 ] && echo true || echo false)"
left=$(vmx ls -A /var/lib/mlctl/secrets | wc -l)
expect "no secrets file left ($left)" "." "$([ "$left" = 0 ] && echo true || echo false)"
expect "the agent's stderr ($(wc -l <"$ERRLOG") lines) never shows the secret" \
	"." "$(grep -q s3cr3t "$ERRLOG" && echo false || echo true)"
expect "no sanitizer report from the agent" "." \
	"$(grep -q 'Sanitizer\|runtime error' "$ERRLOG" && echo false || echo true)"
[ "$failures" -eq 0 ] || echo "the agent's stderr: $ERRLOG"
[ "$failures" -gt 0 ] || rm -f "$ERRLOG"

if [ "$failures" -gt 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
