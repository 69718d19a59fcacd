#!/usr/bin/env bash
# Installs rabbitmq-server from the distribution's packages when it is missing, for the
# services' tests, which start private RabbitMQ nodes of their own (see
# services/internal/testenv). Safe to run again: with the server present it does nothing.
# The package's own node is not started (hack/apt-install.sh).
set -euo pipefail

# The tests run the package's own scripts (the /usr/sbin wrappers switch users through su).
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
	"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" rabbitmq-server
fi

# The tests' nodes and `make run`'s listen on free loopback ports with an epmd of their own,
# so a broker already running here (the package's service, or the one RABBITMQ_URL names) is
# left alone.
echo "rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '(not from a Debian package)') installed" >&2
