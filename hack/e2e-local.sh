#!/usr/bin/env bash
# `make e2e-local`: the end-to-end suite on the local single-node cluster, from nothing:
# the cluster up (hack/local-cluster.sh; its binaries are built once and cached under
# bin/), every image built and imported into its node, the suite (test/e2e) run against
# it, and the cluster down again whatever the result, leaving no process, mount, bridge
# or iptables rule behind. Needs root.
#
# A cluster this script did not start is left as it was: when the local cluster already
# runs, the suite runs on it and it stays up afterwards.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export KUBECONFIG=$root/bin/local-cluster/kubeconfig

started=false
finish() {
	local rc=$?
	if [ $rc -ne 0 ] && [ -s "$KUBECONFIG" ]; then
		echo "e2e-local: failed; the cluster's daemons logged to bin/local-cluster/logs" >&2
	fi
	if $started; then
		make --no-print-directory cluster-down || rc=1
	fi
	exit $rc
}
trap finish EXIT

t0=$SECONDS
if ! hack/local-cluster.sh status >/dev/null 2>&1; then
	started=true
	make --no-print-directory cluster-up
fi
t_up=$SECONDS
make --no-print-directory images
make --no-print-directory cluster-import
t_images=$SECONDS
make --no-print-directory e2e \
	E2E_MONGODB_ENGINE=FerretDB \
	E2E_MONGODB_IMAGE="$(make --no-print-directory -s print-FERRETDB_IMG)" \
	E2E_RABBITMQ_IMAGE="$(make --no-print-directory -s print-RABBITMQ_IMG)"
echo "e2e-local: cluster up $((t_up - t0)) s, images $((t_images - t_up)) s, suite $((SECONDS - t_images)) s"
