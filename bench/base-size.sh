#!/usr/bin/env bash
# bench/base-size.sh: the size of mlctl's Python base image (`mlctl image
# base`: minbase, no recommends, docs, locales, headers, compilers and test
# suites left out) beside the same packages on a full Debian 12 root
# (mmdebstrap's standard variant, recommends installed, nothing left out),
# both made from this machine's apt sources. Both are tar streams measured
# as they are written, so nothing is kept. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=python3,python3-numpy,python3-sklearn,python3-joblib,python3-fastapi,python3-uvicorn,python3-prometheus-client,python3-pip,tini
bash scripts/dockerd.sh
tag=$(bin/mlctl image base)
ours=$(curl -sf --unix-socket /var/run/docker.sock "http://docker/images/${tag/\//%2F}/json" | jq .Size)
full=$(SOURCE_DATE_EPOCH=1700000000 mmdebstrap --quiet --variant=standard \
	--aptopt='Apt::Install-Recommends "true"' --format=tar \
	--include="$pkgs" bookworm - /etc/apt/sources.list.d/debian.sources | wc -c)
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
echo "| image | MiB |"
echo "|---|---|"
echo "| mlctl base ($tag) | $(mib "$ours") |"
echo "| the same packages on full Debian 12 (standard, with recommends) | $(mib "$full") |"
