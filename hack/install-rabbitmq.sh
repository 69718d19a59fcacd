#!/usr/bin/env bash
# Installs rabbitmq-server from the distribution's packages when it is missing, for the
# services' tests, which start private RabbitMQ nodes of their own (see
# services/internal/testenv). Safe to run again: with the server present it only checks
# that no package-started node holds the default ports.
#
# Package install scripts start a node as a system service. We do not want that node:
# it would hold 5672/25672/4369 and a second, unmanaged broker on the machine. So starts
# are refused during the install through policy-rc.d (the Debian mechanism for exactly
# this), and any default node found afterwards is stopped.
set -euo pipefail

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
	sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	policy=/usr/sbin/policy-rc.d
	made_policy=false
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# refuse service starts while rabbitmq-server is installed\nexit 101\n' |
			"${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		made_policy=true
	fi
	cleanup() { if $made_policy; then "${sudo[@]}" rm -f "$policy"; fi; }
	trap cleanup EXIT
	"${sudo[@]}" apt-get update
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends rabbitmq-server
	cleanup
	trap - EXIT
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A node started by the package listens on 5672 (AMQP) and 25672 (distribution). Probe the
# ports first: any rabbitmqctl call starts an epmd daemon, which we must not leave behind
# when there is nothing to stop.
if port_open 5672 || port_open 25672; then
	default_node="rabbit@$(hostname -s)"
	echo "stopping the package's default RabbitMQ node $default_node" >&2
	rabbitmqctl -q -n "$default_node" stop >/dev/null 2>&1 ||
		service rabbitmq-server stop >/dev/null 2>&1 || true
	# Its epmd is only a name registry; with the node gone it holds 4369 for nothing.
	if epmd -names 2>/dev/null | grep -q '^name '; then :; else epmd -kill >/dev/null 2>&1 || true; fi
fi

for port in 5672 25672; do
	if port_open "$port"; then
		echo "install-rabbitmq: port $port is still in use; stop the broker holding it" >&2
		exit 1
	fi
done
echo "rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server) installed; no default node running" >&2
