#!/usr/bin/env bash
# `make demo`: the shop on Kubernetes, from one Shop manifest.
#
#   hack/demo-cluster.sh up     a cluster, the operator, the sample Shop, the demo story
#   hack/demo-cluster.sh down   remove the Shop and the operator (and the local cluster)
#
# The cluster is the current kubeconfig's when it answers; otherwise the local single-node
# cluster of hack/local-cluster.sh is brought up (needs root; the first time builds its
# binaries and images, about 30 minutes on 2 cores, then seconds). On the local cluster
# every image comes from `make images` and is imported into its node. Another cluster
# runs the official store images and is given only the operator's and the services'
# (`make image-manager image-services`): a kind cluster (a kind-* context, with kind
# installed) has them loaded; any other must pull them or already hold them.
#
# Then: the operator from config/default, the sample Shop (config/samples; on the local
# cluster config/samples/local, which runs FerretDB and the stores' local images), a wait
# for condition Ready with the components printed as they come up, and hack/demo.sh through
# a port-forward to the gateway. Running it again reuses all of it. VERSION (the Makefile's,
# v0.1.0 by default) is the tag of the images it builds and of those the Shop runs (on the
# local cluster, the broker's image is RABBITMQ_IMG, as make images tags it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
shop=${SHOP:-demo}
namespace=${NAMESPACE:-default}
ready_timeout=${READY_TIMEOUT:-900} # seconds
local_kubeconfig=$root/bin/local-cluster/kubeconfig

log() { printf '\n### %s\n' "$*"; }
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

kubectl_bin=$(hack/kube-binaries.sh kubectl)/kubectl
kubectl() { "$kubectl_bin" "$@"; }

# cluster_answers: the current kubeconfig names a cluster that is up.
cluster_answers() {
	kubectl get --raw /readyz --request-timeout 5s >/dev/null 2>&1
}

# kubeconfig_is_local: KUBECONFIG names the local cluster's kubeconfig, however it is spelt
# (make runs this script from the repository's root, which a relative path is read from).
kubeconfig_is_local() {
	[ -n "${KUBECONFIG:-}" ] && [ "$(realpath -m -- "$KUBECONFIG")" = "$local_kubeconfig" ]
}

use_cluster() {
	local_cluster=false
	if kubeconfig_is_local; then
		local_cluster=true
	elif [ -z "${KUBECONFIG:-}" ] && [ ! -s "$HOME/.kube/config" ]; then
		local_cluster=true
	elif ! cluster_answers; then
		echo "the current kubeconfig's cluster does not answer: using the local cluster instead"
		local_cluster=true
	fi
	if $local_cluster; then
		export KUBECONFIG=$local_kubeconfig
		if ! cluster_answers; then
			log "Bringing up the local cluster (hack/local-cluster.sh)"
			make --no-print-directory cluster-up
		fi
	fi
	log "Cluster: $(kubectl config current-context) ($(kubectl get nodes --no-headers 2>/dev/null | wc -l) node)"
}

images() {
	local ctx f
	ctx=$(kubectl config current-context 2>/dev/null || true)
	if $local_cluster; then
		log "Images (make images), loaded into the node"
		make --no-print-directory images
		make --no-print-directory cluster-import
		return
	fi
	# Elsewhere the sample Shop runs the official store images, which the cluster pulls.
	log "Images (make image-manager image-services)"
	make --no-print-directory image-manager image-services
	if [[ $ctx == kind-* ]] && command -v kind >/dev/null; then
		for f in manager services; do
			kind load image-archive --name "${ctx#kind-}" "bin/images/$f.tar"
		done
	else
		echo "cluster $ctx: its nodes must pull or already hold bin/images/manager.tar and services.tar (kind load image-archive, or a push)"
	fi
}

# ours: the operator's Deployment as config/default makes it.
ours=shopkeeper-system/shopkeeper-controller-manager
# installed_mark: on a cluster other than the local one, the demo notes there, for
# demo-down, that it installed the operator itself: one the user had is left alone.
installed_mark() { echo "$root/bin/demo/installed-operator.$(kubectl config current-context 2>/dev/null || echo none)"; }

# existing_operator: sets existing to the operator of another installation that watches the
# demo's namespace, if one runs; stops when one runs that does not watch it.
existing_operator() {
	local others="" serving="" d args watched
	# Another installation's operator (the Helm chart's, say) already reconciles the Shops of
	# the namespaces it watches: a second one beside it would reconcile them twice.
	if ! $local_cluster; then
		while read -r d args; do
			[ -n "$d" ] && [ "$d" != "$ours" ] || continue
			others="$others $d"
			watched=$(grep -oE -- '--watch-namespaces=[^"]*' <<<"$args" | cut -d= -f2 || true)
			if [ -z "$watched" ] || [[ ,$watched, == *",$namespace,"* ]]; then
				serving="$serving $d"
			fi
		done < <(kubectl get deployments -A -l app.kubernetes.io/name=shopkeeper \
			-o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name} {.spec.template.spec.containers[*].args}{"\n"}{end}' 2>/dev/null)
	fi
	existing=$(echo $serving)
	if [ -z "$existing" ] && [ -n "$others" ]; then
		die "an operator runs in this cluster ($(echo $others)) but does not watch namespace $namespace, and one installed beside it would reconcile its Shops too: run the demo in a namespace it watches (NAMESPACE=<namespace> make demo)"
	fi
}

operator() {
	if [ -n "$existing" ]; then
		log "The operator: already running in this cluster ($existing); the demo uses it"
		return
	fi
	if ! $local_cluster && ! kubectl -n "${ours%/*}" get "deployment/${ours#*/}" >/dev/null 2>&1; then
		mkdir -p "$root/bin/demo" && touch "$(installed_mark)"
	fi
	log "The operator (config/default)"
	make --no-print-directory deploy >/dev/null
	kubectl -n "${ours%/*}" rollout status "deployment/${ours#*/}" --timeout=300s
}

apply_shop() {
	local sample=config/samples
	$local_cluster && sample=config/samples/local
	restart_gateway=false
	if kubectl -n "$namespace" get "shop/$shop" >/dev/null 2>&1; then
		# The gateway remembers the last run's requests per client: a fresh one lets the story's
		# rate-limit step count from zero again.
		restart_gateway=true
	fi
	if [ -z "${VERSION:-}" ]; then
		log "kubectl apply -k $sample"
		kubectl -n "$namespace" apply -k "$sample"
	else
		# The images were built with VERSION's tag (make images): the Shop asks for those, not
		# for the sample's, which the local cluster's node does not hold (it pulls nothing).
		local spec='"version":"'$VERSION'"' rabbitmq_img=${RABBITMQ_IMG:-$(make --no-print-directory -s print-RABBITMQ_IMG)}
		$local_cluster && spec+=',"rabbitmq":{"image":"'$rabbitmq_img'"}'
		log "kubectl apply -k $sample, with version $VERSION"
		kubectl kustomize "$sample" |
			kubectl patch --local -f - --type merge -p "{\"spec\":{$spec}}" -o yaml |
			kubectl -n "$namespace" apply -f -
	fi
	if $restart_gateway; then
		kubectl -n "$namespace" rollout restart "deployment/$shop-gateway"
	fi
}

wait_ready() {
	log "Waiting for shop/$shop to be Ready"
	local deadline=$((SECONDS + ready_timeout)) last="" now
	# progress prints the components' ready replicas and the Ready condition when they changed.
	progress() {
		now=$(kubectl -n "$namespace" get "shop/$shop" -o go-template='{{range $n, $c := .status.components}}{{$n}} {{$c.ready}}/{{$c.desired}}  {{end}}{{range .status.conditions}}{{if eq .type "Ready"}}| Ready={{.status}} ({{.reason}}){{end}}{{end}}' 2>/dev/null || true)
		if [ "$now" != "$last" ]; then
			printf '%4ds  %s\n' "$((SECONDS - start))" "$now"
			last=$now
		fi
	}
	while :; do
		progress
		if kubectl -n "$namespace" wait --for=condition=Ready "shop/$shop" --timeout=2s >/dev/null 2>&1 &&
			kubectl -n "$namespace" rollout status "deployment/$shop-gateway" --timeout=2s >/dev/null 2>&1; then
			break
		fi
		[ $SECONDS -lt $deadline ] || {
			kubectl -n "$namespace" get "shop/$shop" -o yaml >&2
			die "shop/$shop not Ready after ${ready_timeout}s"
		}
		sleep 2
	done
	progress # the state it became Ready in
	kubectl -n "$namespace" get "shop/$shop"
}

story() {
	local port=""
	pf_log=$(mktemp)
	log "Port-forward to the gateway: kubectl port-forward svc/$shop-gateway"
	kubectl -n "$namespace" port-forward "svc/$shop-gateway" :80 >"$pf_log" 2>&1 &
	pf=$!
	trap 'kill "$pf" 2>/dev/null || true; rm -f "$pf_log"' EXIT
	for _ in $(seq 1 60); do
		port=$(sed -nE 's/^Forwarding from 127\.0\.0\.1:([0-9]+) .*/\1/p' "$pf_log" | head -n1)
		[ -n "$port" ] && break
		kill -0 "$pf" 2>/dev/null || die "port-forward failed: $(cat "$pf_log")"
		sleep 0.5
	done
	[ -n "$port" ] || die "port-forward did not start: $(cat "$pf_log")"
	log "The story, through the gateway at 127.0.0.1:$port"
	limit=$(kubectl -n "$namespace" get "shop/$shop" -o jsonpath='{.spec.services.payment.limitCents}')
	PAYMENT_LIMIT_CENTS=${limit:-100000} hack/demo.sh "http://127.0.0.1:$port"
}

down() {
	# The cluster up chose: the local one when no other was configured or answered.
	if [ -z "${KUBECONFIG:-}" ] && [ ! -s "$HOME/.kube/config" ]; then
		export KUBECONFIG=$local_kubeconfig
	elif ! cluster_answers && [ -s "$root/bin/local-cluster/run/bins" ]; then
		export KUBECONFIG=$local_kubeconfig
	fi
	if cluster_answers; then
		# Foreground: the Shop goes once its children, and theirs (pods), are gone; then its
		# claims' volumes, which the provisioner removes after them.
		kubectl -n "$namespace" delete "shop/$shop" --ignore-not-found --cascade=foreground --wait=true --timeout=180s || true
		for _ in $(seq 60); do
			kubectl get pv -o jsonpath='{range .items[*]}{.spec.claimRef.namespace}/{.spec.claimRef.name}{"\n"}{end}' 2>/dev/null |
				grep -Eq "^$namespace/$shop-(mongodb|rabbitmq)\$" || break
			sleep 1
		done
		if kubeconfig_is_local; then
			make --no-print-directory undeploy >/dev/null 2>&1 || true
		elif [ -e "$(installed_mark)" ]; then
			# The operator the demo installed, but not the CRD, which deleting would take every
			# Shop of the cluster with it, nor its namespace, which may hold more than the demo's.
			make --no-print-directory "$root/bin/kustomize" >/dev/null
			"$root/bin/kustomize" build config/default |
				awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/(^|\n)kind: (CustomResourceDefinition|Namespace)\n/' |
				kubectl delete --ignore-not-found -f - >/dev/null 2>&1 || true
			rm -f "$(installed_mark)"
			echo "kept: the Shop CRD and namespace ${ours%/*} (make undeploy removes them, and every Shop with the CRD)"
		fi
	fi
	if kubeconfig_is_local && [ -s "$root/bin/local-cluster/run/bins" ]; then
		make --no-print-directory cluster-down
	fi
}

start=$SECONDS
case "${1:-up}" in
up)
	use_cluster
	existing_operator
	images
	operator
	apply_shop
	wait_ready
	story
	log "Done in $((SECONDS - start)) s. The shop keeps running: kubectl get shop,pods" \
		"(with export ${KUBECONFIG:+KUBECONFIG=$KUBECONFIG }PATH=$(dirname "$kubectl_bin"):\$PATH); make demo-down removes it."
	;;
down) down ;;
*) die "usage: $0 up|down" ;;
esac
