package resources

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// Apps are the shop's own services in the order they are applied: the backends
// first, the gateway that routes to them last.
var Apps = []string{User, Product, Order, Payment, Gateway}

// peers are the apps each app calls, each through its Service (the app's
// <PEER>_SERVICE_URL): order checks users, reserves stock and asks payment for the payment
// of an order left PENDING (its result event lost); the gateway routes to every backend.
var peers = map[string][]string{
	Order:   {User, Product, Payment},
	Gateway: {User, Product, Order, Payment},
}

// Peers are the apps component calls through their Services.
func Peers(component string) []string { return peers[component] }

// Callers are the apps that call component (Peers), by name: the only pods its
// NetworkPolicy lets in; none for the gateway, which no app calls.
func Callers(component string) []string {
	var out []string
	for _, a := range Apps {
		if slices.Contains(peers[a], component) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// Default replicas and settings, used when a Shop was stored before the API server
// defaulted these fields (they are all defaulted by the CRD).
const (
	defaultGatewayReplicas = 2
	defaultServiceReplicas = 1
)

// appPreStopSeconds is how long a terminating pod of a service keeps serving before it is
// told to stop; appTerminationGraceSeconds is how long it then has in all, which the pause
// and the services' default SHUTDOWN_TIMEOUT (20 s) fit in.
const (
	appPreStopSeconds          = 5
	appTerminationGraceSeconds = int64(30)
)

// defaultAppResources fit a small Go HTTP service.
var defaultAppResources = requirements("50m", "64Mi", "256Mi")

// app is what distinguishes one of the shop's services from the others.
type app struct {
	name      string
	replicas  int32
	resources corev1.ResourceRequirements
	// env is set inline; secretKeys are the connections Secret keys the app reads.
	env        []corev1.EnvVar
	secretKeys []string
	// callers are the components allowed to connect to it (Callers); none means anyone.
	callers []string
	// oneProcess: at most one process of the app may run at any moment (OneProcess).
	oneProcess bool
	// metricsPort, when set, is the port the app serves /metrics on instead of its HTTP
	// port (its METRICS_PORT): the gateway's, whose HTTP port anyone reaches.
	metricsPort int32
}

// serviceURL is the in-cluster URL of one of the shop's services.
func serviceURL(shop *shopv1.Shop, component string) string {
	return fmt.Sprintf("http://%s:80", Name(shop, component))
}

// Endpoint is the gateway's URL inside the cluster, reported in the Shop's status.
func Endpoint(shop *shopv1.Shop) string {
	return fmt.Sprintf("http://%s.%s.svc:80", Name(shop, Gateway), shop.Namespace)
}

// appFor describes component of shop.
func appFor(shop *shopv1.Shop, component string) app {
	spec := shop.Spec
	backend := func(s shopv1.ServiceSpec) app {
		return app{
			name:      component,
			replicas:  ptr.Deref(s.Replicas, defaultServiceReplicas),
			resources: resourcesOr(&s.Resources, defaultAppResources),
			env: append([]corev1.EnvVar{secretEnv("MONGODB_URI", ConnectionsSecretName(shop), MongoDBURIKey(component))},
				databaseTimeout(shop)...),
			secretKeys: []string{MongoDBURIKey(component)},
			callers:    Callers(component),
		}
	}
	urls := func(components ...string) []corev1.EnvVar {
		var env []corev1.EnvVar
		for _, c := range components {
			env = append(env, corev1.EnvVar{Name: strings.ToUpper(c) + "_SERVICE_URL", Value: serviceURL(shop, c)})
		}
		return env
	}
	// Each service its own user of an in-cluster broker (RabbitMQServiceUsers).
	rabbitmq := secretEnv("RABBITMQ_URL", ConnectionsSecretName(shop), RabbitMQURLKeyFor(shop, component))
	// FerretDB does not make an update atomic between processes: it rewrites the whole
	// document, so user's updates and payment's once-per-order insert then rest on their
	// one process too.
	ferretDB := spec.MongoDB.Engine == shopv1.EngineFerretDB

	switch component {
	case User:
		a := backend(spec.Services.User)
		a.oneProcess = ferretDB
		return a
	case Product:
		a := backend(spec.Services.Product)
		a.oneProcess = true
		return a
	case Order:
		a := backend(spec.Services.Order)
		a.oneProcess = true
		upstream := upstreamTimeout(&spec)
		a.env = append(a.env, rabbitmq, corev1.EnvVar{
			Name:  "PLACEMENT_TIMEOUT",
			Value: answerTimeout(upstream).String(),
		})
		if upstream > serviceWriteTimeout {
			// The service's server would cut an answer that its placement budget allows.
			a.env = append(a.env, corev1.EnvVar{Name: "HTTP_WRITE_TIMEOUT", Value: upstream.String()})
		}
		a.env = append(a.env, urls(Peers(Order)...)...)
		a.secretKeys = append(a.secretKeys, RabbitMQURLKeyFor(shop, component))
		return a
	case Payment:
		a := backend(spec.Services.Payment.ServiceSpec)
		a.oneProcess = ferretDB
		a.env = append(a.env, rabbitmq, corev1.EnvVar{
			Name:  "PAYMENT_LIMIT_CENTS",
			Value: strconv.FormatInt(ptr.Deref(spec.Services.Payment.LimitCents, 100000), 10),
		})
		a.secretKeys = append(a.secretKeys, RabbitMQURLKeyFor(shop, component))
		return a
	case Gateway:
		g := spec.Gateway
		env := urls(Peers(Gateway)...)
		env = append(env,
			corev1.EnvVar{Name: "RATE_LIMIT_REQUESTS", Value: strconv.Itoa(int(ptr.Deref(g.RateLimit.Requests, 100)))},
			corev1.EnvVar{Name: "RATE_LIMIT_WINDOW", Value: durationOr(g.RateLimit.Window, 15*time.Minute)},
			// Always set, even empty, so removing the last proxy removes it from the pods; in
			// one order, since the list is a set (the pods do not roll when it is reordered).
			corev1.EnvVar{Name: "TRUSTED_PROXIES", Value: strings.Join(slices.Sorted(slices.Values(g.TrustedProxies)), ",")},
			corev1.EnvVar{Name: "UPSTREAM_TIMEOUT", Value: upstreamTimeout(&spec).String()},
		)
		return app{
			name:        Gateway,
			replicas:    ptr.Deref(g.Replicas, defaultGatewayReplicas),
			resources:   resourcesOr(&g.Resources, defaultAppResources),
			env:         env,
			metricsPort: GatewayMetricsPort,
		}
	}
	panic("resources: unknown app " + component)
}

// AppReplicas is the number of replicas the Shop asks of app.
func AppReplicas(shop *shopv1.Shop, component string) int32 {
	return appFor(shop, component).replicas
}

// AppWorkload is what runs one of the shop's services: a StatefulSet when it must run
// as one process (OneProcess), a Deployment otherwise. connections is the desired
// connections Secret: its values the app reads make the pods' checksum.
func AppWorkload(shop *shopv1.Shop, component string, connections *corev1.Secret) client.Object {
	a := appFor(shop, component)
	env := append([]corev1.EnvVar{{Name: "PORT", Value: strconv.Itoa(HTTPPort)}}, a.env...)
	ports := []corev1.ContainerPort{{Name: "http", ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP}}
	if a.metricsPort != 0 {
		env = append(env, corev1.EnvVar{Name: "METRICS_PORT", Value: strconv.Itoa(int(a.metricsPort))})
		ports = append(ports, corev1.ContainerPort{Name: MetricsPortName, ContainerPort: a.metricsPort, Protocol: corev1.ProtocolTCP})
	}
	var data map[string][]byte
	if connections != nil {
		data = connections.Data
	}
	volumes, mounts := scratchVolumes(map[string]string{"tmp": "/tmp"})
	template := corev1.PodTemplateSpec{
		ObjectMeta: podTemplateMeta(shop, component, checksum(data[ChecksumKeyKey], data, a.secretKeys...)),
		Spec: corev1.PodSpec{
			SecurityContext: podSecurityContext(nonRootID),
			// The preStop pause, then the service's own SHUTDOWN_TIMEOUT (20 s) for its
			// requests in flight and its consumers, then the kill.
			TerminationGracePeriodSeconds: ptr.To(appTerminationGraceSeconds),
			ImagePullSecrets:              shop.Spec.ImagePullSecrets,
			AutomountServiceAccountToken:  ptr.To(false),
			Containers: []corev1.Container{{
				Name:            component,
				Image:           servicesImage(shop),
				ImagePullPolicy: shop.Spec.ImagePullPolicy,
				Command:         []string{"/" + component},
				Env:             env,
				Ports:           ports,
				// A service listens once its start is done: connected, its indexes made,
				// the user service's one-time email migration run, which on a large
				// collection can outlast the liveness probe's 30 s and, killed, began again
				// each start. Liveness waits for the startup probe, up to startupSeconds.
				StartupProbe:    httpProbe("/healthz", startupProbePeriod, startupSeconds/startupProbePeriod),
				LivenessProbe:   httpProbe("/healthz", 10, 3),
				ReadinessProbe:  httpProbe("/readyz", 5, 2),
				Resources:       a.resources,
				SecurityContext: containerSecurityContext(),
				VolumeMounts:    mounts,
				// A terminating pod leaves its Service's endpoints while it is told to stop,
				// not before: it keeps serving a moment, so that the requests routed to it
				// meanwhile are answered instead of refused.
				Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
					Sleep: &corev1.SleepAction{Seconds: appPreStopSeconds},
				}},
			}},
			Volumes: volumes,
		},
	}
	if a.oneProcess {
		return statefulSet(shop, component, a.replicas, template)
	}
	return &appsv1.Deployment{
		ObjectMeta: objectMeta(shop, Name(shop, component), component),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(a.replicas),
			Selector: selector(shop, component),
			// Never fewer ready pods than asked for while rolling out.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: template,
		},
	}
}

// OneProcess tells whether at most one process of component may run at any moment: a
// store, alone on its ReadWriteOnce volume, and a service whose exactly-once updates
// rest on locks inside its one process (the API holds such a service to one replica).
// Such a component runs as a StatefulSet (statefulSet).
func OneProcess(shop *shopv1.Shop, component string) bool {
	if component == MongoDB || component == RabbitMQ {
		return true
	}
	return appFor(shop, component).oneProcess
}

// EmptyWorkload is component's workload, empty but named, to read into: a StatefulSet
// for a component that runs as one process (OneProcess), a Deployment otherwise.
func EmptyWorkload(shop *shopv1.Shop, component string) client.Object {
	m := metav1.ObjectMeta{Namespace: shop.Namespace, Name: Name(shop, component)}
	if OneProcess(shop, component) {
		return &appsv1.StatefulSet{ObjectMeta: m}
	}
	return &appsv1.Deployment{ObjectMeta: m}
}

// statefulSet runs the pods of a component that must run as one process. A
// StatefulSet's pods have fixed names, so its controller starts a pod only once the one
// it replaces is gone from the API: on a rollout, and also when a pod is deleted or
// evicted, where a Deployment's ReplicaSet (whatever its strategy) starts the
// replacement at once, beside the pod still shutting down. Pods are managed in
// parallel: the ordered policy would wait forever for a broken pod to become ready
// before replacing it with a fixed template, and one pod has no order to keep.
func statefulSet(shop *shopv1.Shop, component string, replicas int32, template corev1.PodTemplateSpec) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: objectMeta(shop, Name(shop, component), component),
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			Selector:            selector(shop, component),
			ServiceName:         Name(shop, component),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			// The partition set, 0, so that a partition someone else sets, which would hold
			// the pod back from every later update, is drift to put back.
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0)},
			},
			Template: template,
		},
	}
}

// AppService is the ClusterIP Service of one of the shop's services (for the gateway,
// of the type the Shop asks). It listens on 80 and forwards to the pods' HTTP port.
func AppService(shop *shopv1.Shop, component string) *corev1.Service {
	svcType := corev1.ServiceTypeClusterIP
	if component == Gateway && shop.Spec.Gateway.Service.Type != "" {
		svcType = shop.Spec.Gateway.Service.Type
	}
	// Traffic from outside the cluster goes only to nodes running a gateway pod and keeps
	// its client's address, which the gateway's per-client rate limit counts by: with the
	// default policy, kube-proxy would hand every client's requests over from a node's
	// address, and all clients coming through a node would share one limit.
	var trafficPolicy corev1.ServiceExternalTrafficPolicy
	if svcType == corev1.ServiceTypeNodePort || svcType == corev1.ServiceTypeLoadBalancer {
		trafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	return &corev1.Service{
		ObjectMeta: objectMeta(shop, Name(shop, component), component),
		Spec: corev1.ServiceSpec{
			Type:                  svcType,
			ExternalTrafficPolicy: trafficPolicy,
			Selector:              SelectorLabels(shop, component),
			Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// AppPodDisruptionBudget lets a voluntary disruption (a node drain) take one pod of
// the app at a time: with several replicas the app stays up, with one it never
// blocks the drain. A pod that is not ready may always be evicted: it serves no one,
// and with the default policy a component whose pods all crash would hold every drain
// of their nodes for as long as it stays broken.
func AppPodDisruptionBudget(shop *shopv1.Shop, component string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(shop, Name(shop, component), component),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             ptr.To(intstr.FromInt32(1)),
			Selector:                   selector(shop, component),
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		},
	}
}

// defaultUpstreamTimeout is the gateway's UPSTREAM_TIMEOUT for a Shop stored before the
// API server defaulted gateway.upstreamTimeout (the CRD's default and the gateway's own).
const defaultUpstreamTimeout = 10 * time.Second

// upstreamTimeout is how long the gateway waits for a service.
func upstreamTimeout(spec *shopv1.ShopSpec) time.Duration {
	if d := spec.Gateway.UpstreamTimeout; d != nil {
		return d.Duration
	}
	return defaultUpstreamTimeout
}

// startupSeconds is how long a service's pod may take to start listening (its start: the
// database connected, its indexes made, a one-time migration run) before the kubelet
// restarts it; startupProbePeriod is how often it looks, which delays readiness by as much.
const (
	startupSeconds     = 600
	startupProbePeriod = 2
)

// serviceWriteTimeout is the services' HTTP_WRITE_TIMEOUT default: the longest a request
// may take, answer written included. The order service's POST /orders may take its
// PLACEMENT_TIMEOUT, which follows the gateway's timeout: past this, the order service is
// given the gateway's timeout as its own (left unset below, so its pods do not roll).
const serviceWriteTimeout = 30 * time.Second

// answerTimeout is how long a service may take to answer, its own 503 included, for a
// gateway that waits upstream for it: below upstream by a margin (2 s, a fifth of upstream
// when that is less) for the answer to reach the gateway before the gateway gives up with
// a 504, which tells the client nothing of what became of its request. It is the order
// service's PLACEMENT_TIMEOUT, and bounds the services' database operations
// (databaseTimeout). With the default 10 s it is 8 s, the services' own defaults.
func answerTimeout(upstream time.Duration) time.Duration {
	return upstream - min(2*time.Second, upstream/5)
}

// serviceOperationTimeout is the services' MONGODB_OPERATION_TIMEOUT default: the longest
// a request waits on a database operation (server selection included) before the service
// answers 503.
const serviceOperationTimeout = 8 * time.Second

// minOperationTimeout is the least MONGODB_OPERATION_TIMEOUT databaseTimeout sets: a
// service's start (its indexes made) runs under it too, and must not fail on a database
// slow for a moment. Below an upstream timeout of 2.5 s, a database that does not answer
// is the gateway's 504.
const minOperationTimeout = 2 * time.Second

// databaseTimeout is the MONGODB_OPERATION_TIMEOUT of a backend, when the gateway's
// upstream timeout is too short for the services' default (answerTimeout): a request
// that waits on a database that does not answer then gets the service's 503 ("database
// unavailable", send it again) rather than the gateway's 504. It is not set otherwise
// (a longer upstream timeout does not make a database wait longer), so that the pods do
// not roll for it.
func databaseTimeout(shop *shopv1.Shop) []corev1.EnvVar {
	if d := answerTimeout(upstreamTimeout(&shop.Spec)); d < serviceOperationTimeout {
		return []corev1.EnvVar{{Name: "MONGODB_OPERATION_TIMEOUT", Value: max(d, minOperationTimeout).String()}}
	}
	return nil
}

// durationOr formats d as the services parse it (a Go duration), or def when unset.
func durationOr(d *metav1.Duration, def time.Duration) string {
	if d == nil {
		return def.String()
	}
	return d.Duration.String()
}

// selector selects the pods of component.
func selector(shop *shopv1.Shop, component string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: SelectorLabels(shop, component)}
}
