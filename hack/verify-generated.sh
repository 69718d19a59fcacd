#!/usr/bin/env bash
# Fails when the generated files (DeepCopy methods, CRDs, RBAC role) do not match their
# sources: it regenerates them and compares. The tree is left regenerated, so the fix is to
# review the change and commit it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generated() {
	find api -name 'zz_generated.*.go' 2>/dev/null
	find config/crd/bases config/rbac charts/shopkeeper/crds charts/shopkeeper/files -name '*.yaml' 2>/dev/null
}
fingerprint() { generated | LC_ALL=C sort | xargs -r sha256sum; }

before=$(fingerprint)
make --no-print-directory -s generate manifests >/dev/null
after=$(fingerprint)

if [ "$before" != "$after" ]; then
	echo "Generated files were stale; they are regenerated now. Review and commit them:" >&2
	diff <(echo "$before") <(echo "$after") | grep '^[<>]' | awk '{print "  " $3}' | sort -u >&2
	exit 1
fi
echo "generated files are up to date"
