# shellcheck shell=bash
# Builds the tiny base image mlctl-test/busybox:latest as a `docker save`
# tarball, without any Docker daemon: rootfs = static busybox + applet
# symlinks, packed deterministically (sorted, mtime 0, uid 0), so the layer
# digest and the image id are the same on every run and every VM.
# Sourced by tests/fleet/fleet.

FLEET_IMAGE_CACHE=${FLEET_IMAGE_CACHE:-/var/cache/mlctl-fleet}
FLEET_BUSYBOX_TAG=mlctl-test/busybox:latest

# image_busybox_tar: prints the path of the cached tarball, building it once.
image_busybox_tar() {
	local bb out key tmp root a diff id cfg
	bb=$(command -v busybox) || { echo "fleet: busybox not found (apt-get install busybox-static)" >&2; return 1; }
	bb=$(readlink -f "$bb")
	if ldd "$bb" >/dev/null 2>&1; then
		echo "fleet: $bb is dynamically linked; the image needs busybox-static" >&2
		return 1
	fi
	key=$(sha256sum "$bb" | cut -c1-16)
	out=$FLEET_IMAGE_CACHE/busybox-$key.tar
	if [ -s "$out" ]; then echo "$out"; return 0; fi
	mkdir -p "$FLEET_IMAGE_CACHE"
	tmp=$(mktemp -d "$FLEET_IMAGE_CACHE/.build.XXXXXX")
	root=$tmp/rootfs
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,var/www,tmp}
	chmod 1777 "$root/tmp"
	cp "$bb" "$root/bin/busybox"
	chmod 0755 "$root/bin/busybox"
	for a in $("$bb" --list-full); do
		[ "$a" = bin/busybox ] && continue
		[ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	echo 'mlctl fleet test image' >"$root/var/www/index.html"
	mkdir -p "$tmp/img"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
		-C "$root" -cf "$tmp/layer.tar" .
	diff=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
	mkdir -p "$tmp/img/$diff"
	mv "$tmp/layer.tar" "$tmp/img/$diff/layer.tar"
	cfg='{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",'
	cfg+='"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},'
	cfg+='"rootfs":{"type":"layers","diff_ids":["sha256:'$diff'"]},'
	cfg+='"history":[{"created":"1970-01-01T00:00:00Z","created_by":"mlctl tests/fleet: static busybox"}]}'
	printf '%s' "$cfg" >"$tmp/img/config.json"
	id=$(sha256sum "$tmp/img/config.json" | cut -d' ' -f1)
	mv "$tmp/img/config.json" "$tmp/img/$id.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
		"$id" "$FLEET_BUSYBOX_TAG" "$diff" >"$tmp/img/manifest.json"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
		-C "$tmp/img" -cf "$tmp/image.tar" manifest.json "$id.json" "$diff"
	mv -f "$tmp/image.tar" "$out"
	rm -rf "$tmp"
	echo "$out"
}
