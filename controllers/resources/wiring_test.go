package resources

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// The tests here pin how the children fit together and the settings a user would feel
// without any test of the cluster's noticing: a Service that forwards to no port of its
// pods, a policy on the wrong protocol, a claim no provisioner binds, a probe that kills a
// booting broker.

// storeCases are the stores the tests build: MongoDB, FerretDB in its place, RabbitMQ.
var storeCases = []struct {
	name   string
	engine shopv1.MongoDBEngine
	port   int32
	pname  string
	uid    int64 // the image's user and group
}{
	{MongoDB, shopv1.EngineMongoDB, 27017, "mongodb", 999},
	{MongoDB, shopv1.EngineFerretDB, 27017, "mongodb", 65532},
	{RabbitMQ, shopv1.EngineMongoDB, 5672, "amqp", 999},
}

// Each Service selects its component's pods, on the port they serve.
func TestServicesReachTheirPods(t *testing.T) {
	shop := newShop()
	conn := connectionsOf(t, shop)
	for _, a := range Apps {
		svc := AppService(shop, a)
		want := []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}
		if diff := cmp.Diff(want, svc.Spec.Ports); diff != "" {
			t.Errorf("%s: Service ports (-want +got):\n%s", a, diff)
		}
		checkSelects(t, a, svc, templateOf(t, AppWorkload(shop, a, conn)))
	}
	for _, sc := range storeCases {
		shop := newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = sc.engine })
		svc := StoreService(shop, sc.name)
		want := []corev1.ServicePort{{Name: sc.pname, Port: sc.port, TargetPort: intstr.FromString(sc.pname), Protocol: corev1.ProtocolTCP}}
		if diff := cmp.Diff(want, svc.Spec.Ports); diff != "" {
			t.Errorf("%s on %s: Service ports (-want +got):\n%s", sc.name, sc.engine, diff)
		}
		checkSelects(t, sc.name, svc, templateOf(t, StoreStatefulSet(shop, sc.name, nil)))
	}
}

// checkSelects: svc selects the pods of template, and no other component's, and its
// target port is a port their container serves over TCP.
func checkSelects(t *testing.T, component string, svc *corev1.Service, template corev1.PodTemplateSpec) {
	t.Helper()
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	if !sel.Matches(labels.Set(template.Labels)) {
		t.Errorf("%s: Service selector %v does not select its pods %v", component, svc.Spec.Selector, template.Labels)
	}
	for _, other := range append(append([]string{}, Apps...), MongoDB, RabbitMQ) {
		if other != component && sel.Matches(labels.Set(Labels(newShop(), other))) {
			t.Errorf("%s: Service selector %v selects %s's pods too", component, svc.Spec.Selector, other)
		}
	}
	served := false
	for _, p := range template.Spec.Containers[0].Ports {
		served = served || (p.Name == svc.Spec.Ports[0].TargetPort.StrVal && p.Protocol == corev1.ProtocolTCP)
	}
	if !served {
		t.Errorf("%s: target port %v is no port of the container %v", component, svc.Spec.Ports[0].TargetPort, template.Spec.Containers[0].Ports)
	}
}

// A NetworkPolicy restricts ingress alone, to its component's pods and their one TCP port.
func TestNetworkPolicyShape(t *testing.T) {
	shop := newShop()
	ports := map[string]int32{MongoDB: 27017, RabbitMQ: 5672}
	for _, c := range append(append([]string{}, Apps...), MongoDB, RabbitMQ) {
		np := NetworkPolicy(shop, c)
		if diff := cmp.Diff([]string{"Ingress"}, policyTypes(np.Spec.PolicyTypes)); diff != "" {
			t.Errorf("%s: policy types (-want +got):\n%s", c, diff)
		}
		if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(Labels(shop, c))) || len(np.Spec.PodSelector.MatchExpressions) > 0 {
			t.Errorf("%s: pod selector %+v", c, np.Spec.PodSelector)
		}
		want := ports[c]
		if want == 0 {
			want = HTTPPort
		}
		if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 {
			t.Fatalf("%s: ingress %+v, want one rule of one port", c, np.Spec.Ingress)
		}
		p := np.Spec.Ingress[0].Ports[0]
		if ptr.Deref(p.Protocol, "") != corev1.ProtocolTCP || p.Port == nil || p.Port.IntVal != want || p.EndPort != nil {
			t.Errorf("%s: ingress port %+v, want TCP %d", c, p, want)
		}
	}
}

func policyTypes(ts []networkingv1.PolicyType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

// A store's claim is ReadWriteOnce, which every provisioner binds (and which cannot be
// changed on a claim that exists).
func TestStoreClaimAccessMode(t *testing.T) {
	for _, store := range []string{MongoDB, RabbitMQ} {
		got := StorePersistentVolumeClaim(newShop(), store).Spec.AccessModes
		if diff := cmp.Diff([]corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, got); diff != "" {
			t.Errorf("%s: access modes (-want +got):\n%s", store, diff)
		}
	}
}

// An app's PodDisruptionBudget lets a drain take one of its pods at a time, and any that
// is not ready.
func TestAppPodDisruptionBudget(t *testing.T) {
	shop := newShop()
	for _, a := range Apps {
		got := AppPodDisruptionBudget(shop, a).Spec
		want := policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             ptr.To(intstr.FromInt32(1)),
			Selector:                   selector(shop, a),
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: PodDisruptionBudget (-want +got):\n%s", a, diff)
		}
		if !labels.SelectorFromSet(got.Selector.MatchLabels).Matches(labels.Set(Labels(shop, a))) {
			t.Errorf("%s: PodDisruptionBudget selects %v, not the app's pods", a, got.Selector)
		}
	}
}

// Probes and grace periods: a slow answer does not restart a service, a booting broker is
// not killed, and a store has a minute to flush on SIGTERM.
func TestProbesAndGracePeriods(t *testing.T) {
	probe := func(h corev1.ProbeHandler, delay, period, failures int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: h, InitialDelaySeconds: delay, PeriodSeconds: period, TimeoutSeconds: 2, FailureThreshold: failures, SuccessThreshold: 1}
	}
	get := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}}
	}
	tcp := func(port string) corev1.ProbeHandler {
		return corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString(port)}}
	}
	shop := newShop()
	conn := connectionsOf(t, shop)
	for _, a := range Apps {
		p := templateOf(t, AppWorkload(shop, a, conn))
		c := p.Spec.Containers[0]
		// A start as long as ten minutes (a migration of a large collection) is not
		// killed by the liveness probe.
		if diff := cmp.Diff(probe(get("/healthz"), 0, 2, 300), c.StartupProbe); diff != "" {
			t.Errorf("%s: startup (-want +got):\n%s", a, diff)
		}
		if diff := cmp.Diff(probe(get("/healthz"), 0, 10, 3), c.LivenessProbe); diff != "" {
			t.Errorf("%s: liveness (-want +got):\n%s", a, diff)
		}
		if diff := cmp.Diff(probe(get("/readyz"), 0, 5, 2), c.ReadinessProbe); diff != "" {
			t.Errorf("%s: readiness (-want +got):\n%s", a, diff)
		}
		if got := ptr.Deref(p.Spec.TerminationGracePeriodSeconds, 0); got != 30 {
			t.Errorf("%s: grace period %d s, want 30", a, got)
		}
	}
	for _, sc := range storeCases {
		shop := newShop(func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = sc.engine })
		p := templateOf(t, StoreStatefulSet(shop, sc.name, nil))
		c := p.Spec.Containers[0]
		if diff := cmp.Diff(probe(tcp(sc.pname), 60, 20, 6), c.LivenessProbe); diff != "" {
			t.Errorf("%s on %s: liveness (-want +got):\n%s", sc.name, sc.engine, diff)
		}
		if diff := cmp.Diff(probe(tcp(sc.pname), 5, 5, 3), c.ReadinessProbe); diff != "" {
			t.Errorf("%s on %s: readiness (-want +got):\n%s", sc.name, sc.engine, diff)
		}
		if got := ptr.Deref(p.Spec.TerminationGracePeriodSeconds, 0); got != 60 {
			t.Errorf("%s on %s: grace period %d s, want 60", sc.name, sc.engine, got)
		}
	}
}

// What the Shop says of every pod reaches every pod: the pull policy and secrets, no API
// token, the images' user and group, the default resources; and podLabels never replace
// the labels the Services and the operator select by.
func TestPodSettingsFromTheShop(t *testing.T) {
	shop := newShop(func(s *shopv1.Shop) {
		s.Spec.ImagePullPolicy = corev1.PullAlways
		s.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
		s.Spec.PodLabels = map[string]shopv1.LabelValue{LabelName: "spoofed", LabelInstance: "spoofed", "team": "shop"}
	})
	conn := connectionsOf(t, shop)
	type pod struct {
		name     string
		template corev1.PodTemplateSpec
		uid      int64
	}
	var pods []pod
	for _, a := range Apps {
		pods = append(pods, pod{a, templateOf(t, AppWorkload(shop, a, conn)), 65532})
	}
	for _, sc := range storeCases {
		shop := shop.DeepCopy()
		shop.Spec.MongoDB.Engine = sc.engine
		pods = append(pods, pod{sc.name, templateOf(t, StoreStatefulSet(shop, sc.name, nil)), sc.uid})
	}
	for _, p := range pods {
		spec := p.template.Spec
		if got := spec.Containers[0].ImagePullPolicy; got != corev1.PullAlways {
			t.Errorf("%s: pull policy %q, want the Shop's Always", p.name, got)
		}
		if diff := cmp.Diff(shop.Spec.ImagePullSecrets, spec.ImagePullSecrets); diff != "" {
			t.Errorf("%s: pull secrets (-want +got):\n%s", p.name, diff)
		}
		if ptr.Deref(spec.AutomountServiceAccountToken, true) {
			t.Errorf("%s: the pod is given an API token", p.name)
		}
		if sc := spec.SecurityContext; ptr.Deref(sc.RunAsUser, 0) != p.uid || ptr.Deref(sc.RunAsGroup, 0) != p.uid || ptr.Deref(sc.FSGroup, 0) != p.uid {
			t.Errorf("%s: runs as %v:%v (fsGroup %v), want %d", p.name, sc.RunAsUser, sc.RunAsGroup, sc.FSGroup, p.uid)
		}
		if l := p.template.Labels; l[LabelName] != p.name || l[LabelInstance] != shop.Name || l["team"] != "shop" {
			t.Errorf("%s: pod labels %v: the operator's must win over podLabels, the others be kept", p.name, l)
		}
	}
	// An app given no resources gets the defaults, limit included.
	c := templateOf(t, AppWorkload(newShop(), Order, connectionsOf(t, newShop()))).Spec.Containers[0]
	want := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	if !equalResources(want, c.Resources) {
		t.Errorf("default app resources %+v, want %+v", c.Resources, want)
	}
}

func equalResources(a, b corev1.ResourceRequirements) bool {
	eq := func(x, y corev1.ResourceList) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || v.Cmp(w) != 0 {
				return false
			}
		}
		return true
	}
	return eq(a.Requests, b.Requests) && eq(a.Limits, b.Limits)
}

// TestNetworkPoliciesAdmitTheCallersPods: each component's NetworkPolicy admits, on its
// port, the pods the builders make for its callers (Callers, the stores' users) and no other
// component's, and applies to its own pods; the Shop's podLabels cannot take the labels it
// selects by away, ours winning. The policies were checked against Labels, not the pods'.
func TestNetworkPoliciesAdmitTheCallersPods(t *testing.T) {
	shop := newShop(func(s *shopv1.Shop) {
		s.Spec.PodLabels = map[string]shopv1.LabelValue{LabelManagedBy: "someone", LabelInstance: "other", "team": "shop"}
	})
	conn := connectionsOf(t, shop)
	pods := map[string]corev1.PodTemplateSpec{}
	for _, a := range Apps {
		pods[a] = templateOf(t, AppWorkload(shop, a, conn))
	}
	for _, s := range []string{MongoDB, RabbitMQ} {
		pods[s] = templateOf(t, StoreStatefulSet(shop, s, nil))
	}
	callers := map[string][]string{MongoDB: {User, Product, Order, Payment}, RabbitMQ: {Order, Payment}}
	for _, a := range Apps {
		callers[a] = Callers(a)
	}
	for component := range pods {
		policy := NetworkPolicy(shop, component)
		own, err := metav1.LabelSelectorAsSelector(&policy.Spec.PodSelector)
		if err != nil || !own.Matches(labels.Set(pods[component].Labels)) {
			t.Errorf("%s: policy selector %v does not select its pods %v (%v)", component, policy.Spec.PodSelector, pods[component].Labels, err)
		}
		if len(callers[component]) == 0 {
			continue // the gateway: anyone on its HTTP port
		}
		from, err := metav1.LabelSelectorAsSelector(policy.Spec.Ingress[0].From[0].PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		for other, pod := range pods {
			if admitted, want := from.Matches(labels.Set(pod.Labels)), slices.Contains(callers[component], other); admitted != want {
				t.Errorf("%s: %s's pods %v admitted %v, want %v", component, other, pod.Labels, admitted, want)
			}
		}
	}
}
