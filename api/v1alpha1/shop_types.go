package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultImage is the repository of the services image when spec.image is empty.
const DefaultImage = "ghcr.io/shopkeeper-dev/shopkeeper-services"

// Defaults the controller applies where the API server cannot (the value depends on
// other fields, or setting it would collide with `external`).
const (
	// DefaultMongoDBImage is the MongoDB image of an in-cluster store with engine MongoDB.
	DefaultMongoDBImage = "mongo:8.0"
	// DefaultFerretDBImage is the image of an in-cluster store with engine FerretDB:
	// FerretDB's own, at the version the project tests with (hack/tools/go.mod).
	DefaultFerretDBImage = "ghcr.io/ferretdb/ferretdb:1.24.2"
	// DefaultRabbitMQImage is the RabbitMQ image of an in-cluster broker.
	DefaultRabbitMQImage = "rabbitmq:4-management"
)

// DefaultStorageSize is the volume size of an in-cluster store that names no storage.
var DefaultStorageSize = resource.MustParse("1Gi")

// ShopSpec describes the shop a user wants: which build of the services runs, how the
// gateway faces clients, how many replicas each service runs, and where its data lives.
//
// +kubebuilder:validation:XValidation:rule="!has(self.podLabels) || self.podLabels.all(k, !k.startsWith('app.kubernetes.io/'))",message="podLabels cannot set app.kubernetes.io/ labels: the controller uses them to select the shop's pods"
// +kubebuilder:validation:XValidation:rule="!has(self.mongodb) || !has(self.mongodb.engine) || self.mongodb.engine != 'FerretDB' || !has(self.services) || !has(self.services.payment) || !has(self.services.payment.replicas) || self.services.payment.replicas == 1",message="with mongodb.engine FerretDB, services.payment runs 1 replica: FerretDB does not make a conditional update atomic between processes"
// +kubebuilder:validation:XValidation:rule="!has(self.mongodb) || !has(self.mongodb.engine) || self.mongodb.engine != 'FerretDB' || !has(self.services) || !has(self.services.user) || !has(self.services.user.replicas) || self.services.user.replicas == 1",message="with mongodb.engine FerretDB, services.user runs 1 replica: FerretDB rewrites a whole user on any update, so two processes updating one user at once could lose a change"
type ShopSpec struct {
	// Version is the tag of the services image, a semantic version such as v0.1.0 or
	// v0.2.0-rc.1. Build metadata ("+...") is refused: an image tag cannot hold '+'.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^v?[0-9]+[.][0-9]+[.][0-9]+(-[0-9A-Za-z.-]+)?$')",message="version must be a semantic version such as v0.1.0 or v0.2.0-rc.1, without build metadata ('+'): it is the tag of the services image"
	Version string `json:"version"`

	// Image is the repository of the services image, without a tag (the tag is version).
	// One image holds every service binary: /gateway, /user, /product, /order, /payment.
	// It is a repository as the kubelet parses one: an optional registry host (a DNS name,
	// localhost or a bracketed IPv6 address, with an optional :port) and '/', then path
	// components of lower-case letters and digits, separated inside by '.', '_', '__' or
	// dashes, joined by single '/'; for example registry.example.com:5000/team/app. It
	// has at most 237 characters (the kubelet's 255 once it has added docker.io/library/).
	// Default: ghcr.io/shopkeeper-dev/shopkeeper-services.
	// +kubebuilder:default="ghcr.io/shopkeeper-dev/shopkeeper-services"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.contains('@') && !self.matches(':[^/]*$')",message="image is a repository without tag or digest, such as ghcr.io/shopkeeper-dev/shopkeeper-services; the tag comes from version"
	// +kubebuilder:validation:XValidation:rule="self.contains('@') || self.matches(':[^/]*$') || self.matches('^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*|[[][a-fA-F0-9:]*:[a-fA-F0-9:]*[]])(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$')",message="image must be a repository such as ghcr.io/shopkeeper-dev/shopkeeper-services or registry.example.com:5000/team/app: an optional registry host[:port] and '/', then lower-case path components (letters and digits, separated inside by '.', '_', '__' or '-') joined by single '/'"
	// +kubebuilder:validation:XValidation:rule="size(self) <= 237",message="image must be at most 237 characters: the kubelet refuses a name over 255 once it has added docker.io/library/ to it"
	// +optional
	Image string `json:"image,omitempty"`

	// ImagePullPolicy of every container the shop runs: Always, IfNotPresent or Never.
	// Default: IfNotPresent.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +kubebuilder:default=IfNotPresent
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// ImagePullSecrets are handed to every pod of the shop.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(s, has(s.name) && size(s.name) > 0)",message="imagePullSecrets must name their Secrets"
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Gateway is the shop's single entry point.
	// +kubebuilder:default={}
	// +optional
	Gateway GatewaySpec `json:"gateway,omitzero"`

	// Services sets the replicas and resources of the four backend services.
	// +kubebuilder:default={}
	// +optional
	Services ServicesSpec `json:"services,omitzero"`

	// MongoDB is the document store: in the cluster, or external.
	// +kubebuilder:default={}
	// +optional
	MongoDB MongoDBSpec `json:"mongodb,omitzero"`

	// RabbitMQ is the message broker: in the cluster, or external. The in-cluster
	// broker runs rabbitmq:4-management by default. It reads its listener, and where its
	// definitions are, from /etc/rabbitmq/conf.d/90-shopkeeper.conf; its users, their
	// permissions and its virtual host from the definitions it imports at boot,
	// /etc/rabbitmq/shopkeeper-definitions.json; and its node name from
	// /etc/rabbitmq/rabbitmq-env.conf: all three mounted from the Secret
	// <shop>-rabbitmq-config, and no image-specific variable. An image of one's own
	// must run rabbitmq-server 3.10 or later as its entrypoint, as user 999, with
	// HOME=/var/lib/rabbitmq.
	// +kubebuilder:default={}
	// +optional
	RabbitMQ RabbitMQSpec `json:"rabbitmq,omitzero"`

	// Monitoring says who, besides the shop itself, may reach the services' metrics.
	// +optional
	Monitoring MonitoringSpec `json:"monitoring,omitzero"`

	// PodLabels are added to every pod of the shop. Each value is a label value: empty, or
	// at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, !format.qualifiedName().validate(k).hasValue())",message="podLabels keys must be label keys: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +optional
	PodLabels map[string]LabelValue `json:"podLabels,omitempty"`

	// PodAnnotations are added to every pod of the shop. Their keys are checked as the
	// API server checks a pod's annotations: lower-cased, so a prefix may have capitals.
	// Keys and values together hold at most 261888 bytes (UTF-8): the API server refuses a
	// pod whose annotations hold over 262144 (256 KiB), and the controller keeps 256 bytes
	// for its own (the pods' config checksum, a `kubectl rollout restart`).
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, !format.qualifiedName().validate(k.lowerAscii()).hasValue())",message="podAnnotations keys must be annotation keys: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self.map(k, size(bytes(k)) + size(bytes(self[k]))).sum() <= 261888",message="podAnnotations must hold at most 261888 bytes, keys and values together: the API server refuses a pod whose annotations hold over 262144 (256 KiB), and the controller keeps 256 bytes for its own"
	// +optional
	PodAnnotations map[string]AnnotationValue `json:"podAnnotations,omitempty"`
}

// LabelValue is the value of one of podLabels: empty, or at most 63 letters, digits, '-',
// '_' or '.', starting and ending with a letter or digit, as the API server takes on a pod.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="!format.labelValue().validate(self).hasValue()",message="podLabels values must be label values: empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
type LabelValue string

// AnnotationValue is the value of one of podAnnotations. Its length is bounded (as all of
// podAnnotations are, at 261888 bytes) so that the API server can afford to add up their
// sizes when it admits a Shop.
// +kubebuilder:validation:MaxLength=261888
type AnnotationValue string

// MaxPodAnnotationsSize is the most bytes, keys and values together, that podAnnotations
// hold: the API server's limit on a pod's annotations (262144, 256 KiB) less the 256 bytes
// the controller keeps for its own. The CRD's rule on podAnnotations states it again.
const MaxPodAnnotationsSize = 262144 - 256

// MonitoringSpec says who may scrape the services.
type MonitoringSpec struct {
	// Scrapers are the peers, such as Prometheus's namespace, that the services'
	// NetworkPolicies admit to their HTTP port, which serves /metrics beside the API,
	// and the gateway's to its port named metrics (9090), where it serves /metrics apart
	// from its HTTP port, which anyone reaches. Empty: only the shop's own callers reach the
	// services, and no one the gateway's metrics. Scrapers a NetworkPolicy cannot hold (the operator asks the API server with
	// a dry run) hold back every child of the Shop until they are fixed.
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(p, has(p.ipBlock) ? !has(p.podSelector) && !has(p.namespaceSelector) : has(p.podSelector) || has(p.namespaceSelector))",message="each of monitoring.scrapers sets either ipBlock, or podSelector and/or namespaceSelector"
	// +listType=atomic
	// +optional
	Scrapers []networkingv1.NetworkPolicyPeer `json:"scrapers,omitempty"`
}

// GatewaySpec configures the API gateway.
type GatewaySpec struct {
	// Replicas of the gateway, from 1 to 50. Default: 2.
	// +kubebuilder:default=2
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 50",message="gateway replicas must be between 1 and 50"
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// RateLimit is the per-client-IP limit of requests.
	// +kubebuilder:default={}
	// +optional
	RateLimit RateLimitSpec `json:"rateLimit,omitzero"`

	// Service is how the gateway is exposed.
	// +kubebuilder:default={}
	// +optional
	Service GatewayServiceSpec `json:"service,omitzero"`

	// TrustedProxies are the CIDRs whose X-Forwarded-For header is believed when
	// finding a client's address (for example a load balancer's range).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="trustedProxies must be CIDRs such as 10.0.0.0/8 or fd00::/8"
	// +listType=set
	// +optional
	TrustedProxies []string `json:"trustedProxies,omitempty"`

	// UpstreamTimeout is how long the gateway waits for a service before answering 504.
	// The order service is told to answer POST /orders a little sooner (its
	// PLACEMENT_TIMEOUT: 2 s less, or a fifth less when that is shorter), so that a
	// placement it cannot finish gets its own 503, which says the request may be sent again.
	// Below 10s the services' wait for their database (MONGODB_OPERATION_TIMEOUT, 8s) is
	// shortened the same way, not below 2s, so that a database that does not answer gets
	// the service's 503 too.
	// A duration such as 10s or 1m30s (units ms, s, m, h), from 100ms to 5m. Default: 10s.
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ms|s|m|h))+$')",message="upstreamTimeout must be a duration such as 10s or 1m30s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ms|s|m|h))+$') || (!self.matches('(^|[a-z])0*([1-9][0-9]{5,}([.][0-9]+)?h|[1-9][0-9]{7,}([.][0-9]+)?m([0-9]|$)|[1-9][0-9]{9,}([.][0-9]+)?s|[1-9][0-9]{12,}([.][0-9]+)?ms)') && duration(self) >= duration('100ms') && duration(self) <= duration('5m'))",message="upstreamTimeout must be between 100ms and 5m"
	// +optional
	UpstreamTimeout *metav1.Duration `json:"upstreamTimeout,omitempty"`

	// Resources of the gateway's container. Empty means the controller's defaults: 50m CPU
	// and 64Mi memory requested, a 256Mi memory limit, no CPU limit. Set, they replace those
	// defaults whole (a container given limits alone is requested as much).
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`
}

// RateLimitSpec is the per-client-IP limit of each gateway replica, counted by each on its
// own: a token bucket (GCRA) holding Requests, refilled at Requests per Window.
type RateLimitSpec struct {
	// Requests is the burst a client IP may send at once; its allowance then refills at
	// Requests per Window. Over any span t a client gets at most Requests×(1 + t/Window)
	// from one gateway replica: up to 2×Requests−1 in one whole window, never 2×Requests
	// within seconds (Window/Requests is counted in whole nanoseconds, so the rate may be
	// above Requests/Window by under a nanosecond a request: 1 request a second more at
	// 99999/1s). A client whose requests are spread over N replicas may make up to N
	// times as many. From 1 to 1000000. Default: 100.
	// +kubebuilder:default=100
	// +kubebuilder:validation:XValidation:rule="self > 0",message="rateLimit.requests must be greater than 0"
	// +kubebuilder:validation:XValidation:rule="self <= 1000000",message="rateLimit.requests must be at most 1000000"
	// +optional
	Requests *int32 `json:"requests,omitempty"`

	// Window is the length of one rate-limit window, a duration such as 15m or 1h30m
	// (units ms, s, m, h), from 1s to 24h. Default: 15m0s.
	// +kubebuilder:default="15m0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ms|s|m|h))+$')",message="rateLimit.window must be a duration such as 15m or 1h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ms|s|m|h))+$') || (!self.matches('(^|[a-z])0*([1-9][0-9]{5,}([.][0-9]+)?h|[1-9][0-9]{7,}([.][0-9]+)?m([0-9]|$)|[1-9][0-9]{9,}([.][0-9]+)?s|[1-9][0-9]{12,}([.][0-9]+)?ms)') && duration(self) >= duration('1s') && duration(self) <= duration('24h'))",message="rateLimit.window must be between 1s and 24h"
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`
}

// GatewayServiceSpec is the Kubernetes Service in front of the gateway.
type GatewayServiceSpec struct {
	// Type of the gateway's Service. A NodePort or LoadBalancer Service gets
	// externalTrafficPolicy Local: outside traffic goes only to nodes running a gateway pod
	// and keeps its client's address, which the per-client rate limit counts by.
	// Default: ClusterIP.
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +kubebuilder:default=ClusterIP
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`
}

// ServicesSpec holds one entry per backend service.
//
// +kubebuilder:validation:XValidation:rule="!has(self.product) || !has(self.product.replicas) || self.product.replicas == 1",message="services.product.replicas must be 1: the product service keeps every stock change exactly-once with locks inside its one process"
// +kubebuilder:validation:XValidation:rule="!has(self.order) || !has(self.order.replicas) || self.order.replicas == 1",message="services.order.replicas must be 1: the order service settles each order and sends its events exactly once with locks inside its one process"
type ServicesSpec struct {
	// User manages users.
	// +kubebuilder:default={}
	// +optional
	User ServiceSpec `json:"user,omitzero"`
	// Product manages the catalogue, stock and reservations.
	// +kubebuilder:default={}
	// +optional
	Product ServiceSpec `json:"product,omitzero"`
	// Order takes orders.
	// +kubebuilder:default={}
	// +optional
	Order ServiceSpec `json:"order,omitzero"`
	// Payment charges orders.
	// +kubebuilder:default={}
	// +optional
	Payment PaymentServiceSpec `json:"payment,omitzero"`
}

// ServiceSpec is what every backend service accepts.
type ServiceSpec struct {
	// Replicas of the service, from 1 to 50; product and order run exactly 1, and so do
	// user and payment with mongodb.engine FerretDB. Default: 1.
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule="self >= 1 && self <= 50",message="service replicas must be between 1 and 50"
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Resources of the service's container. Empty means the controller's defaults: 50m CPU
	// and 64Mi memory requested, a 256Mi memory limit, no CPU limit. Set, they replace those
	// defaults whole (a container given limits alone is requested as much).
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`
}

// PaymentServiceSpec adds the payment service's own settings.
type PaymentServiceSpec struct {
	ServiceSpec `json:",inline"`

	// LimitCents is the amount, in cents, above which the simulated provider declines a
	// charge; at least 1. Default: 100000 (1000.00).
	// +kubebuilder:default=100000
	// +kubebuilder:validation:XValidation:rule="self > 0",message="payment.limitCents must be greater than 0"
	// +optional
	LimitCents *int64 `json:"limitCents,omitempty"`
}

// MongoDBEngine names the server the in-cluster document store runs.
// +kubebuilder:validation:Enum=MongoDB;FerretDB
type MongoDBEngine string

const (
	// EngineMongoDB runs MongoDB (image mongo:8.0 unless set).
	EngineMongoDB MongoDBEngine = "MongoDB"
	// EngineFerretDB runs FerretDB over SQLite (image ghcr.io/ferretdb/ferretdb:1.24.2 unless set).
	EngineFerretDB MongoDBEngine = "FerretDB"
)

// StoreSpec is what an in-cluster store accepts; it is refused next to `external`.
type StoreSpec struct {
	// Image of the store. Empty means the store's default (see mongodb.engine and
	// rabbitmq); an image of one's own must run the same server the same way.
	// It is a reference as the kubelet parses one: a repository (an optional registry
	// host[:port] and '/', then lower-case path components joined by single '/'), an
	// optional :tag and an optional @sha256, @sha384 or @sha512 digest; for example
	// mongo:8.0, localhost/shopkeeper/ferretdb:v1.24.2 or
	// rabbitmq:4.1-management@sha256:<64 hexadecimal digits>. Its repository has at most
	// 237 characters (the kubelet's 255 once it has added docker.io/library/).
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self == '' || self.matches('^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*|[[][a-fA-F0-9:]*:[a-fA-F0-9:]*[]])(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*(:[0-9A-Za-z_][0-9A-Za-z_.-]{0,127})?(@(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}))?$')",message="image must be an image reference such as mongo:8.0, registry.example.com:5000/team/mongo:8.0 or rabbitmq:4.1-management@sha256:<64 lower-case hexadecimal digits>: an optional registry host[:port] and '/', lower-case path components (letters and digits, separated inside by '.', '_', '__' or '-') joined by single '/', an optional :tag of up to 128 letters, digits, '_', '.' and '-', and an optional @sha256, @sha384 or @sha512 digest"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[a-f0-9]{64}$')",message="image cannot be 64 hexadecimal digits alone, which the kubelet reads as an image ID: name a repository, such as mongo:8.0"
	// +kubebuilder:validation:XValidation:rule="size(self.find('^([^@/]*/)*[^@/:]*')) <= 237",message="image's name, before its :tag or @digest, must be at most 237 characters: the kubelet refuses a name over 255 once it has added docker.io/library/ to it"
	// +optional
	Image string `json:"image,omitempty"`

	// Storage is the store's volume. Empty means 1Gi of the default storage class.
	// Once set it cannot be removed (lower its size instead); a size below the claim's
	// present one leaves the claim as it is.
	// +optional
	Storage *StorageSpec `json:"storage,omitempty"`

	// Resources of the store's container. Empty means the controller's defaults: 100m CPU
	// and 256Mi memory requested, a 1Gi memory limit, no CPU limit. Set, they replace those
	// defaults whole.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// External points at a store outside the cluster instead: no in-cluster store is made.
	// +optional
	External *ExternalSpec `json:"external,omitempty"`
}

// MongoDBSpec is the document store. Each service uses a database of its own
// (users, products, orders, payments).
//
// +kubebuilder:validation:XValidation:rule="has(self.external) == has(oldSelf.external)",message="mongodb cannot switch between in-cluster and external: the in-cluster store and its data would be left behind; make a new Shop to move"
// +kubebuilder:validation:XValidation:rule="has(self.external) || (has(self.engine) ? self.engine : 'MongoDB') == (has(oldSelf.engine) ? oldSelf.engine : 'MongoDB')",message="mongodb.engine cannot be changed for an in-cluster store: MongoDB and FerretDB do not read each other's data; make a new Shop to move",fieldPath=".engine"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.storage) || has(self.storage)",message="mongodb.storage cannot be removed once set; to ask for less, lower mongodb.storage.size instead (the volume keeps its present size: a claim never shrinks)"
// +kubebuilder:validation:XValidation:rule="(has(self.storage) && has(self.storage.storageClassName)) == (has(oldSelf.storage) && has(oldSelf.storage.storageClassName))",message="mongodb.storage.storageClassName can be set only when the Shop is made, and never removed: a volume does not move between storage classes"
// +kubebuilder:validation:XValidation:rule="!has(self.external) || (!has(self.image) && !has(self.storage) && !has(self.resources))",message="mongodb.external cannot be combined with image, storage or resources: those describe an in-cluster MongoDB"
// +kubebuilder:validation:XValidation:rule="!has(self.databasePrefix) || has(self.external)",message="mongodb.databasePrefix is for an external MongoDB: an in-cluster one serves this Shop alone"
// +kubebuilder:validation:XValidation:rule="has(self.databasePrefix) == has(oldSelf.databasePrefix) && (!has(self.databasePrefix) || self.databasePrefix == oldSelf.databasePrefix)",message="mongodb.databasePrefix cannot be set, changed or removed once the Shop is made: the services' data would be left in the databases it named"
type MongoDBSpec struct {
	// Engine of the in-cluster store. MongoDB runs mongo:8.0 by default, with its root
	// user from the official image's MONGO_INITDB_ROOT_USERNAME and _PASSWORD.
	// FerretDB runs ghcr.io/ferretdb/ferretdb:1.24.2 by default: MongoDB's wire
	// protocol over SQLite in the volume, set through FerretDB's own FERRETDB_*
	// variables; an image of one's own must start FerretDB 1.x as its entrypoint.
	// It cannot change while the store is in the cluster: neither server reads the other's
	// data. With external, it says which server the external store runs (FerretDB holds
	// user and payment to one replica), and may change with it. Default: MongoDB.
	// +kubebuilder:default=MongoDB
	// +optional
	Engine MongoDBEngine `json:"engine,omitempty"`

	// DatabasePrefix, with an external MongoDB, names the services' databases
	// <prefix>-users, <prefix>-products, <prefix>-orders and <prefix>-payments instead of
	// users, products, orders and payments. Shops that share one MongoDB server need a
	// prefix each, or they share their users, stock and orders. The database in the
	// external URI's path is not used for this: MongoDB reads it as the database the
	// credentials are checked against. It is set when the Shop is made and never changed.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	// +optional
	DatabasePrefix string `json:"databasePrefix,omitempty"`

	StoreSpec `json:",inline"`
}

// RabbitMQSpec is the message broker. The shop uses a virtual host of its own.
//
// +kubebuilder:validation:XValidation:rule="has(self.external) == has(oldSelf.external)",message="rabbitmq cannot switch between in-cluster and external: the in-cluster store and its data would be left behind; make a new Shop to move"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.storage) || has(self.storage)",message="rabbitmq.storage cannot be removed once set; to ask for less, lower rabbitmq.storage.size instead (the volume keeps its present size: a claim never shrinks)"
// +kubebuilder:validation:XValidation:rule="(has(self.storage) && has(self.storage.storageClassName)) == (has(oldSelf.storage) && has(oldSelf.storage.storageClassName))",message="rabbitmq.storage.storageClassName can be set only when the Shop is made, and never removed: a volume does not move between storage classes"
// +kubebuilder:validation:XValidation:rule="!has(self.external) || (!has(self.image) && !has(self.storage) && !has(self.resources))",message="rabbitmq.external cannot be combined with image, storage or resources: those describe an in-cluster RabbitMQ"
type RabbitMQSpec struct {
	StoreSpec `json:",inline"`
}

// StorageSpec is a store's persistent volume.
type StorageSpec struct {
	// Size of the volume. Raised, it grows the volume when the storage class allows
	// expansion (allowVolumeExpansion); when the class does not, the API server forbids
	// the claim's growth and the Shop is Degraded (ChildForbidden) until the size is set
	// back. Until the volume holds the size asked (the claim's capacity), the Shop is
	// Progressing and not Ready; it is Degraded (VolumeResizeFailed) while the cluster's
	// resizer reports that it failed to grow the volume, or until the size is set back: the
	// claim keeps the size it asks, but the Shop is done once the volume holds what the Shop
	// asks. A claim not yet bound to a volume cannot grow: the Shop is Degraded
	// (ChildRejected) until it is bound, or the size is set back. Any size below the
	// claim's present one is accepted and leaves the claim as it is, since a claim never
	// shrinks; the Shop's Events say so (StorageNotShrunk).
	// A quantity such as 1Gi or 500Mi, at least 64Mi. Default: 1Gi.
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || quantity(string(self)).compareTo(quantity('64Mi')) >= 0",message="storage size must be at least 64Mi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the volume; unset means the cluster's default class. It cannot
	// be empty: on a claim, an empty class means no class at all, which nothing
	// provisions.
	// It is chosen when the Shop is made and cannot be set, changed or removed later:
	// a volume does not move between classes.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storageClassName cannot be changed: a volume does not move between storage classes"
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// ExternalSpec names a Secret holding the URI of a store outside the cluster.
type ExternalSpec struct {
	// SecretRef is the Secret, in the Shop's namespace, and the key holding the URI.
	// The Secret must carry the label commerce.shopkeeper.dev/shop=<shop name> so the
	// controller sees it (and sees it change) without caching every Secret in the cluster;
	// the label says which Shop may read it, and one labelled for another Shop is refused.
	SecretRef SecretKeyRef `json:"secretRef"`
}

// SecretKeyRef names one key of a Secret in the Shop's namespace.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="secretRef.name must be a Secret name: lower-case letters, digits, '-' and '.'"
	Name string `json:"name"`

	// Key in the Secret's data that holds the URI: a key a Secret can hold, of letters,
	// digits, '-', '_' and '.', neither '.' nor starting with '..'. Default: uri.
	// +kubebuilder:default=uri
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$') && self != '.' && !self.startsWith('..')",message="secretRef.key must be a key a Secret can hold: letters, digits, '-', '_' and '.', neither '.' nor starting with '..'"
	// +optional
	Key string `json:"key,omitempty"`
}

// ComponentStatus counts the ready and desired replicas of one component.
type ComponentStatus struct {
	// Ready replicas (available, of the current revision).
	Ready int32 `json:"ready"`
	// Desired replicas.
	Desired int32 `json:"desired"`
	// Replicas is "ready/desired", as kubectl shows it.
	Replicas string `json:"replicas"`
}

// ShopStatus is what the controller last observed.
type ShopStatus struct {
	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Progressing and Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Components maps each component (gateway, user, product, order, payment,
	// mongodb, rabbitmq) to its replicas; an external store is not listed.
	// +optional
	Components map[string]ComponentStatus `json:"components,omitempty"`

	// Endpoint is the gateway's URL inside the cluster.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
}

// Shop is a whole e-commerce suite: gateway, user, product, order and payment
// services, MongoDB and RabbitMQ, made and kept by the controller.
//
// Its name begins the name of every child (<name>-<component>): Service names are
// DNS-1035 labels of at most 63 characters, and a StatefulSet's pods carry the label
// <name>-rabbitmq-<revision hash>, at most 63 characters too. The length is checked when the
// Shop is made only: a Shop made when the limit was higher can still be changed or deleted.
//
// +kubebuilder:validation:XValidation:rule="oldSelf.hasValue() || size(self.metadata.name) <= 43",optionalOldSelf=true,message="a Shop's name must be at most 43 characters: its StatefulSets' pods carry the label <name>-rabbitmq-<revision hash of up to 10 characters>, at most 63"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="a Shop's name must start with a lower-case letter and hold only lower-case letters, digits and '-', ending with a letter or digit: its Services are named <name>-<component>, which must be DNS-1035 labels"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=shop
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.status.components.gateway.replicas`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`,priority=1
type Shop struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ShopSpec `json:"spec"`
	// +optional
	Status ShopStatus `json:"status,omitzero"`
}

// ShopList is a list of Shops.
//
// +kubebuilder:object:root=true
type ShopList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Shop `json:"items"`
}
