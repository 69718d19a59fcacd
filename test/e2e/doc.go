// Package e2e is the end-to-end suite of Shopkeeper: it runs against the real cluster
// of the current kubeconfig and checks that one Shop manifest gives a working shop.
//
// It installs the CRD and the operator from config/default (with kubectl's built-in
// kustomize, the manager's image replaced by E2E_MANAGER_IMAGE and a one-minute
// --stall-deadline), creates a Shop in a namespace of its own, and checks on the
// cluster: `kubectl wait --for=condition=Ready` and the columns of `kubectl get shop`; the demo story through the gateway (a user,
// products, an order that becomes PAID, one over the payment limit CANCELLED with its
// stock back, a 400, a 404, the 429 at the Shop's rate limit); a deleted child
// StatefulSet (the product service) put back with its data, and a scaled Deployment
// scaled back; a changed rate limit rolling the gateway; orders placed while the
// RabbitMQ pod is deleted all reaching a final state with one payment each; and every
// child removed by the garbage collector when the Shop is deleted. Beside the Shop, the
// operator's metrics: served over HTTPS through a port-forward to the manager, refused
// without a token (401) and to a ServiceAccount's token without the metrics-reader
// role (403), served to one bound to it. And a second Shop whose broker image cannot be
// pulled, Degraded once its pod has not been ready for the stall deadline (the operator
// runs with --stall-deadline=1m0s here). The gateway is reached through a port-forward
// made with client-go to a Ready gateway pod, so the suite needs no route into the
// cluster.
//
// The images must already be in the cluster's nodes (kind load docker-image, or the
// local cluster's import): nothing is pushed. The suite's files carry the build tag
// e2e, so `go test ./...` without a cluster runs only the unit test of the RateLimit
// header parser. Run the suite with
//
//	make e2e
//	KUBECONFIG=bin/local-cluster/kubeconfig go test -v -tags e2e -count=1 -timeout 45m ./test/e2e -ginkgo.v -ginkgo.timeout 40m
//
// (-v streams the progress instead of holding it until the end; the ginkgo timeout,
// shorter than go test's, leaves time to remove the suite's namespace on a timeout.)
//
// The environment chooses what runs:
//
//	KUBECONFIG           the cluster (the usual kubeconfig rules)
//	KUBECTL              the kubectl to run; default: the one hack/kube-binaries.sh builds
//	E2E_MANAGER_IMAGE    the operator's image (default ghcr.io/shopkeeper-dev/shopkeeper:v0.1.0)
//	E2E_SHOP_VERSION     the Shop's spec.version, the services image's tag (default v0.1.0)
//	E2E_SERVICES_IMAGE   the Shop's spec.image, a repository without tag (default: the CRD's)
//	E2E_MONGODB_ENGINE   MongoDB or FerretDB (default FerretDB, which needs no other image)
//	E2E_MONGODB_IMAGE    the Shop's spec.mongodb.image (default: the operator's)
//	E2E_RABBITMQ_IMAGE   the Shop's spec.rabbitmq.image (default: the operator's)
//	E2E_READY_TIMEOUT    how long the Shop may take to become Ready (default 10m)
//	E2E_KEEP             when set, the operator stays installed after the suite
//
// The suite removes its namespace (and so its Shop) at the end. It removes the
// operator too unless E2E_KEEP is set or the operator's CRD was there before the
// suite began, in which case the suite updated it in place and leaves it.
package e2e
