package resources

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// HTTPPort is the port every service of the suite listens on (its PORT).
const HTTPPort = 8080

// GatewayMetricsPort is the port the gateway serves /metrics on (its METRICS_PORT), named
// MetricsPortName in its pods: apart from its HTTP port, which anyone reaches. The other
// services serve /metrics on their HTTP port.
const GatewayMetricsPort = 9090

// MetricsPortName names the gateway pods' metrics port, for a PodMonitor.
const MetricsPortName = "metrics"

// nonRootID is the user and group of the services image (distroless "nonroot").
const nonRootID = 65532

// podTemplateMeta is the metadata of a component's pods: the Shop's podLabels and
// podAnnotations, our labels (which win), and the checksum that rolls the pods when
// what they read at start changes.
func podTemplateMeta(shop *shopv1.Shop, component, checksum string) metav1.ObjectMeta {
	labels := stringMap(shop.Spec.PodLabels)
	maps.Copy(labels, Labels(shop, component))
	annotations := stringMap(shop.Spec.PodAnnotations)
	annotations[ChecksumAnnotation] = checksum
	return metav1.ObjectMeta{Labels: labels, Annotations: annotations}
}

// stringMap copies m, whose values are strings of a named type, into a new, non-nil map of
// strings.
func stringMap[V ~string](m map[string]V) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

// checksum digests the values a pod reads from Secrets at start. Values set inline in
// the pod template need no digest: changing them changes the template already.
//
// Who may read a pod template may not read Secrets, and a plain digest of a password a
// person chose (in an external store's URI) lets them test guesses at it offline: the
// services' digests are keyed (HMAC-SHA256 with key, the Shop's ChecksumKeyKey). The stores'
// Secrets hold passwords the operator made (130 random bits), which no guess reaches: their
// digest is plain SHA-256 (key nil), made before the connections Secret that holds the key.
func checksum(key []byte, data map[string][]byte, keys ...string) string {
	h := sha256.New()
	if key != nil && len(keys) > 0 { // a pod that reads nothing (the gateway) has nothing to hide
		h = hmac.New(sha256.New, key)
	}
	for _, k := range slices.Sorted(slices.Values(keys)) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write(data[k])
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// podSecurityContext runs a pod as uid/gid id, never as root, with the runtime's
// default seccomp profile; fsGroup makes mounted volumes writable for that group.
//
// The kubelet hands a volume to fsGroup once, when its root is not the group's yet,
// rather than at every mount: each pass adds group read and write to every file,
// and Erlang refuses a cookie file ($HOME/.erlang.cookie, on RabbitMQ's volume)
// that others than its owner may read, so the broker would not start a second time.
func podSecurityContext(id int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:        ptr.To(true),
		RunAsUser:           ptr.To(id),
		RunAsGroup:          ptr.To(id),
		FSGroup:             ptr.To(id),
		FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
		SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// containerSecurityContext is the restricted Pod Security Standard for a container:
// no privilege escalation, no capabilities, and a read-only root filesystem (what a
// container writes goes to its volumes).
func containerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// resourcesOr returns r, or def when r sets nothing.
func resourcesOr(r *corev1.ResourceRequirements, def corev1.ResourceRequirements) corev1.ResourceRequirements {
	if r == nil || (len(r.Requests) == 0 && len(r.Limits) == 0 && len(r.Claims) == 0) {
		return def
	}
	return *r.DeepCopy()
}

// requirements builds resource requirements from cpu and memory requests and a memory limit
// (no CPU limit: throttling a service under load hurts more than it protects).
func requirements(cpu, memory, memoryLimit string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(cpu),
			corev1.ResourceMemory: resource.MustParse(memory),
		},
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memoryLimit)},
	}
}

// httpProbe probes path on the HTTP port.
func httpProbe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		TimeoutSeconds:   2,
		FailureThreshold: failures,
		SuccessThreshold: 1,
	}
}

// tcpProbe checks that port accepts connections.
func tcpProbe(port string, initialDelay, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString(port)}},
		InitialDelaySeconds: initialDelay,
		PeriodSeconds:       period,
		TimeoutSeconds:      2,
		FailureThreshold:    failures,
		SuccessThreshold:    1,
	}
}

// secretEnv is an environment variable read from key of Secret name.
func secretEnv(env, name, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: env, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key,
	}}}
}

// servicesImage is the services image reference: <image>:<version>.
func servicesImage(shop *shopv1.Shop) string {
	image := shop.Spec.Image
	if image == "" {
		image = shopv1.DefaultImage
	}
	return image + ":" + shop.Spec.Version
}

// scratchVolumes are emptyDir volumes mounted at paths, for images that write outside
// their data volume while the root filesystem stays read-only.
func scratchVolumes(paths map[string]string) ([]corev1.Volume, []corev1.VolumeMount) {
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, name := range slices.Sorted(maps.Keys(paths)) {
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: paths[name]})
	}
	return volumes, mounts
}
