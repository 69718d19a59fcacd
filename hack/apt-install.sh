#!/usr/bin/env bash
# apt-install.sh PACKAGE...: installs the Debian packages among PACKAGE that are missing, and
# prints what it installs on standard error. Nothing else is downloaded by the project but Go
# modules and these packages.
#
# Package install scripts start the daemons they ship (rabbitmq-server, containerd, nginx) as
# system services. The project starts the daemons it needs itself, on free ports and in folders
# of its own, so those starts are refused during the install through policy-rc.d, the Debian
# mechanism made for exactly this; and the services of the packages it installs are disabled, so
# they do not start at the next boot either: no second, unmanaged daemon is left on the machine.
set -euo pipefail

missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
policy=/usr/sbin/policy-rc.d
made_policy=false
cleanup() { if $made_policy; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# refuse service starts while packages are installed (hack/apt-install.sh)\nexit 101\n' |
		"${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	made_policy=true
fi
echo "installing ${missing[*]} (Debian packages)" >&2
# Another apt (apt-daily, unattended-upgrades, a second install) may hold apt's locks for a while:
# both steps wait for them, up to 10 minutes, rather than fail. DPkg::Lock::Timeout covers dpkg's
# lock; apt-get update refuses at once on the lists' lock, so it is tried again while that is why.
lock_timeout=(-o DPkg::Lock::Timeout=600)
for try in $(seq 60); do
	if out=$("${sudo[@]}" apt-get "${lock_timeout[@]}" update -qq 2>&1); then break; fi
	if [ "$try" -eq 60 ] || ! grep -q 'Could not get lock' <<<"$out"; then
		echo "$out" >&2
		exit 1
	fi
	[ "$try" -gt 1 ] || echo "apt-get update: another apt holds its lock; waiting (up to 10 minutes)" >&2
	sleep 10
done
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get "${lock_timeout[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Disabled at boot, for systemd and for the init scripts (packages that were already installed are
# left as they were).
for p in "${missing[@]}"; do
	while read -r f; do
		case "$f" in
		/lib/systemd/system/*.service | /usr/lib/systemd/system/*.service)
			if command -v systemctl >/dev/null; then "${sudo[@]}" systemctl disable --quiet "${f##*/}" 2>/dev/null || true; fi
			;;
		/etc/init.d/*)
			if command -v update-rc.d >/dev/null; then "${sudo[@]}" update-rc.d "${f##*/}" disable >/dev/null 2>&1 || true; fi
			;;
		esac
	done < <(dpkg -L "$p" 2>/dev/null || true)
done
