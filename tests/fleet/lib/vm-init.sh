#!/bin/bash
# "init" of one simulated VM. Started by `fleet up` as
#   nsenter --net=/run/netns/NS unshare -m -u --propagation private bash vm-init.sh
# so it already runs in the VM's network namespace and in fresh private mount
# and UTS namespaces. It sets up the VM's private mounts, starts dockerd (app
# VMs) and sshd, reports readiness through files in the VM dir, then waits
# until it is told to stop (SIGTERM). Everything the VM runs descends from it
# and shares its mount namespace.
#
# Environment (set by fleet): FLEET_DIR VM_NAME VM_ADDR VM_ROLE(app|lb)
#   FLEET_CG_SYS (cgroup dirs to join, space separated, may be empty)
#   FLEET_CG_PARENT (docker --cgroup-parent) FLEET_DOCKER_HOST_SOCK (may be empty)
#   FLEET_TOKEN (inherited marker, lets `fleet down` find strays)
#   FLEET_DOCKERD_ARGS (extra dockerd arguments, word-split; may be empty)
set -u

VM_DIR=$FLEET_DIR/vms/$VM_NAME
log() { echo "init[$VM_NAME] $(date +%T.%3N) $*"; }
fail() {
	log "FATAL: $*"
	echo "$*" >"$VM_DIR/init.failed"
	exit 1
}

# Do not keep the caller's pipes or other descriptors open (a test runner
# reading `fleet up`'s output would otherwise never see EOF).
for fd in /proc/$$/fd/*; do
	n=${fd##*/}
	case $n in 0 | 1 | 2 | 255) ;; *) eval "exec $n>&-" 2>/dev/null ;; esac
done

# Refuse to run in the host's mount namespace.
[ /proc/self/ns/mnt -ef /proc/1/ns/mnt ] && fail "not in a private mount namespace"

for cg in ${FLEET_CG_SYS:-}; do
	echo $$ >"$cg/cgroup.procs" 2>/dev/null || log "warning: cannot join cgroup $cg"
done

cd "$FLEET_DIR" || fail "cannot cd $FLEET_DIR"
hostname "$VM_NAME" || log "warning: cannot set hostname"

# Copies of the host's /run/netns/* mounts would keep other VMs' network
# namespaces alive as long as this VM lives: drop them.
umount -l /run/netns 2>/dev/null || true
mount -t tmpfs -o mode=0755,size=256m "fleet-$VM_NAME-run" /run || fail "mount tmpfs /run"
mkdir -p /run/fleet && mount --bind . /run/fleet || fail "bind $FLEET_DIR on /run/fleet"

# VM-private directories: /run/fleet/vms/NAME/data/KEY is mounted on PATH.
# /tmp comes last (FLEET_DIR may live below it).
while read -r key path; do
	[ -n "$key" ] || continue
	src=/run/fleet/vms/$VM_NAME/data/$key
	mkdir -p "$src" "$path" 2>/dev/null
	mount --bind "$src" "$path" || fail "bind $src on $path"
done <<'EOF'
docker /var/lib/docker
containerd /var/lib/containerd
etc-docker /etc/docker
mlctl /var/lib/mlctl
root /root
etc-haproxy /etc/haproxy
haproxy /var/lib/haproxy
tmp /tmp
EOF
chmod 1777 /tmp
chmod 0700 /root
# If FLEET_DIR was hidden by one of the mounts above, put it back.
if [ ! -e "$FLEET_DIR/fleet.state" ]; then
	mkdir -p "$FLEET_DIR" && mount --bind /run/fleet "$FLEET_DIR" || fail "re-bind $FLEET_DIR"
fi
mkdir -p -m 0755 /run/sshd /run/haproxy /run/mlctl
ip -batch - <<NET || fail "network setup (ip addr add $VM_ADDR/24 dev eth0)"
addr add $VM_ADDR/24 dev eth0
link set eth0 up
link set lo up
NET
echo 1 >/proc/sys/net/ipv6/conf/eth0/disable_ipv6 2>/dev/null

if [ "$VM_ROLE" = app ]; then
	hosts=(-H unix:///run/docker.sock)
	[ -n "${FLEET_DOCKER_HOST_SOCK:-}" ] && hosts+=(-H "unix://$FLEET_DOCKER_HOST_SOCK")
	cgp=()
	[ -n "${FLEET_CG_PARENT:-}" ] && cgp=(--cgroup-parent "$FLEET_CG_PARENT")
	# the subshell records dockerd's exit, so `fleet up` fails fast; it
	# starts dockerd again when `fleet dockerd NAME restart` asked for it
	# (the file dockerd.restart) before stopping it
	# shellcheck disable=SC2086
	(
		while :; do
			dockerd --data-root /var/lib/docker --exec-root /run/docker \
				--pidfile "$VM_DIR/dockerd.pid" "${hosts[@]}" "${cgp[@]}" \
				--shutdown-timeout 2 ${FLEET_DOCKERD_ARGS:-} </dev/null >>"$VM_DIR/dockerd.log" 2>&1
			rc=$?
			rm "$VM_DIR/dockerd.restart" 2>/dev/null || break
			log "dockerd exited ($rc), starting it again" >>"$VM_DIR/dockerd.log"
		done
		echo "$rc" >"$VM_DIR/dockerd.exit"
	) &
	log "dockerd started"
fi

(
	/usr/sbin/sshd -D -e -f "$VM_DIR/sshd_config" </dev/null >>"$VM_DIR/sshd.log" 2>&1
	echo "$?" >"$VM_DIR/sshd.exit"
) &
log "sshd started"

touch "$VM_DIR/init.ready"
trap 'kill $sleeper 2>/dev/null; log "stopping"; exit 0' TERM INT HUP
while :; do
	sleep 3600 &
	sleeper=$!
	wait $sleeper
done
