#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, from parts built or installed
# here: no image registry and no release download can be reached, so kind cannot run.
#
#   hack/local-cluster.sh up       start it (the first run builds the binaries: minutes)
#   hack/local-cluster.sh status   say what runs
#   hack/local-cluster.sh down     stop it and remove every process, mount, link and rule
#   hack/local-cluster.sh import FILE.tar...   load image archives into the node
#
# Parts: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and
# kubectl built from k8s.io/kubernetes (hack/kube-binaries.sh, pinned in hack/tools/kube);
# etcd; CoreDNS with only the cluster-local plugins (hack/tools/coredns); containerd, runc,
# the CNI plugins and iptables from Debian. Certificates are made with openssl at the first
# `up` and kept. The sandbox image (hack/local-cluster/pause) must be imported before pods
# can start: `up` imports bin/images/pause.tar, and stops without it (`make image-pause`
# builds it, as `make cluster-up` and `make images` do).
#
# Everything runs as root and listens on the cni0 bridge (10.244.0.1) or loopback only.
# NetworkPolicies are stored but not enforced: the CNI plugins here (bridge, portmap) have no
# policy engine, so any pod reaches any other (the Shop's stores and services included).
# The state lives in bin/local-cluster: kubeconfig, pki, etcd data, containerd's images
# (kept across down/up), logs of each daemon in logs/, their PIDs in run/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${LOCAL_CLUSTER_DIR:-$root/bin/local-cluster}
templates="$root/hack/local-cluster"
version=${VERSION:-v0.1.0}
pause_image=${PAUSE_IMG:-localhost/shopkeeper/pause:$version}
coredns_image=localhost/shopkeeper/coredns:$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/coredns/coredns") {print $(i + 1); exit}}' "$root/hack/tools/coredns/go.mod")

node=local-node
bridge=cni0
node_ip=10.244.0.1
pod_cidr=10.244.0.0/24
service_cidr=10.96.0.0/16
api_service_ip=10.96.0.1
dns_ip=10.96.0.10
api_port=6443
etcd_port=12379
etcd_peer_port=12380
# containerd's runtime state and socket: a path of our own, so a containerd the machine
# may already run is left alone.
run_dir=/run/shopkeeper-local-cluster
sock=$run_dir/containerd.sock
# A comment on every iptables rule this script adds, so `down` finds them again.
rule_tag=shopkeeper-local-cluster

log() { printf '%s local-cluster: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

kubectl() { "$bins/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }

# ---------------------------------------------------------------- parts

install_packages() {
	"$root/hack/apt-install.sh" containerd runc containernetworking-plugins iptables conntrack openssl curl gettext-base
}

build_binaries() {
	bins=$("$root/hack/kube-binaries.sh" kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd)
	# status and down use the same binaries without building anything.
	mkdir -p "$state/run"
	echo "$bins" >"$state/run/bins"
	coredns="$root/bin/coredns"
	# Rebuilt when any of its sources (its main, the plugins it links, the pinned versions)
	# is newer than the binary.
	if [ ! -x "$coredns" ] || [ -n "$(find "$root/hack/tools/coredns" -newer "$coredns" \( -name '*.go' -o -name go.mod -o -name go.sum \) | head -1)" ]; then
		log "building CoreDNS (hack/tools/coredns; a few minutes the first time)"
		(cd "$root/hack/tools/coredns" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$coredns.tmp" . && mv "$coredns.tmp" "$coredns")
	fi
	# CoreDNS runs as a pod, like in any cluster: its image is the binary alone.
	if [ ! -s "$state/coredns.tar" ] || [ "$coredns" -nt "$state/coredns.tar" ]; then
		[ -x "$root/bin/mkimage" ] || (cd "$root/hack/tools" && go build -o "$root/bin/mkimage" ./mkimage)
		mkdir -p "$state"
		"$root/bin/mkimage" -o "$state/coredns.tar" -t "$coredns_image" -add "$coredns:/coredns" \
			-user 65532:65532 -entrypoint /coredns
	fi
}

# ---------------------------------------------------------------- certificates

# cert NAME CN [O] [SAN]: a key and a certificate signed by the cluster CA.
cert() {
	local name=$1 cn=$2 org=${3:-} san=${4:-} subj
	[ -s "$state/pki/$name.crt" ] && return
	subj="/CN=$cn"
	[ -n "$org" ] && subj="/O=$org$subj"
	openssl genrsa -out "$state/pki/$name.key" 2048 2>/dev/null
	openssl req -new -key "$state/pki/$name.key" -subj "$subj" -out "$state/pki/$name.csr" 2>/dev/null
	local ext="$state/pki/$name.ext"
	{
		echo "basicConstraints = critical, CA:FALSE"
		echo "keyUsage = critical, digitalSignature, keyEncipherment"
		if [ -n "$san" ]; then
			echo "extendedKeyUsage = serverAuth, clientAuth"
			echo "subjectAltName = $san"
		else
			echo "extendedKeyUsage = clientAuth"
		fi
	} >"$ext"
	openssl x509 -req -in "$state/pki/$name.csr" -CA "$state/pki/ca.crt" -CAkey "$state/pki/ca.key" \
		-CAcreateserial -days 365 -sha256 -extfile "$ext" -out "$state/pki/$name.crt" 2>/dev/null
	rm -f "$state/pki/$name.csr" "$ext"
}

make_pki() {
	mkdir -p "$state/pki"
	chmod 700 "$state/pki"
	if [ ! -s "$state/pki/ca.crt" ]; then
		log "making the cluster's certificates"
		openssl genrsa -out "$state/pki/ca.key" 2048 2>/dev/null
		openssl req -x509 -new -key "$state/pki/ca.key" -subj "/CN=shopkeeper-local-cluster-ca" \
			-days 3650 -sha256 -out "$state/pki/ca.crt" 2>/dev/null
		openssl genrsa -out "$state/pki/sa.key" 2048 2>/dev/null
		openssl rsa -in "$state/pki/sa.key" -pubout -out "$state/pki/sa.pub" 2>/dev/null
	fi
	cert apiserver kube-apiserver "" \
		"IP:$node_ip,IP:127.0.0.1,IP:$api_service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	cert admin kubernetes-admin system:masters
	cert controller-manager system:kube-controller-manager
	cert scheduler system:kube-scheduler
	cert kubelet "system:node:$node" system:nodes
	cert kube-proxy system:kube-proxy
	for c in admin controller-manager scheduler kubelet kube-proxy; do
		kubeconfig "$c" >"$state/$c.kubeconfig"
	done
	cp "$state/admin.kubeconfig" "$state/kubeconfig"
}

# kubeconfig NAME: a kubeconfig that authenticates with the certificate NAME.
kubeconfig() {
	cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$node_ip:$api_port
    certificate-authority-data: $(base64 -w0 "$state/pki/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$state/pki/$1.crt")
    client-key-data: $(base64 -w0 "$state/pki/$1.key")
contexts:
- name: local
  context: {cluster: local, user: $1}
current-context: local
EOF
}

# ---------------------------------------------------------------- configuration

# render TEMPLATE OUT: the template with ${VARIABLES} of this script filled in. OUT is
# rewritten only when its content changes: kube-proxy exits when its file is touched.
render() {
	local tmp
	tmp=$(mktemp)
	STATE=$state RUN_DIR=$run_dir SOCK=$sock NODE=$node NODE_IP=$node_ip POD_CIDR=$pod_cidr \
		DNS_IP=$dns_ip PAUSE_IMAGE=$pause_image COREDNS_IMAGE=$coredns_image BRIDGE=$bridge API_PORT=$api_port \
		envsubst <"$templates/$1" >"$tmp"
	if [ "$2" = /dev/stdout ]; then
		cat "$tmp"
		rm -f "$tmp"
	elif cmp -s "$tmp" "$2"; then
		rm -f "$tmp"
	else
		mv "$tmp" "$2"
		chmod 644 "$2"
	fi
}

configure() {
	mkdir -p "$state"/{logs,run,etcd,containerd,kubelet,cni/net.d,cni/ipam,volumes} "$run_dir"
	render containerd.toml "$state/containerd/config.toml"
	render 10-shopkeeper.conflist "$state/cni/net.d/10-shopkeeper.conflist"
	render kubelet.yaml "$state/kubelet.yaml"
	render kube-proxy.yaml "$state/kube-proxy.yaml"
}

network_up() {
	if ! ip link show "$bridge" >/dev/null 2>&1; then
		ip link add "$bridge" type bridge
	fi
	ip addr replace "$node_ip/24" dev "$bridge"
	ip link set "$bridge" up
	sysctl -qw net.ipv4.ip_forward=1
	# Pods reach each other and the node through the bridge: let the FORWARD chain pass
	# them whatever the machine's default policy.
	iptables -C FORWARD -i "$bridge" -m comment --comment "$rule_tag" -j ACCEPT 2>/dev/null ||
		iptables -I FORWARD -i "$bridge" -m comment --comment "$rule_tag" -j ACCEPT
	iptables -C FORWARD -o "$bridge" -m comment --comment "$rule_tag" -j ACCEPT 2>/dev/null ||
		iptables -I FORWARD -o "$bridge" -m comment --comment "$rule_tag" -j ACCEPT
	# A packet still bound for a Service address here was not translated by kube-proxy (in the
	# instant it moves a Service between no endpoints and some): refuse it, above the rules
	# that pass the bridge, rather than masquerade it out to whatever the outer network has at
	# that address (a connection the gateway would keep for minutes).
	iptables -D FORWARD -d "$service_cidr" -m comment --comment "$rule_tag" -j REJECT 2>/dev/null || true
	iptables -I FORWARD -d "$service_cidr" -m comment --comment "$rule_tag" -j REJECT
}

# ---------------------------------------------------------------- daemons

# start NAME COMMAND...: run a daemon in its own session, logging to logs/NAME.log.
start() {
	local name=$1
	shift
	if running "$name"; then return; fi
	setsid "$@" >>"$state/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$state/run/$name.pid"
}

# running NAME: the daemon NAME of this cluster runs. Its PID file outlives a reboot, after which
# the PID may be another process's: only one whose command line names the state folder counts.
running() {
	local pidfile="$state/run/$1.pid" pid
	[ -s "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$state/"
}

# stop_daemon NAME: SIGTERM to the daemon NAME, SIGKILL after 10 s.
stop_daemon() {
	local pid
	if running "$1"; then
		pid=$(cat "$state/run/$1.pid")
		kill -TERM "$pid"
		for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$state/run/$1.pid"
}

# wait_for WHAT SECONDS COMMAND...: retry COMMAND each half second until it succeeds.
wait_for() {
	local what=$1 deadline=$((SECONDS + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || die "$what did not come up; see $state/logs"
		sleep 0.5
	done
}

start_control_plane() {
	start etcd "$bins/etcd" --name local --data-dir "$state/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
		--initial-cluster "local=http://127.0.0.1:$etcd_peer_port" --log-level warn
	start kube-apiserver "$bins/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address "$node_ip" --advertise-address "$node_ip" --secure-port "$api_port" \
		--service-cluster-ip-range "$service_cidr" \
		--client-ca-file "$state/pki/ca.crt" \
		--tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
		--kubelet-client-certificate "$state/pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$state/pki/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP,Hostname \
		--service-account-key-file "$state/pki/sa.pub" --service-account-signing-key-file "$state/pki/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--allow-privileged=true
	wait_for kube-apiserver 120 kubectl get --raw /readyz
	start kube-controller-manager "$bins/kube-controller-manager" \
		--kubeconfig "$state/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$state/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$state/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false \
		--service-account-private-key-file "$state/pki/sa.key" --root-ca-file "$state/pki/ca.crt" \
		--cluster-signing-cert-file "$state/pki/ca.crt" --cluster-signing-key-file "$state/pki/ca.key" \
		--use-service-account-credentials=true --service-cluster-ip-range "$service_cidr"
	start kube-scheduler "$bins/kube-scheduler" --kubeconfig "$state/scheduler.kubeconfig" \
		--authentication-kubeconfig "$state/scheduler.kubeconfig" \
		--authorization-kubeconfig "$state/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false
}

start_node() {
	start containerd containerd --config "$state/containerd/config.toml"
	wait_for containerd 30 ctr --address "$sock" version
	[ -s "$root/bin/images/pause.tar" ] ||
		die "no sandbox image bin/images/pause.tar: run make image-pause (make cluster-up does) first"
	# A containerd that has just started may answer before it can import: try a few times.
	local try
	for try in 1 2 3 4 5; do
		import_images "$root"/bin/images/pause.tar "$state/coredns.tar" || true
		ctr --address "$sock" -n k8s.io images check "name==$pause_image" 2>/dev/null | grep -q . && break
		[ $try -lt 5 ] || die "the sandbox image $pause_image could not be imported; see $state/logs/containerd.log"
		sleep 1
	done
	start kubelet "$bins/kubelet" --config "$state/kubelet.yaml" \
		--kubeconfig "$state/kubelet.kubeconfig" --hostname-override "$node" --node-ip "$node_ip" \
		--root-dir "$state/kubelet"
	start kube-proxy "$bins/kube-proxy" --config "$state/kube-proxy.yaml"
	start volume-provisioner "$root/bin/local-volume-provisioner" \
		-kubeconfig "$state/kubeconfig" -dir "$state/volumes"
	wait_for "node $node" 120 kubectl wait --for=condition=Ready "node/$node" --timeout=1s
}

start_addons() {
	kubectl apply --server-side --force-conflicts -f <(render addons.yaml /dev/stdout) >/dev/null
	kubectl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null ||
		die "CoreDNS did not become ready; see kubectl -n kube-system describe pod -l k8s-app=kube-dns"
}

# import_images FILE...: load image archives into the node's containerd.
import_images() {
	local f
	for f in "$@"; do
		[ -s "$f" ] || continue
		ctr --address "$sock" -n k8s.io images import --all-platforms "$f" >/dev/null
	done
}

# ---------------------------------------------------------------- commands

cmd_up() {
	[ "$(id -u)" = 0 ] || die "the cluster needs root (network, mounts, containers)"
	local t0=$SECONDS
	install_packages
	build_binaries
	build_provisioner
	make_pki
	configure
	network_up
	start_control_plane
	start_node
	start_addons
	log "up in $((SECONDS - t0)) s; export KUBECONFIG=$state/kubeconfig"
}

build_provisioner() {
	local bin="$root/bin/local-volume-provisioner"
	if [ ! -x "$bin" ] || [ -n "$(find "$templates/provisioner" -newer "$bin" -name '*.go' | head -1)" ]; then
		(cd "$root" && CGO_ENABLED=0 go build -o "$bin" ./hack/local-cluster/provisioner)
	fi
}

cmd_status() {
	local name rc=0
	for name in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy volume-provisioner; do
		if running "$name"; then
			printf '%-24s running (pid %s)\n' "$name" "$(cat "$state/run/$name.pid")"
		else
			printf '%-24s stopped\n' "$name"
			rc=1
		fi
	done
	if [ $rc = 0 ]; then
		kubectl get nodes -o wide
	fi
	return $rc
}

cmd_down() {
	[ "$(id -u)" = 0 ] || die "down needs root"
	local name c netns=""
	if ! command -v iptables >/dev/null; then
		log "nothing to take down: iptables, which up installs, is not here"
		return 0
	fi
	# The kubelet first, so that it restarts none of the containers stopped next.
	for name in volume-provisioner kube-proxy kubelet; do stop_daemon "$name"; done
	if running containerd; then
		# The network namespaces of this cluster's pods, deleted once nothing runs in them.
		netns=$(for c in $(ctr --address "$sock" -n k8s.io containers list -q 2>/dev/null); do
			ctr --address "$sock" -n k8s.io containers info "$c" 2>/dev/null | grep -o '/var/run/netns/cni-[0-9a-f-]*' || true
		done | sort -u)
		for c in $(ctr --address "$sock" -n k8s.io tasks list -q 2>/dev/null); do
			ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
		done
		for _ in $(seq 1 40); do
			ctr --address "$sock" -n k8s.io tasks list 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING" {found = 1} END {exit !found}' || break
			sleep 0.25
		done
	fi
	for name in kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do stop_daemon "$name"; done
	# containerd's shims outlive it by design; each runs in the session it started.
	pkill_shims
	# Mounts: pod volumes under the kubelet's folder, containerd's snapshots and sandboxes.
	awk -v a="$state" -v b="$run_dir" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/mounts |
		sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	for c in $netns; do ip netns delete "${c##*/}" 2>/dev/null || true; done
	# And those a cluster stopped without this (killed, containerd gone) left behind: a pod's
	# cni- namespace that no process is in any more is nobody's.
	for c in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
		if [ -z "$(ip netns pids "$c" 2>/dev/null)" ]; then ip netns delete "$c" 2>/dev/null || true; fi
	done
	# Network: the bridge and the veths on it, the rules of kube-proxy and the CNI plugins.
	ip link delete "$bridge" 2>/dev/null || true
	iptables -S | awk -v tag="$rule_tag" 'index($0, tag) && /^-A /' | sed -E 's/^-A /-D /' |
		while read -r r; do eval "iptables $r"; done
	[ -x "$bins/kube-proxy" ] && "$bins/kube-proxy" --cleanup >/dev/null 2>&1 || true
	clean_cni_rules
	clean_kube_chains
	rm -rf "$run_dir" "$state/cni/ipam" "$state/kubelet/pods"
	log "down"
}

# pkill_shims stops the containerd-shim processes started for this cluster's socket.
pkill_shims() {
	local pid
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" || true); do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

# clean_kube_chains removes the KUBE-* chains the kubelet makes in every table, for IPv4
# and IPv6 (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), which kube-proxy's
# own clean-up leaves: first the rules that jump to them, then the chains.
clean_kube_chains() {
	local cmd table chain
	for cmd in iptables ip6tables; do
		command -v "$cmd" >/dev/null || continue
		for table in filter nat mangle; do
			"$cmd" -t "$table" -S 2>/dev/null | awk '/^-A / && / -j KUBE-/' | sed -E 's/^-A /-D /' |
				while read -r r; do eval "$cmd -t $table $r" 2>/dev/null || true; done
			for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do
				"$cmd" -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do
				"$cmd" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
}

# clean_cni_rules removes the NAT chains the bridge plugin's ipMasq made (CNI-<hash>) for this
# cluster's pod network, whose name the rules that jump to them carry in their comments.
clean_cni_rules() {
	local chain
	for chain in $(iptables -t nat -S POSTROUTING | awk '/name: \\"shopkeeper\\"/ {for (i = 1; i <= NF; i++) if ($i ~ /^CNI-/) print $i}' | sort -u); do
		iptables -t nat -S POSTROUTING | awk -v c="$chain" '$0 ~ "-j " c "$" || $0 ~ "-j " c " "' | sed -E 's/^-A /-D /' |
			while read -r r; do eval "iptables -t nat $r"; done
		iptables -t nat -F "$chain" 2>/dev/null || true
		iptables -t nat -X "$chain" 2>/dev/null || true
	done
}

bins=$(cat "$state/run/bins" 2>/dev/null || true)
case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
import)
	shift
	import_images "$@"
	;;
*)
	echo "usage: $0 up|down|status|import FILE.tar..." >&2
	exit 2
	;;
esac
