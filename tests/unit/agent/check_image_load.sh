#!/usr/bin/env bash
# Check image delivery on the agent against a real Docker daemon, by hand
# (not run by tests/run): starts a private dockerd on its own socket, data
# root and exec root (no bridge, no iptables), makes a two-layer image (a
# `docker import` of a static busybox, then a `docker build` that adds a
# file), saves it with `docker save` and unpacks the archive. Then
# test_blob_ops, with MLCTL_TEST_IMAGE_DIR set, puts the layers and the
# config into a fresh blob store through blob_put, removes the images from
# Docker, and loads the image back with image_load. Last, this script
# checks with the docker CLI that the image is there with the same id and
# tags and that a container runs from it. Everything is torn down on exit.
#
# Needs root, dockerd (docker.io), the docker CLI and busybox-static.
# Usage, from the top of the tree:  bash tests/unit/agent/check_image_load.sh
# Environment: O (object dir, default build), BUSYBOX (a static busybox,
# default /bin/busybox), KEEP=1 leaves the daemon running.
set -euo pipefail
cd "$(dirname "$0")/../../.."
O=${O:-build}

command -v dockerd >/dev/null || { echo "dockerd is not installed" >&2; exit 1; }
command -v docker >/dev/null || { echo "the docker CLI is not installed" >&2; exit 1; }
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || { echo "$BUSYBOX is missing: install busybox-static" >&2; exit 1; }

make --no-print-directory "$O/tests/unit/agent/test_blob_ops" >/dev/null

DIR=$(mktemp -d /tmp/mlctl-il.XXXXXX)
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
	--containerd-namespace "mlctl-il-$$" \
	--containerd-plugins-namespace "mlctl-il-$$-p" \
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
echo "dockerd $("${D[@]}" version --format '{{.Server.Version}}') is up"

# layer 1: static busybox with a few links
mkdir -p "$DIR/rootfs/bin"
cp "$BUSYBOX" "$DIR/rootfs/bin/busybox"
for l in sh cat sleep; do ln -s busybox "$DIR/rootfs/bin/$l"; done
tar -C "$DIR/rootfs" -cf "$DIR/rootfs.tar" .
"${D[@]}" import "$DIR/rootfs.tar" mlctl-test/base:1 >/dev/null

# layer 2 (and 3, identical to it: a layer named twice): one file
mkdir -p "$DIR/ctx"
echo "hello from mlctl" >"$DIR/ctx/hello.txt"
touch -d '2020-01-01 00:00:00' "$DIR/ctx/hello.txt"
cat >"$DIR/ctx/Dockerfile" <<'DOCKERFILE'
FROM mlctl-test/base:1
COPY hello.txt /hello.txt
COPY hello.txt /hello.txt
CMD ["/bin/cat", "/hello.txt"]
DOCKERFILE
DOCKER_BUILDKIT=0 "${D[@]}" build -q -t mlctl-test/app:2 -t mlctl-test/app:latest \
	--network none "$DIR/ctx" >/dev/null 2>"$DIR/build.log" || {
	cat "$DIR/build.log" >&2
	exit 1
}
ID=$("${D[@]}" image inspect --format '{{.Id}}' mlctl-test/app:2)
echo "built $ID"

mkdir -p "$DIR/saved"
"${D[@]}" save mlctl-test/app:2 mlctl-test/app:latest -o "$DIR/app.tar"
tar -C "$DIR/saved" -xf "$DIR/app.tar"

echo "running test_blob_ops against it"
MLCTL_TEST_DOCKER_SOCK="$SOCK" \
MLCTL_TEST_IMAGE_DIR="$DIR/saved" \
MLCTL_TEST_IMAGE_REMOVE="mlctl-test/app:2 mlctl-test/app:latest mlctl-test/base:1" \
	"$O/tests/unit/agent/test_blob_ops"

echo "checking with the docker CLI"
"${D[@]}" images --no-trunc
got=$("${D[@]}" image inspect --format '{{.Id}} {{.RepoTags}}' "$ID")
case "$got" in
"$ID "*mlctl-test/app:2*) ;;
*) echo "FAIL: docker image inspect says '$got'" >&2; exit 1 ;;
esac
for t in mlctl-test/app:latest mlctl-test/loaded:by-agent; do
	[ "$("${D[@]}" image inspect --format '{{.Id}}' "$t")" = "$ID" ] ||
		{ echo "FAIL: $t is not $ID" >&2; exit 1; }
done
out=$("${D[@]}" run --rm --network none mlctl-test/app:2)
[ "$out" = "hello from mlctl" ] || { echo "FAIL: the container said '$out'" >&2; exit 1; }
echo "OK: image $ID loaded from the blob store, tagged, and runs"
