#!/usr/bin/env bash
# Builds Kubernetes binaries from the Go module proxy into a cached folder and prints
# that folder. With no arguments it builds what envtest needs (kube-apiserver, etcd,
# kubectl), so `export KUBEBUILDER_ASSETS=$(hack/kube-binaries.sh)` is all a test needs.
# Release binaries cannot be downloaded on our machines (no setup-envtest), so they are
# compiled from hack/tools/kube, whose go.mod pins the versions. A binary already in
# the folder is kept while those pins are unchanged (.pins holds their digest): the first
# run takes minutes, later runs none.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# KUBE_TOOLS_MODULE names another module of hack/tools that pins Kubernetes, such as
# hack/tools/kube-min (the oldest supported; it builds kube-apiserver only).
mod="${KUBE_TOOLS_MODULE:-$root/hack/tools/kube}"
k8s_version=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3; exit}' "$mod/go.mod")
[ -n "$k8s_version" ] || { echo "$mod/go.mod requires no k8s.io/kubernetes" >&2; exit 1; }
out="${KUBE_BINARIES_DIR:-$root/bin/k8s/$k8s_version-$(go env GOOS)-$(go env GOARCH)}"
commands=("$@")
[ ${#commands[@]} -gt 0 ] || commands=(kube-apiserver etcd kubectl)

mkdir -p "$out"
# One build at a time: a second caller waits for the first and then finds the binaries.
exec 9>"$out/.lock"
flock 9
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w
 -X k8s.io/component-base/version.gitVersion=$k8s_version
 -X k8s.io/component-base/version.gitMajor=1
 -X k8s.io/component-base/version.gitMinor=$minor
 -X k8s.io/component-base/version.gitTreeState=clean
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"

# Built under other pins (etcd's, say: the folder is named by Kubernetes' version alone) or
# from another etcd main, every binary this script builds is stale; nothing else in the
# folder (KUBE_BINARIES_DIR may name one that holds more) is touched.
pinned=("$mod/go.mod" "$mod/go.sum")
[ ! -f "$mod/etcd/main.go" ] || pinned+=("$mod/etcd/main.go") # kube-min builds no etcd
pins=$(cat "${pinned[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/.pins" 2>/dev/null)" != "$pins" ]; then
	for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd; do
		rm -f "$out/$c"
	done
fi
missing=()
for c in "${commands[@]}"; do
	[ -x "$out/$c" ] || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
	pkgs=()
	for c in "${missing[@]}"; do
		case "$c" in
		etcd)
			[ -f "$mod/etcd/main.go" ] || { echo "$mod pins no etcd: build it from hack/tools/kube" >&2; exit 1; }
			pkgs+=(./etcd)
			;;
		*) pkgs+=("k8s.io/kubernetes/cmd/$c") ;;
		esac
	done
	echo "building ${missing[*]} ($k8s_version) into $out; the first build takes several minutes" >&2
	tmp=$(mktemp -d "$out/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
	# Move into place only when the whole build succeeded, so a broken build leaves no half folder.
	for c in "${missing[@]}"; do mv "$tmp/$c" "$out/$c"; done
fi
echo "$pins" >"$out/.pins"
echo "$out"
