#!/usr/bin/env bash
# Makes the root filesystem of the local cluster's RabbitMQ image from Debian's
# rabbitmq-server package and writes it as one uncompressed tar (the image's only layer):
#
#   hack/images/rabbitmq-rootfs.sh OUT.tar
#
# No image registry is reachable here, so the broker comes from what apt serves. The image
# behaves like the official rabbitmq:*-management image where a Shop can tell: user and
# group 999, data in /var/lib/rabbitmq, configuration read from /etc/rabbitmq/conf.d/*.conf
# (the folder RabbitMQ reads by default, where the operator mounts its files), AMQP on 5672
# and the management plugin on 15672. `make images` keeps the tar under bin/ and runs this
# again only when this script changes.
set -euo pipefail

out=${1:?usage: $0 OUT.tar}
[ "$(id -u)" = 0 ] || { echo "$0: debootstrap needs root" >&2; exit 1; }
"$(dirname "${BASH_SOURCE[0]}")/../apt-install.sh" debootstrap

suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d "$(dirname "$out")/.rabbitmq-rootfs.XXXXXX")
# debootstrap mounts /proc and /sys inside the new root and, when it fails, may leave them.
cleanup() {
	awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m" || true; done
	rm -rf "$root"
}
trap cleanup EXIT

echo "debootstrap $suite with rabbitmq-server (about 2 minutes)" >&2
# The downloaded packages are kept next to OUT, so a rerun does not fetch them again.
debs="$(cd "$(dirname "$out")" && pwd)/debootstrap-debs"
mkdir -p "$debs"
if ! debootstrap --variant=minbase --include=rabbitmq-server --cache-dir="$debs" \
	"$suite" "$root" "$mirror" >"$root.log" 2>&1; then
	tail -20 "$root.log" >&2
	rm -f "$root.log"
	exit 1
fi
rm -f "$root.log"

# What a running broker never reads: package caches and lists, documentation, the
# device nodes debootstrap made (the container runtime provides /dev).
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
	"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
	"$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/* "$root"/tmp/*

# The official image's user is 999:999; the operator runs the broker with that uid and
# fsGroup, so give Debian's rabbitmq user the same ids.
sed -i -E 's/^rabbitmq:x:[0-9]+:[0-9]+:/rabbitmq:x:999:999:/' "$root/etc/passwd"
sed -i -E 's/^rabbitmq:x:[0-9]+:/rabbitmq:x:999:/' "$root/etc/group"
mkdir -p "$root/etc/rabbitmq/conf.d" "$root/var/lib/rabbitmq" "$root/var/log/rabbitmq"

# The node name must not follow the pod's host name, or a restarted pod would find its
# queues under another node's name in the data folder.
cat >"$root/etc/rabbitmq/rabbitmq-env.conf" <<'CONF'
NODENAME=rabbit@localhost
LOGS=-
CONF
# The same defaults the official image writes to conf.d/10-defaults.conf.
cat >"$root/etc/rabbitmq/conf.d/10-defaults.conf" <<'CONF'
loopback_users.guest = false
listeners.tcp.default = 5672
management.tcp.port = 15672
CONF
echo '[rabbitmq_management].' >"$root/etc/rabbitmq/enabled_plugins"
chown -R 999:999 "$root/etc/rabbitmq" "$root/var/lib/rabbitmq" "$root/var/log/rabbitmq"

tar --numeric-owner --xattrs -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
