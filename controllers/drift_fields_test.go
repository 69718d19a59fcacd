package controllers

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// Drift that only sets a field the builders leave at its zero value (an empty string, a
// nil map or slice, a longer list) is drift all the same: `kubectl edit` adding a service
// account, a host volume or an external IP must be undone as surely as a changed image.
// A Service's settings the Shop cannot express (a LoadBalancer's source ranges and IP,
// session affinity) are the user's, and stay.
var _ = Describe("Drift that sets what the builders leave unset", func() {
	It("is undone in the pod templates, keeping the labels and annotations added to the workloads, then nothing more is written", func() {
		shop := minimalShop(takeNamespace(), "unset")
		// Options that give the templates maps and lists of their own.
		shop.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "shop"}
		shop.Spec.PodAnnotations = map[string]shopv1.AnnotationValue{"example.com/note": "1"}
		shop.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		shop.Spec.Services.User.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.1")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("300Mi")},
		}
		createShopAndWait(shop)
		waitSettled(shop)
		components := append([]string{resources.MongoDB, resources.RabbitMQ}, resources.Apps...)
		made := map[string]corev1.PodTemplateSpec{}
		for _, c := range components {
			made[c] = podTemplate(shop, c)
		}

		secretRef := corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "other"}}}
		edits := map[string]func(*corev1.PodSpec){
			resources.User: func(p *corev1.PodSpec) { p.ServiceAccountName = "powerful" },
			resources.Gateway: func(p *corev1.PodSpec) {
				p.Containers[0].EnvFrom = []corev1.EnvFromSource{secretRef}
			},
			resources.Payment: func(p *corev1.PodSpec) {
				p.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}}
			},
			resources.Product: func(p *corev1.PodSpec) {
				p.Volumes = append(p.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
				p.Containers[0].VolumeMounts = append(p.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "host", MountPath: "/host"})
			},
			resources.Order: func(p *corev1.PodSpec) { p.NodeSelector = map[string]string{"disk": "none"} },
			resources.MongoDB: func(p *corev1.PodSpec) {
				p.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
				p.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
						MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"none"}}},
					}}},
				}}
			},
			resources.RabbitMQ: func(p *corev1.PodSpec) {
				p.Containers[0].Ports = append(p.Containers[0].Ports, corev1.ContainerPort{Name: "extra", ContainerPort: 9999})
				p.Containers[0].EnvFrom = []corev1.EnvFromSource{secretRef}
				p.DNSPolicy = corev1.DNSDefault
			},
		}
		for c, edit := range edits {
			editPodSpec(shop, c, func(w client.Object) {
				if c == resources.Gateway {
					w.SetLabels(mapWithEntry(w.GetLabels(), "team", "mine"))
					w.SetAnnotations(mapWithEntry(w.GetAnnotations(), "example.com/mine", "yes"))
				}
			}, edit)
		}

		Eventually(func() []string {
			var drifted []string
			for _, c := range components {
				if !equality.Semantic.DeepEqual(podTemplate(shop, c), made[c]) {
					drifted = append(drifted, c)
				}
			}
			return drifted
		}).WithTimeout(10*time.Second).Should(BeEmpty(), "these pod templates are not put back")
		for _, c := range components {
			Expect(podTemplate(shop, c)).To(Equal(made[c]), "the pod template of %s", c)
		}
		gw := deployment(shop, resources.Gateway)
		Expect(gw.Labels).To(HaveKeyWithValue("team", "mine"))
		Expect(gw.Annotations).To(HaveKeyWithValue("example.com/mine", "yes"))
		expectNoMoreWrites(shop)
	})

	// A Deployment's generation is raised by a change of its annotations too, the
	// controller's own records included: a record kept by generation was stale as soon as
	// it was written, and the controller wrote it again, without end.
	It("is not seen in an annotated or restarted workload, nor in one the controller has no record of: one write, then nothing", func() {
		shop := minimalShop(takeNamespace(), "noted")
		createShopAndWait(shop)
		waitSettled(shop)
		restarted := time.Now().Format(time.RFC3339)
		for _, c := range []string{resources.Gateway, resources.User} { // a Deployment and a StatefulSet
			editTemplate(shop, c, func(w client.Object, t *corev1.PodTemplateSpec) {
				w.SetAnnotations(mapWithEntry(w.GetAnnotations(), "example.com/owner", "team-a"))
			})
			editTemplate(shop, c, func(_ client.Object, t *corev1.PodTemplateSpec) {
				t.Annotations = mapWithEntry(t.Annotations, "kubectl.kubernetes.io/restartedAt", restarted)
			})
		}
		waitSettled(shop)
		expectNoMoreWrites(shop)
		for _, c := range []string{resources.Gateway, resources.User} {
			w := resources.EmptyWorkload(shop, c)
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w)).To(Succeed())
			Expect(w.GetAnnotations()).To(HaveKeyWithValue("example.com/owner", "team-a"), c)
			Expect(podTemplate(shop, c).Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/restartedAt", restarted), c)
		}
		// As a controller of an earlier version left them: no record of the stored spec.
		for _, c := range []string{resources.Gateway, resources.User} {
			editTemplate(shop, c, func(w client.Object, _ *corev1.PodTemplateSpec) {
				a := w.GetAnnotations()
				delete(a, storedSpecAnnotation)
				w.SetAnnotations(a)
			})
		}
		waitSettled(shop)
		expectNoMoreWrites(shop)
	})

	It("is undone in the Services: external IPs, an external name; a LoadBalancer's source ranges and session affinity stay", func() {
		shop := minimalShop(takeNamespace(), "unset-svc")
		shop.Spec.MongoDB.Engine = shopv1.EngineFerretDB
		shop.Spec.Gateway.Service.Type = corev1.ServiceTypeLoadBalancer
		createShopAndWait(shop)
		waitSettled(shop)
		service := func(component string) *corev1.Service {
			svc := resources.AppService(shop, component) // the name and namespace
			svc.Spec = corev1.ServiceSpec{}
			ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(svc), svc)).To(Succeed())
			return svc
		}
		editService := func(name string, edit func(*corev1.Service)) {
			ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
				svc := service(name)
				edit(svc)
				return k8sClient.Update(ctx, svc)
			})).To(Succeed())
		}
		made := map[string]corev1.ServiceSpec{}
		for _, c := range []string{resources.RabbitMQ, resources.Gateway, resources.User, resources.MongoDB} {
			made[c] = service(c).Spec
		}

		editService(resources.RabbitMQ, func(s *corev1.Service) {
			s.Spec.ExternalIPs = []string{"203.0.113.8"}
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		})
		editService(resources.Gateway, func(s *corev1.Service) {
			s.Spec.ExternalIPs = []string{"203.0.113.9"}
			s.Spec.LoadBalancerSourceRanges = []string{"192.0.2.0/24"}
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Labels = mapWithEntry(s.Labels, "team", "mine")
			s.Annotations = mapWithEntry(s.Annotations, "example.com/mine", "yes")
		})
		editService(resources.User, func(s *corev1.Service) {
			s.Spec.PublishNotReadyAddresses = true
			s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
		})
		editService(resources.MongoDB, func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "db.example.com"
		})

		// What the Shop cannot express, set by a user, stays: the source ranges an LB is
		// restricted to, session affinity (its timeout defaulted by the API server).
		want := map[string]corev1.ServiceSpec{resources.User: made[resources.User]}
		clientIP := &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(corev1.DefaultClientIPServiceAffinitySeconds)}}
		for _, c := range []string{resources.RabbitMQ, resources.Gateway} {
			m := made[c]
			spec := *m.DeepCopy()
			spec.SessionAffinity, spec.SessionAffinityConfig = corev1.ServiceAffinityClientIP, clientIP
			if c == resources.Gateway {
				spec.LoadBalancerSourceRanges = []string{"192.0.2.0/24"}
			}
			want[c] = spec
		}
		Eventually(func() []string {
			var drifted []string
			for _, c := range []string{resources.RabbitMQ, resources.Gateway, resources.User} {
				if !equality.Semantic.DeepEqual(service(c).Spec, want[c]) {
					drifted = append(drifted, c)
				}
			}
			if service(resources.MongoDB).Spec.Type != corev1.ServiceTypeClusterIP {
				drifted = append(drifted, resources.MongoDB)
			}
			return drifted
		}).WithTimeout(10*time.Second).Should(BeEmpty(), "these Services are not put back")
		for _, c := range []string{resources.RabbitMQ, resources.Gateway, resources.User} {
			Expect(service(c).Spec).To(Equal(want[c]), "the Service of %s", c)
		}
		// Back from ExternalName, the Service has a cluster IP again, though not the same.
		Expect(service(resources.MongoDB).Spec).To(And(
			HaveField("Type", corev1.ServiceTypeClusterIP), HaveField("ExternalName", BeEmpty()),
			HaveField("ClusterIP", Not(BeEmpty())), HaveField("Selector", made[resources.MongoDB].Selector),
			HaveField("Ports", made[resources.MongoDB].Ports)))
		gw := service(resources.Gateway)
		Expect(gw.Labels).To(HaveKeyWithValue("team", "mine"))
		Expect(gw.Annotations).To(HaveKeyWithValue("example.com/mine", "yes"))
		expectNoMoreWrites(shop)

		By("restricting the LoadBalancer by annotation, then making the gateway a NodePort")
		editService(resources.Gateway, func(s *corev1.Service) {
			s.Annotations = mapWithEntry(s.Annotations, corev1.AnnotationLoadBalancerSourceRangesKey, "198.51.100.0/24")
		})
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Service.Type = corev1.ServiceTypeNodePort })
		Eventually(func() corev1.ServiceType { return service(resources.Gateway).Spec.Type }).WithTimeout(10*time.Second).
			Should(Equal(corev1.ServiceTypeNodePort), "the API server refuses a NodePort with a LoadBalancer's source ranges")
		gw = service(resources.Gateway)
		Expect(gw.Annotations).NotTo(HaveKey(corev1.AnnotationLoadBalancerSourceRangesKey))
		Expect(gw.Annotations).To(HaveKeyWithValue("example.com/mine", "yes"))
		Expect(gw.Spec.LoadBalancerSourceRanges).To(BeEmpty())
		Expect(gw.Spec.SessionAffinity).To(Equal(corev1.ServiceAffinityClientIP))
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
	})
})

// editPodSpec applies editMeta to component's workload and edit to its pod spec, as
// `kubectl edit` would, retrying on conflicts.
func editPodSpec(shop *shopv1.Shop, component string, editMeta func(client.Object), edit func(*corev1.PodSpec)) {
	ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		w := resources.EmptyWorkload(shop, component)
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w); err != nil {
			return err
		}
		editMeta(w)
		switch d := w.(type) {
		case *appsv1.Deployment:
			edit(&d.Spec.Template.Spec)
		case *appsv1.StatefulSet:
			edit(&d.Spec.Template.Spec)
		}
		return k8sClient.Update(ctx, w)
	})).To(Succeed())
}

// editTemplate changes the workload of component, and its pod template, as a user's
// `kubectl annotate` or `kubectl rollout restart` does.
func editTemplate(shop *shopv1.Shop, component string, edit func(client.Object, *corev1.PodTemplateSpec)) {
	ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		w := resources.EmptyWorkload(shop, component)
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w); err != nil {
			return err
		}
		switch d := w.(type) {
		case *appsv1.Deployment:
			edit(w, &d.Spec.Template)
		case *appsv1.StatefulSet:
			edit(w, &d.Spec.Template)
		}
		return k8sClient.Update(ctx, w)
	})).To(Succeed())
}

// childVersions maps every child of shop to its resourceVersion.
func childVersions(shop *shopv1.Shop) map[string]string {
	versions := map[string]string{}
	for _, o := range expectedChildren(shop) {
		ExpectWithOffset(2, k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
		versions[fmt.Sprintf("%T %s", o, o.GetName())] = o.GetResourceVersion()
	}
	return versions
}

// waitSettled waits until no child of shop has changed for a second: the controller
// has written what it builds.
func waitSettled(shop *shopv1.Shop) {
	EventuallyWithOffset(1, func() bool {
		before := childVersions(shop)
		time.Sleep(time.Second)
		return fmt.Sprint(before) == fmt.Sprint(childVersions(shop))
	}).WithTimeout(timeout).Should(BeTrue(), "the children of %s never stop changing", shop.Name)
}

// expectNoMoreWrites checks that no child of shop changes over 3 seconds: what the API
// server defaults is not taken for drift, so a repair is not followed by another.
func expectNoMoreWrites(shop *shopv1.Shop) {
	before := childVersions(shop)
	ConsistentlyWithOffset(1, func() map[string]string { return childVersions(shop) }).
		WithTimeout(3*time.Second).WithPolling(250*time.Millisecond).Should(Equal(before), "a child is written again and again")
}
