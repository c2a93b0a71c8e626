#!/usr/bin/env bash
# Check mlctl-agent against a real Docker daemon, by hand (not run by
# tests/run): starts a private dockerd on its own socket, data root and exec
# root (no bridge, no iptables), imports a one-file busybox image, runs a
# container labelled like mlctl's, then runs the agent test harness
# (tests/unit/agent/test_agent_bin) with MLCTL_TEST_DOCKER_SOCK set so that
# it checks hello (Docker version), list and inspect against that daemon.
# Everything is torn down on exit, through the pid file this script wrote.
#
# Needs root, dockerd (docker.io) and busybox-static. Usage, from the top of
# the tree:  bash tests/unit/agent/check_real_docker.sh
# Environment: O (object dir, default build), BIN (default bin),
# BUSYBOX (a static busybox, default /bin/busybox), KEEP=1 leaves the
# daemon running and prints how to reach it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
O=${O:-build}
BIN=${BIN:-bin}

command -v dockerd >/dev/null || { echo "dockerd is not installed" >&2; exit 1; }
BUSYBOX=${BUSYBOX:-/bin/busybox} # static, from busybox-static
[ -x "$BUSYBOX" ] || { echo "$BUSYBOX is missing: install busybox-static" >&2; exit 1; }

make --no-print-directory "$BIN/mlctl-agent" "$O/tests/unit/agent/test_agent_bin" >/dev/null

DIR=$(mktemp -d /tmp/mlctl-rd.XXXXXX)
SOCK=$DIR/docker.sock
PIDFILE=$DIR/dockerd.pid
D=(docker -H "unix://$SOCK")

teardown() {
	if [ -n "${KEEP:-}" ]; then
		echo "KEEP=1: dockerd left running (pid $(cat "$PIDFILE")), socket $SOCK"
		echo "stop it with: kill \$(cat $PIDFILE)"
		return
	fi
	if [ -s "$PIDFILE" ]; then
		# sleep as pid 1 ignores SIGTERM: remove, not stop, the containers
		"${D[@]}" rm -f demo-r3-a other-r1-a >/dev/null 2>&1 || true
		pid=$(cat "$PIDFILE")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
	fi
	rm -rf "$DIR" 2>/dev/null || echo "note: could not remove all of $DIR" >&2
}
trap teardown EXIT

echo "starting dockerd in $DIR"
mkdir -p "$DIR/data" "$DIR/exec"
setsid dockerd --data-root "$DIR/data" --exec-root "$DIR/exec" \
	--pidfile "$PIDFILE" -H "unix://$SOCK" --bridge=none \
	--iptables=false --ip6tables=false \
	--containerd-namespace "mlctl-rd-$$" \
	--containerd-plugins-namespace "mlctl-rd-$$-p" \
	>"$DIR/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 150); do
	"${D[@]}" version >/dev/null 2>&1 && break
	sleep 0.2
done
if ! "${D[@]}" version >/dev/null 2>&1; then
	echo "dockerd did not come up; its log:" >&2
	tail -20 "$DIR/dockerd.log" >&2
	exit 1
fi
VERSION=$("${D[@]}" version --format '{{.Server.Version}}')
echo "dockerd $VERSION is up"

# a one-file image: static busybox with sh and sleep links
mkdir -p "$DIR/rootfs/bin"
cp "$BUSYBOX" "$DIR/rootfs/bin/busybox"
ln -s busybox "$DIR/rootfs/bin/sh"
ln -s busybox "$DIR/rootfs/bin/sleep"
tar -C "$DIR/rootfs" -cf "$DIR/rootfs.tar" .
"${D[@]}" import "$DIR/rootfs.tar" mlctl-test/busybox:1 >/dev/null

# the container mlctl would have made, plus one of another app
"${D[@]}" run -d --name demo-r3-a --network none \
	--label mlctl.app=demo --label mlctl.revision=3 \
	--label mlctl.slot=a --label mlctl.commit=0123abc \
	--label com.example.other=x \
	mlctl-test/busybox:1 /bin/sleep 600 >/dev/null
"${D[@]}" create --name other-r1-a --network none --label mlctl.app=other \
	mlctl-test/busybox:1 /bin/sleep 1 >/dev/null
"${D[@]}" ps -a

echo "running the agent harness against it"
MLCTL_AGENT_BIN="$PWD/$BIN/mlctl-agent" \
MLCTL_TEST_DOCKER_SOCK="$SOCK" \
MLCTL_TEST_DOCKER_VERSION="$VERSION" \
MLCTL_TEST_DOCKER_APP=demo \
MLCTL_TEST_DOCKER_CONTAINER=demo-r3-a \
MLCTL_TEST_DOCKER_REVISION=3 \
	"$O/tests/unit/agent/test_agent_bin"
