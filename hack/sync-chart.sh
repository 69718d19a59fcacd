#!/usr/bin/env bash
# Copies what controller-gen generates into the Helm chart, which cannot read files outside
# its folder: the CRDs (config/crd/bases -> charts/shopkeeper/crds) and the manager's
# ClusterRole (config/rbac/role.yaml -> charts/shopkeeper/files/manager-role.yaml, whose
# rules the chart's ClusterRole uses). `make manifests` runs it; charts/chart_test.go fails
# when the copies differ from the sources.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart="$root/charts/shopkeeper"

rm -f "$chart"/crds/*.yaml
cp "$root"/config/crd/bases/*.yaml "$chart/crds/"
cp "$root/config/rbac/role.yaml" "$chart/files/manager-role.yaml"
