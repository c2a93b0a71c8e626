#!/usr/bin/env bash
# Installs every Debian package mlctl needs to build, test and run the demo.
# Idempotent: packages already present are skipped, apt runs only when needed.
set -euo pipefail

PKGS=(
	build-essential pkg-config git clang libclang-rt-14-dev
	libyaml-dev libgit2-dev libsqlite3-dev sqlite3 libcmocka-dev
	libjansson-dev libcurl4-openssl-dev libarchive-dev libzstd-dev libssh-dev libssl-dev
	docker.io openssh-server openssh-client haproxy iproute2 iptables
	util-linux procps busybox-static curl wrk time jq zsh groff-base
	nodejs prometheus
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

# Debian's nodejs comes without npm; a nodejs that bundles it needs none
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"

# The offline validator of rendered Kubernetes manifests (tests/k8s): npm
# packages from its lock file, into tests/k8s/node_modules (gitignored).
k8s=$(cd "$(dirname "$0")/../tests/k8s" && pwd)
if [ ! -f "$k8s/node_modules/.package-lock.json" ] ||
   [ "$k8s/package-lock.json" -nt "$k8s/node_modules/.package-lock.json" ]; then
	echo "setup: installing the npm packages of tests/k8s"
	(cd "$k8s" && npm ci --loglevel=error)
fi
