package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

const (
	timeout  = 30 * time.Second
	interval = 20 * time.Millisecond
)

// minimalShop is the smallest Shop a user may write: the API server defaults the rest.
func minimalShop(ns, name string) *shopv1.Shop {
	return &shopv1.Shop{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       shopv1.ShopSpec{Version: "v0.1.0"},
	}
}

// expectedChildren lists, empty but named, every object the controller makes for shop.
func expectedChildren(shop *shopv1.Shop) []client.Object {
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: shop.Namespace, Name: name} }
	objs := []client.Object{&corev1.Secret{ObjectMeta: meta(resources.ConnectionsSecretName(shop))}}
	for _, s := range resources.InClusterStores(shop) {
		n := resources.Name(shop, s)
		if s == resources.RabbitMQ {
			objs = append(objs, &corev1.Secret{ObjectMeta: meta(resources.RabbitMQConfigSecretName(shop))},
				&corev1.Secret{ObjectMeta: meta(resources.RabbitMQUsersSecretName(shop))})
		}
		objs = append(objs,
			&corev1.Secret{ObjectMeta: meta(resources.CredentialsSecretName(shop, s))},
			&appsv1.StatefulSet{ObjectMeta: meta(n)}, &corev1.Service{ObjectMeta: meta(n)},
			&corev1.PersistentVolumeClaim{ObjectMeta: meta(n)}, &networkingv1.NetworkPolicy{ObjectMeta: meta(n)})
	}
	for _, a := range resources.Apps {
		n := resources.Name(shop, a)
		objs = append(objs, resources.EmptyWorkload(shop, a), &corev1.Service{ObjectMeta: meta(n)},
			&policyv1.PodDisruptionBudget{ObjectMeta: meta(n)}, &networkingv1.NetworkPolicy{ObjectMeta: meta(n)})
	}
	return objs
}

// podTemplate is the pod template of component's workload as stored.
func podTemplate(shop *shopv1.Shop, component string) corev1.PodTemplateSpec {
	w := resources.EmptyWorkload(shop, component)
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w)).To(Succeed())
	if set, ok := w.(*appsv1.StatefulSet); ok {
		return set.Spec.Template
	}
	return w.(*appsv1.Deployment).Spec.Template
}

// missingChildren returns the names of the expected children not in the cluster.
func missingChildren(shop *shopv1.Shop) []string {
	var missing []string
	for _, o := range expectedChildren(shop) {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			missing = append(missing, fmt.Sprintf("%T %s", o, o.GetName()))
		}
	}
	return missing
}

func getShop(shop *shopv1.Shop) *shopv1.Shop {
	got := &shopv1.Shop{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), got)).To(Succeed())
	return got
}

// conditionOf returns "Status/Reason" of a condition of the stored shop, or "" if unset.
func conditionOf(shop *shopv1.Shop, typ string) func() string {
	return func() string {
		c := meta.FindStatusCondition(getShop(shop).Status.Conditions, typ)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

// updateShop applies edit to the stored shop, retrying on conflicts.
func updateShop(shop *shopv1.Shop, edit func(*shopv1.Shop)) {
	ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := getShop(shop)
		edit(s)
		return k8sClient.Update(ctx, s)
	})).To(Succeed())
}

// markAvailable does what the kubelet and the workload controllers would: report every
// replica of each of the shop's Deployments and StatefulSets as updated, ready and
// available.
func markAvailable(c client.Client, shop *shopv1.Shop) {
	list := &appsv1.DeploymentList{}
	ExpectWithOffset(1, k8sClient.List(ctx, list, client.InNamespace(shop.Namespace),
		client.MatchingLabels{resources.LabelInstance: shop.Name})).To(Succeed())
	ExpectWithOffset(1, list.Items).NotTo(BeEmpty())
	for _, item := range list.Items {
		ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := &appsv1.Deployment{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(&item), d); err != nil {
				return err
			}
			n := ptr.Deref(d.Spec.Replicas, 1)
			d.Status = appsv1.DeploymentStatus{
				ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
				Conditions: []appsv1.DeploymentCondition{{
					Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
					LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
				}},
			}
			return c.Status().Update(ctx, d)
		})).To(Succeed())
	}
	sets := &appsv1.StatefulSetList{}
	ExpectWithOffset(1, k8sClient.List(ctx, sets, client.InNamespace(shop.Namespace),
		client.MatchingLabels{resources.LabelInstance: shop.Name})).To(Succeed())
	for _, item := range sets.Items {
		ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
			set := &appsv1.StatefulSet{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(&item), set); err != nil {
				return err
			}
			n := ptr.Deref(set.Spec.Replicas, 1)
			revision := fmt.Sprintf("%s-%d", set.Name, set.Generation)
			set.Status = appsv1.StatefulSetStatus{
				ObservedGeneration: set.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
				CurrentReplicas: n, CurrentRevision: revision, UpdateRevision: revision,
			}
			return c.Status().Update(ctx, set)
		})).To(Succeed())
	}
}

// eventReasons lists the reasons of the Events regarding shop.
func eventReasons(shop *shopv1.Shop) []string {
	list := &eventsv1.EventList{}
	ExpectWithOffset(1, k8sClient.List(ctx, list, client.InNamespace(shop.Namespace))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Shop" && e.Regarding.Name == shop.Name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

func deployment(shop *shopv1.Shop, component string) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, component)}, d)).To(Succeed())
	return d
}

func statefulSet(shop *shopv1.Shop, component string) *appsv1.StatefulSet {
	st := &appsv1.StatefulSet{}
	ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, component)}, st)).To(Succeed())
	return st
}

func envOf(d *appsv1.Deployment, name string) string {
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return "<unset>"
}

func secretData(shop *shopv1.Shop, name string) map[string][]byte {
	s := &corev1.Secret{}
	ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: name}, s)).To(Succeed())
	return s.Data
}

// labelledURISecret creates, in namespace ns, a Secret name holding uri under the key "uri",
// labelled for the Shop named shop, as an external store's Secret is, and returns it.
func labelledURISecret(ns, name, shop, uri string) *corev1.Secret {
	GinkgoHelper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{resources.LabelShop: shop}},
		StringData: map[string]string{"uri": uri},
	}
	Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	return secret
}

// orphanChildren does to shop's children what the garbage collector does to those of an
// owner deleted with --cascade=orphan (envtest runs no garbage collector): it removes their
// owner references.
func orphanChildren(shop *shopv1.Shop) {
	GinkgoHelper()
	for _, o := range expectedChildren(shop) {
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
		o.SetOwnerReferences(nil)
		Expect(k8sClient.Update(ctx, o)).To(Succeed())
	}
}

// createShopAndWait creates shop and waits until every child exists; it returns how long that took.
func createShopAndWait(shop *shopv1.Shop) time.Duration {
	start := time.Now()
	ExpectWithOffset(1, k8sClient.Create(ctx, shop)).To(Succeed())
	EventuallyWithOffset(1, func() []string { return missingChildren(shop) }).WithTimeout(timeout).WithPolling(interval).Should(BeEmpty())
	return time.Since(start)
}

var _ = Describe("Shop controller", func() {
	It("makes every child, owned and labelled, from a minimal Shop with the API's defaults", func() {
		shop := minimalShop(takeNamespace(), "demo")
		took := createShopAndWait(shop)
		AddReportEntry("time from Shop creation to all children present", took.String())
		fmt.Fprintf(GinkgoWriter, "all %d children present %s after the Shop was created\n", len(expectedChildren(shop)), took)

		stored := getShop(shop)
		spec := stored.Spec
		Expect(spec.Image).To(Equal(shopv1.DefaultImage))
		Expect(spec.ImagePullPolicy).To(Equal(corev1.PullIfNotPresent))
		Expect(spec.Gateway.Replicas).To(HaveValue(BeEquivalentTo(2)))
		Expect(spec.Gateway.RateLimit.Requests).To(HaveValue(BeEquivalentTo(100)))
		Expect(spec.Gateway.RateLimit.Window.Duration).To(Equal(15 * time.Minute))
		Expect(spec.Gateway.UpstreamTimeout.Duration).To(Equal(10 * time.Second))
		Expect(spec.Gateway.Service.Type).To(Equal(corev1.ServiceTypeClusterIP))
		for _, s := range []shopv1.ServiceSpec{spec.Services.User, spec.Services.Product, spec.Services.Order, spec.Services.Payment.ServiceSpec} {
			Expect(s.Replicas).To(HaveValue(BeEquivalentTo(1)))
		}
		Expect(spec.Services.Payment.LimitCents).To(HaveValue(BeEquivalentTo(100000)))
		Expect(spec.MongoDB.Engine).To(Equal(shopv1.EngineMongoDB))

		for _, o := range expectedChildren(stored) {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
			Expect(metav1.IsControlledBy(o, stored)).To(BeTrue(), "%T %s is not controlled by the Shop", o, o.GetName())
			Expect(o.GetLabels()).To(HaveKeyWithValue(resources.LabelManagedBy, "shopkeeper"))
			Expect(o.GetLabels()).To(HaveKeyWithValue(resources.LabelInstance, "demo"))
			Expect(o.GetLabels()).To(HaveKey(resources.LabelName))
			Expect(o.GetLabels()).To(HaveKey(resources.LabelComponent))
			Expect(o.GetLabels()).To(HaveKeyWithValue(resources.LabelPartOf, "shopkeeper"))
		}
		Expect(deployment(stored, resources.Gateway).Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
		for _, c := range []string{resources.MongoDB, resources.RabbitMQ, resources.Product, resources.Order} {
			set := resources.EmptyWorkload(stored, c).(*appsv1.StatefulSet)
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(set), set)).To(Succeed())
			Expect(set.Spec.PodManagementPolicy).To(Equal(appsv1.ParallelPodManagement), c)
			Expect(set.Spec.Replicas).To(HaveValue(BeEquivalentTo(1)), c)
		}
		Expect(deployment(stored, resources.Payment).Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue()).To(BeZero())
		Expect(envOf(deployment(stored, resources.Gateway), "RATE_LIMIT_WINDOW")).To(Equal("15m0s"))
	})

	It("reports Progressing until the Deployments are available, then Ready", func() {
		shop := minimalShop(takeNamespace(), "demo")
		createShopAndWait(shop)
		Eventually(conditionOf(shop, ConditionProgressing)).WithTimeout(timeout).Should(Equal("True/RollingOut"))
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ComponentsNotReady"))
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(getShop(shop).Status.Components).To(HaveKeyWithValue("gateway", shopv1.ComponentStatus{Ready: 0, Desired: 2, Replicas: "0/2"}))

		markAvailable(k8sClient, shop)
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		s := getShop(shop)
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/RolloutComplete"))
		Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		Expect(s.Status.Endpoint).To(Equal(fmt.Sprintf("http://demo-gateway.%s.svc:80", shop.Namespace)))
		Expect(s.Status.Components).To(HaveLen(7))
		Expect(s.Status.Components).To(HaveKeyWithValue("gateway", shopv1.ComponentStatus{Ready: 2, Desired: 2, Replicas: "2/2"}))
	})

	It("keeps the generation of a Shop a Go client reads and writes back with only its metadata changed", func() {
		// Every default must be stored as the API types write it back (a metav1.Duration
		// writes 15m as 15m0s): else a Get and Update by any client that adds a label or a
		// finalizer changes the spec, and costs every Shop a status write and reconciles.
		shop := minimalShop(unwatchedNamespace, fmt.Sprintf("round-trip-%d", time.Now().UnixNano()))
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		DeferCleanup(func() { _ = k8sClient.Delete(ctx, shop) })
		read := &shopv1.Shop{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), read)).To(Succeed())
		generation := read.Generation
		read.Labels = map[string]string{"team": "checkout"}
		Expect(k8sClient.Update(ctx, read)).To(Succeed())
		Expect(read.Generation).To(Equal(generation), "the spec the API server defaulted changed when written back")
	})

	DescribeTable("refuses a value no Go type can spell with the field's own message, not a CEL evaluation error",
		func(path []string, value any, message string) {
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": shopv1.GroupVersion.String(), "kind": "Shop",
				"metadata": map[string]any{"namespace": unwatchedNamespace, "name": fmt.Sprintf("raw-%d", time.Now().UnixNano())},
				"spec":     map[string]any{"version": "v0.1.0"},
			}}
			Expect(unstructured.SetNestedField(u.Object, value, append([]string{"spec"}, path...)...)).To(Succeed())
			err := k8sClient.Create(ctx, u)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
			Expect(err.Error()).NotTo(ContainSubstring("evaluating rule"))
		},
		Entry("a window past int64 nanoseconds", []string{"gateway", "rateLimit", "window"}, "9999999999999h", "rateLimit.window must be between 1s and 24h"),
		Entry("a timeout past int64 nanoseconds", []string{"gateway", "upstreamTimeout"}, "99999999999999999999ms", "upstreamTimeout must be between 100ms and 5m"),
		Entry("a storage size that is no quantity", []string{"mongodb", "storage", "size"}, "1GB", "spec.mongodb.storage.size"),
		Entry("a window past int64 with a fraction", []string{"gateway", "rateLimit", "window"}, "9999999.5h", "rateLimit.window must be between 1s and 24h"),
		Entry("a timeout past int64 with a fraction", []string{"gateway", "upstreamTimeout"}, "99999999999.5s", "upstreamTimeout must be between 100ms and 5m"),
		Entry("a window past int64 in minutes with a fraction", []string{"gateway", "rateLimit", "window"}, "999999999.5m", "rateLimit.window must be between 1s and 24h"),
	)

	It("accepts durations in range however they are spelt", func() {
		// The rules that keep a duration past int64 from CEL's duration() must not refuse
		// an in-range one with leading zeros or many components.
		for _, d := range [][2]string{
			{"0000001h", "0000000010s"}, {"1h30m0.5s", "0.1s"}, {"86400000ms", "300000ms"}, {"23h59m59.999s", "4m59.9s"},
			{"1.5h", "0.5s"}, {"90m", "100000ms"}, {"1h0m0s", "0.0833333h"}, {"0000001.5h", "1m30s"},
		} {
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": shopv1.GroupVersion.String(), "kind": "Shop",
				"metadata": map[string]any{"namespace": unwatchedNamespace, "name": fmt.Sprintf("durations-%d", time.Now().UnixNano())},
				"spec": map[string]any{"version": "v0.1.0", "gateway": map[string]any{
					"rateLimit": map[string]any{"window": d[0]}, "upstreamTimeout": d[1]}},
			}}
			Expect(k8sClient.Create(ctx, u)).To(Succeed(), "window %s, upstreamTimeout %s", d[0], d[1])
			Expect(k8sClient.Delete(ctx, u)).To(Succeed())
		}
	})

	It("accepts scrapers of every valid form", func() {
		shop := minimalShop(unwatchedNamespace, fmt.Sprintf("scrapers-%d", time.Now().UnixNano()))
		selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "prometheus"}}
		shop.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.2.3.4/32"}}},
			{IPBlock: &networkingv1.IPBlock{CIDR: "fd00::/8"}},
			{NamespaceSelector: selector},
			{PodSelector: selector},
			{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: selector},
		}
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		Expect(k8sClient.Delete(ctx, shop)).To(Succeed())
	})

	DescribeTable("refuses an invalid Shop with a message a person understands",
		func(create, update func(*shopv1.Shop), message string) {
			shop := minimalShop(unwatchedNamespace, fmt.Sprintf("invalid-%d", time.Now().UnixNano()))
			create(shop)
			if update == nil {
				err := k8sClient.Create(ctx, shop)
				Expect(err).To(HaveOccurred())
				Expect(err.Error()).To(ContainSubstring(message))
				return
			}
			Expect(k8sClient.Create(ctx, shop)).To(Succeed())
			DeferCleanup(func() { Expect(k8sClient.Delete(ctx, shop)).To(Succeed()) })
			update(shop)
			err := k8sClient.Update(ctx, shop)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("version is not a semantic version", func(s *shopv1.Shop) { s.Spec.Version = "latest" }, nil,
			"version must be a semantic version such as v0.1.0"),
		Entry("version with build metadata, which no image tag can hold", func(s *shopv1.Shop) { s.Spec.Version = "v0.1.0+build.5" }, nil,
			"without build metadata ('+')"),
		Entry("image carries a tag", func(s *shopv1.Shop) { s.Spec.Image = "registry.local/shop:v1" }, nil,
			"image is a repository without tag or digest"),
		Entry("gateway replicas 0", func(s *shopv1.Shop) { s.Spec.Gateway.Replicas = ptr.To[int32](0) }, nil,
			"gateway replicas must be between 1 and 50"),
		Entry("service replicas 51", func(s *shopv1.Shop) { s.Spec.Services.User.Replicas = ptr.To[int32](51) }, nil,
			"service replicas must be between 1 and 50"),
		Entry("two product replicas", func(s *shopv1.Shop) { s.Spec.Services.Product.Replicas = ptr.To[int32](2) }, nil,
			"services.product.replicas must be 1"),
		Entry("two order replicas", func(s *shopv1.Shop) { s.Spec.Services.Order.Replicas = ptr.To[int32](2) }, nil,
			"services.order.replicas must be 1"),
		Entry("two payment replicas on FerretDB", func(s *shopv1.Shop) {
			s.Spec.MongoDB.Engine = shopv1.EngineFerretDB
			s.Spec.Services.Payment.Replicas = ptr.To[int32](2)
		}, nil, "with mongodb.engine FerretDB, services.payment runs 1 replica"),
		Entry("two user replicas on FerretDB", func(s *shopv1.Shop) {
			s.Spec.MongoDB.Engine = shopv1.EngineFerretDB
			s.Spec.Services.User.Replicas = ptr.To[int32](2)
		}, nil, "with mongodb.engine FerretDB, services.user runs 1 replica"),
		Entry("rate limit of 0 requests", func(s *shopv1.Shop) { s.Spec.Gateway.RateLimit.Requests = ptr.To[int32](0) }, nil,
			"rateLimit.requests must be greater than 0"),
		Entry("rate limit window too long", func(s *shopv1.Shop) { s.Spec.Gateway.RateLimit.Window = &metav1.Duration{Duration: 48 * time.Hour} }, nil,
			"rateLimit.window must be between 1s and 24h"),
		Entry("upstream timeout too short", func(s *shopv1.Shop) { s.Spec.Gateway.UpstreamTimeout = &metav1.Duration{Duration: time.Millisecond} }, nil,
			"upstreamTimeout must be between 100ms and 5m"),
		Entry("trusted proxy is no CIDR", func(s *shopv1.Shop) { s.Spec.Gateway.TrustedProxies = []string{"10.0.0.0/8", "proxy.local"} }, nil,
			"trustedProxies must be CIDRs such as 10.0.0.0/8"),
		Entry("unknown gateway service type", func(s *shopv1.Shop) { s.Spec.Gateway.Service.Type = "ExternalName" }, nil,
			`supported values: "ClusterIP", "NodePort", "LoadBalancer"`),
		Entry("payment limit of 0", func(s *shopv1.Shop) { s.Spec.Services.Payment.LimitCents = ptr.To[int64](0) }, nil,
			"payment.limitCents must be greater than 0"),
		Entry("external MongoDB next to an in-cluster image", func(s *shopv1.Shop) {
			s.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo"}}
			s.Spec.MongoDB.Image = "mongo:7.0"
		}, nil, "mongodb.external cannot be combined with image, storage or resources"),
		Entry("external RabbitMQ next to in-cluster storage", func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "rabbit"}}
			s.Spec.RabbitMQ.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("2Gi"))}
		}, nil, "rabbitmq.external cannot be combined with image, storage or resources"),
		Entry("unknown MongoDB engine", func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = "Postgres" }, nil,
			`supported values: "MongoDB", "FerretDB"`),
		Entry("storage below 64Mi", func(s *shopv1.Shop) {
			s.Spec.MongoDB.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("1Mi"))}
		}, nil, "storage size must be at least 64Mi"),
		Entry("podLabels taking over app.kubernetes.io/", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"app.kubernetes.io/name": "x"}
		}, nil, "podLabels cannot set app.kubernetes.io/ labels"),
		Entry("podLabels key that is no label key", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"bad key!": "x"}
		}, nil, "podLabels keys must be label keys"),
		Entry("podAnnotations key that is no annotation key", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = map[string]shopv1.AnnotationValue{"bad key!": "x"}
		}, nil, "podAnnotations keys must be annotation keys"),
		Entry("imagePullSecrets without a name", func(s *shopv1.Shop) {
			s.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}, {}}
		}, nil, "imagePullSecrets must name their Secrets"),
		Entry("a scraper naming no peer", func(s *shopv1.Shop) {
			s.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{{}}
		}, nil, "each of monitoring.scrapers sets either ipBlock"),
		Entry("a scraper with an ipBlock and a selector", func(s *shopv1.Shop) {
			s.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{{
				IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}, NamespaceSelector: &metav1.LabelSelector{}}}
		}, nil, "each of monitoring.scrapers sets either ipBlock"),
		Entry("storage class that is no name", func(s *shopv1.Shop) {
			s.Spec.MongoDB.Storage = &shopv1.StorageSpec{StorageClassName: ptr.To("Fast_SSD")}
		}, nil, "spec.mongodb.storage.storageClassName"),
		Entry("external Secret name that is no name", func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "Not_A_Name"}}
		}, nil, "secretRef.name must be a Secret name"),
		// No Secret can hold such a key: the Shop would only ever be Degraded
		// (ExternalSecretInvalid, "has no key"), a trailing space hard to see in the message.
		Entry("external Secret key with a space", func(s *shopv1.Shop) {
			s.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo", Key: "uri "}}
		}, nil, "secretRef.key must be a key a Secret can hold"),
		Entry("external Secret key with a slash", func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "rabbit", Key: "amqp/url"}}
		}, nil, "secretRef.key must be a key a Secret can hold"),
		Entry("external Secret key starting with '..'", func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "rabbit", Key: "..url"}}
		}, nil, "secretRef.key must be a key a Secret can hold"),
		Entry("storage class changing", func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.Storage = &shopv1.StorageSpec{StorageClassName: ptr.To("standard")}
		}, func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.Storage.StorageClassName = ptr.To("fast")
		}, "storageClassName cannot be changed"),
		Entry("name longer than 43", func(s *shopv1.Shop) { s.Name = strings.Repeat("a", 44) }, nil,
			"a Shop's name must be at most 43 characters"),
		Entry("name starting with a digit", func(s *shopv1.Shop) { s.Name = "1shop" }, nil,
			"a Shop's name must start with a lower-case letter"),
		Entry("name with a dot", func(s *shopv1.Shop) { s.Name = "my.shop" }, nil,
			"a Shop's name must start with a lower-case letter"),
		Entry("MongoDB switching to external", func(*shopv1.Shop) {}, func(s *shopv1.Shop) {
			s.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo"}}
		}, "mongodb cannot switch between in-cluster and external"),
		Entry("RabbitMQ switching to in-cluster", func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "rabbit"}}
		}, func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.External = nil
		}, "rabbitmq cannot switch between in-cluster and external"),
		Entry("MongoDB engine changing", func(*shopv1.Shop) {}, func(s *shopv1.Shop) {
			s.Spec.MongoDB.Engine = shopv1.EngineFerretDB
		}, "mongodb.engine cannot be changed"),
		Entry("storage removed", func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("2Gi"))}
		}, func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.Storage = nil
		}, "rabbitmq.storage cannot be removed once set"),
		Entry("storage class set on storage added later", func(*shopv1.Shop) {}, func(s *shopv1.Shop) {
			s.Spec.MongoDB.Storage = &shopv1.StorageSpec{StorageClassName: ptr.To("fast")}
		}, "mongodb.storage.storageClassName can be set only when the Shop is made"),
		Entry("storage class added to storage", func(s *shopv1.Shop) {
			s.Spec.MongoDB.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("2Gi"))}
		}, func(s *shopv1.Shop) {
			s.Spec.MongoDB.Storage.StorageClassName = ptr.To("fast")
		}, "mongodb.storage.storageClassName can be set only when the Shop is made"),
		Entry("database prefix for an in-cluster MongoDB", func(s *shopv1.Shop) { s.Spec.MongoDB.DatabasePrefix = "staging" }, nil,
			"mongodb.databasePrefix is for an external MongoDB"),
		Entry("database prefix with a dot", func(s *shopv1.Shop) {
			s.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo"}}
			s.Spec.MongoDB.DatabasePrefix = "shop.staging"
		}, nil, "spec.mongodb.databasePrefix in body should match"),
		Entry("database prefix changing", func(s *shopv1.Shop) {
			s.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo"}}
			s.Spec.MongoDB.DatabasePrefix = "staging"
		}, func(s *shopv1.Shop) {
			s.Spec.MongoDB.DatabasePrefix = "prod"
		}, "mongodb.databasePrefix cannot be set, changed or removed"),
		Entry("database prefix added", func(s *shopv1.Shop) {
			s.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo"}}
		}, func(s *shopv1.Shop) {
			s.Spec.MongoDB.DatabasePrefix = "prod"
		}, "mongodb.databasePrefix cannot be set, changed or removed"),
		Entry("storage class removed", func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.Storage = &shopv1.StorageSpec{StorageClassName: ptr.To("standard")}
		}, func(s *shopv1.Shop) {
			s.Spec.RabbitMQ.Storage.StorageClassName = nil
		}, "rabbitmq.storage.storageClassName can be set only when the Shop is made"),
	)

	DescribeTable("accepts a Shop at the edge of what is valid",
		func(edit func(*shopv1.Shop)) {
			shop := minimalShop(unwatchedNamespace, fmt.Sprintf("valid-%d", time.Now().UnixNano()))
			edit(shop)
			Expect(k8sClient.Create(ctx, shop)).To(Succeed())
			Expect(k8sClient.Delete(ctx, shop)).To(Succeed())
		},
		Entry("the longest name its children can carry", func(s *shopv1.Shop) { s.Name = "s" + strings.Repeat("0", 42) }),
		Entry("a pre-release version", func(s *shopv1.Shop) { s.Spec.Version = "v0.2.0-rc.1" }),
		Entry("a version without the v", func(s *shopv1.Shop) { s.Spec.Version = "1.2.3" }),
		Entry("an external store's Secret key of every character a Secret key may hold", func(s *shopv1.Shop) {
			s.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo", Key: ".Mongo_URI-2.txt"}}
		}),
		Entry("an external MongoDB with a database prefix of 40 characters", func(s *shopv1.Shop) {
			s.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo"}}
			s.Spec.MongoDB.DatabasePrefix = "Shop_" + strings.Repeat("0", 34) + "-"
		}),
		Entry("user and payment scaled out on MongoDB", func(s *shopv1.Shop) {
			s.Spec.Services.User.Replicas = ptr.To[int32](50)
			s.Spec.Services.Payment.Replicas = ptr.To[int32](50)
		}),
		// The API server checks annotation keys lower-cased (ValidateAnnotations): a
		// prefix in capitals is one a pod takes, and an earlier version admitted it.
		Entry("a podAnnotations key whose prefix has capitals", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = map[string]shopv1.AnnotationValue{"Example.COM/Owner": "team-a"}
		}),
	)

	// With an external store, engine says which server it runs (FerretDB holds user and
	// payment to one process); no data of the Shop's is in either, so it may change, as when
	// the external store moves from FerretDB to MongoDB.
	It("lets the engine of an external MongoDB change", func() {
		shop := minimalShop(unwatchedNamespace, fmt.Sprintf("engine-%d", time.Now().UnixNano()))
		shop.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo"}}
		shop.Spec.MongoDB.Engine = shopv1.EngineFerretDB
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, shop)).To(Succeed()) })
		shop.Spec.MongoDB.Engine = shopv1.EngineMongoDB
		shop.Spec.Services.User.Replicas = ptr.To[int32](3)
		Expect(k8sClient.Update(ctx, shop)).To(Succeed())
		shop.Spec.MongoDB.Engine = shopv1.EngineFerretDB
		shop.Spec.Services.User.Replicas = ptr.To[int32](1)
		Expect(k8sClient.Update(ctx, shop)).To(Succeed())
	})

	It("lets storage grow", func() {
		shop := minimalShop(unwatchedNamespace, "growing")
		shop.Spec.MongoDB.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("1Gi"))}
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, shop)).To(Succeed()) })
		shop.Spec.MongoDB.Storage.Size = ptr.To(resource.MustParse("3Gi"))
		Expect(k8sClient.Update(ctx, shop)).To(Succeed())
	})

	It("never shrinks a volume when storage added later asks less than it holds", func() {
		shop := minimalShop(unwatchedNamespace, "smaller")
		_, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		pvc := &corev1.PersistentVolumeClaim{}
		key := types.NamespacedName{Namespace: shop.Namespace, Name: "smaller-mongodb"}
		Expect(k8sClient.Get(ctx, key, pvc)).To(Succeed())
		before := pvc.ResourceVersion
		Expect(pvc.Spec.Resources.Requests.Storage().Equal(shopv1.DefaultStorageSize)).To(BeTrue())

		updateShop(shop, func(s *shopv1.Shop) {
			s.Spec.MongoDB.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("512Mi"))}
		})
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(k8sClient.Get(ctx, key, pvc)).To(Succeed())
		Expect(pvc.ResourceVersion).To(Equal(before), "the claim was written")
	})

	It("is Degraded while an external store's Secret is missing or unlabelled, and recovers when it appears", func() {
		shop := minimalShop(takeNamespace(), "ext")
		shop.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "mongo-uri"}}
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())

		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ExternalSecretNotFound"))
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ExternalSecretNotFound"))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"))
		Eventually(func() []string { return eventReasons(shop) }).WithTimeout(timeout).Should(ContainElement("ExternalSecretNotFound"))
		// The in-cluster broker is made; nothing that needs the missing URI is.
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "ext-rabbitmq"}, &appsv1.StatefulSet{})
		}).WithTimeout(timeout).Should(Succeed())
		missing := missingChildren(shop)
		Expect(missing).To(HaveLen(1+4*len(resources.Apps)), "the connections Secret and every object of the five services")
		for _, m := range missing {
			Expect(m).To(Or(HaveSuffix("ext-connections"), MatchRegexp(`ext-(user|product|order|payment|gateway)$`)))
		}

		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "mongo-uri"},
			StringData: map[string]string{"uri": "mongodb://u:p@db.example.com:27017/?tls=true"},
		}
		// An unlabelled Secret brings no event: the controller looks again every ConflictRetry.
		Expect(requeueOf(shop)).To(Equal(ConflictRetry))
		Expect(k8sClient.Create(ctx, secret)).To(Succeed())
		// A change of the Shop stands for that retry here.
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Replicas = ptr.To[int32](3) })
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ExternalSecretNotLabelled"))

		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
			secret.Labels = map[string]string{resources.LabelShop: shop.Name}
			return k8sClient.Update(ctx, secret)
		})).To(Succeed())
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
		Expect(string(secretData(shop, "ext-connections")[resources.MongoDBURIKey(resources.User)])).
			To(Equal("mongodb://u:p@db.example.com:27017/users?authSource=admin&tls=true"))
		// Events are sent in the background: the condition may come first.
		Eventually(func() []string { return eventReasons(shop) }).WithTimeout(timeout).Should(ContainElement("Recovered"))

		markAvailable(k8sClient, shop)
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		Expect(getShop(shop).Status.Components).NotTo(HaveKey("mongodb"))

		By("rolling the pods that read the URI when the Secret changes")
		before := deployment(shop, resources.User).Spec.Template.Annotations[resources.ChecksumAnnotation]
		gatewayBefore := deployment(shop, resources.Gateway).Spec.Template.Annotations[resources.ChecksumAnnotation]
		secret.Data = map[string][]byte{"uri": []byte("mongodb://u:p@db2.example.com:27017/")}
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		Eventually(func() string {
			return deployment(shop, resources.User).Spec.Template.Annotations[resources.ChecksumAnnotation]
		}).WithTimeout(timeout).ShouldNot(Equal(before))
		Expect(deployment(shop, resources.Gateway).Spec.Template.Annotations[resources.ChecksumAnnotation]).To(Equal(gatewayBefore))
	})

	DescribeTable("refuses an external store's Secret named as one the operator makes for the Shop",
		func(name string, external func(*shopv1.Shop, *shopv1.ExternalSpec)) {
			ns := takeNamespace()
			secret := labelledURISecret(ns, name, "own", "mongodb://u:p@db.example.com:27017/")
			shop := minimalShop(ns, "own")
			external(shop, &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: secret.Name}})
			Expect(k8sClient.Create(ctx, shop)).To(Succeed())
			Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ExternalSecretInvalid"))
			Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).
				To(ContainSubstring("Secret " + name + " is one the operator makes for this Shop"))
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
			Expect(secret.OwnerReferences).To(BeEmpty())
			Expect(secret.Data).To(Equal(map[string][]byte{"uri": []byte("mongodb://u:p@db.example.com:27017/")}), "the user's Secret was written")
		},
		Entry("MongoDB's, in the connections Secret", "own-connections",
			func(s *shopv1.Shop, e *shopv1.ExternalSpec) { s.Spec.MongoDB.External = e }),
		Entry("RabbitMQ's, in the in-cluster MongoDB's credentials", "own-mongodb-credentials",
			func(s *shopv1.Shop, e *shopv1.ExternalSpec) { s.Spec.RabbitMQ.External = e }),
		Entry("MongoDB's, in the in-cluster broker's credentials", "own-rabbitmq-credentials",
			func(s *shopv1.Shop, e *shopv1.ExternalSpec) { s.Spec.MongoDB.External = e }),
	)

	It("reads an external store's Secret named as one the operator would make only for an in-cluster store", func() {
		ns := takeNamespace()
		secret := labelledURISecret(ns, "ext-mongodb-credentials", "ext", "mongodb://u:p@db.example.com:27017/")
		shop := minimalShop(ns, "ext")
		shop.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: secret.Name}}
		createShopAndWait(shop)
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
		Expect(string(secretData(shop, "ext-connections")[resources.MongoDBURIKey(resources.User)])).
			To(Equal("mongodb://u:p@db.example.com:27017/users?authSource=admin"))
	})

	It("names the other Shop when a child's name is taken by an object labelled for it", func() {
		ns := takeNamespace()
		labelledURISecret(ns, "a-mongodb-connections", "a", "mongodb://u:p@db.example.com:27017/")
		shop := minimalShop(ns, "a-mongodb")
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildConflict"))
		Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).
			To(ContainSubstring("Secret a-mongodb-connections already exists and is Shop a's"))
	})

	It("keeps its own claim's engine whatever the claim's label says", func() {
		shop := minimalShop(takeNamespace(), "relabelled")
		createShopAndWait(shop)
		claim := &corev1.PersistentVolumeClaim{}
		key := types.NamespacedName{Namespace: shop.Namespace, Name: "relabelled-mongodb"}
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			Expect(k8sClient.Get(ctx, key, claim)).To(Succeed())
			claim.Labels[resources.LabelEngine] = string(shopv1.EngineFerretDB)
			return k8sClient.Update(ctx, claim)
		})).To(Succeed())
		Eventually(func() string {
			Expect(k8sClient.Get(ctx, key, claim)).To(Succeed())
			return claim.Labels[resources.LabelEngine]
		}).WithTimeout(timeout).Should(Equal(string(shopv1.EngineMongoDB)))
		Expect(conditionOf(shop, ConditionDegraded)()).NotTo(Equal("True/ChildConflict"))
	})

	It("gives an external store's Secret only to the Shop its label names, and follows the label", func() {
		ns := takeNamespace()
		secret := labelledURISecret(ns, "shared-mongo", "staging", "mongodb://u:p@db.example.com:27017/")
		shops := map[string]*shopv1.Shop{}
		for _, name := range []string{"staging", "prod"} {
			shop := minimalShop(ns, name)
			shop.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: secret.Name}}
			shop.Spec.MongoDB.DatabasePrefix = name
			Expect(k8sClient.Create(ctx, shop)).To(Succeed())
			shops[name] = shop
		}
		staging, prod := shops["staging"], shops["prod"]
		Eventually(func() []string { return missingChildren(staging) }).WithTimeout(timeout).Should(BeEmpty())
		Eventually(conditionOf(prod, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ExternalSecretNotLabelled"))
		Expect(meta.FindStatusCondition(getShop(prod).Status.Conditions, ConditionDegraded).Message).
			To(ContainSubstring("Secret shared-mongo is labelled commerce.shopkeeper.dev/shop=staging, for another Shop"))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "prod-connections"}, &corev1.Secret{})).
			To(Satisfy(apierrors.IsNotFound), "the URI went to a Shop the Secret is not labelled for")

		By("giving the Secret to the other Shop, by its label")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
			secret.Labels[resources.LabelShop] = "prod"
			secret.Data = map[string][]byte{"uri": []byte("mongodb://u:p@db2.example.com:27017/")}
			return k8sClient.Update(ctx, secret)
		})).To(Succeed())
		Eventually(func() []string { return missingChildren(prod) }).WithTimeout(timeout).Should(BeEmpty())
		Expect(string(secretData(prod, "prod-connections")[resources.MongoDBURIKey(resources.User)])).
			To(Equal("mongodb://u:p@db2.example.com:27017/prod-users?authSource=admin"))
		Eventually(conditionOf(staging, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ExternalSecretNotLabelled"))
		Expect(string(secretData(staging, "staging-connections")[resources.MongoDBURIKey(resources.User)])).
			To(Equal("mongodb://u:p@db.example.com:27017/staging-users?authSource=admin"), "the Secret's new URI reached a Shop it is no longer labelled for")

		By("refusing a Shop that names another Shop's credentials")
		thief := minimalShop(ns, "thief")
		thief.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "prod-connections", Key: resources.MongoDBURIKey(resources.User)}}
		Expect(k8sClient.Create(ctx, thief)).To(Succeed())
		Eventually(conditionOf(thief, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ExternalSecretNotLabelled"))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "thief-connections"}, &corev1.Secret{})).To(Satisfy(apierrors.IsNotFound))
	})

	It("restores deleted and edited children", func() {
		shop := minimalShop(takeNamespace(), "drift")
		createShopAndWait(shop)

		user := deployment(shop, resources.User)
		Expect(k8sClient.Delete(ctx, user)).To(Succeed())
		Eventually(func() (types.UID, error) {
			d := &appsv1.Deployment{}
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(user), d)
			return d.UID, err
		}).WithTimeout(timeout).ShouldNot(Equal(user.UID))

		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "drift-mongodb"}}
		Expect(k8sClient.Delete(ctx, np)).To(Succeed())
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())

		gw := deployment(shop, resources.Gateway)
		gw.Spec.Replicas = ptr.To[int32](7)
		gw.Spec.Template.Spec.Containers[0].Env = append(gw.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "EXTRA", Value: "1"})
		Expect(k8sClient.Update(ctx, gw)).To(Succeed())
		Eventually(func() int32 { return *deployment(shop, resources.Gateway).Spec.Replicas }).WithTimeout(timeout).Should(BeEquivalentTo(2))
		Expect(envOf(deployment(shop, resources.Gateway), "EXTRA")).To(Equal("<unset>"))

		svc := &corev1.Service{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "drift-order"}, svc)).To(Succeed())
		svc.Spec.Selector = map[string]string{"app": "elsewhere"}
		Expect(k8sClient.Update(ctx, svc)).To(Succeed())
		Eventually(func() map[string]string {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(svc), svc)).To(Succeed())
			return svc.Spec.Selector
		}).WithTimeout(timeout).Should(Equal(resources.SelectorLabels(shop, resources.Order)))

		conn := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "drift-connections"}, conn)).To(Succeed())
		want := conn.Data[resources.RabbitMQURLKey]
		conn.Data[resources.RabbitMQURLKey] = []byte("amqp://tampered")
		Expect(k8sClient.Update(ctx, conn)).To(Succeed())
		Eventually(func() []byte { return secretData(shop, "drift-connections")[resources.RabbitMQURLKey] }).WithTimeout(timeout).Should(Equal(want))

		By("taking back a child that lost its labels, which puts it out of the cache's sight")
		pdb := &policyv1.PodDisruptionBudget{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "drift-payment"}, pdb)).To(Succeed())
		// A pod that is not ready never holds a drain back.
		Expect(pdb.Spec.UnhealthyPodEvictionPolicy).To(HaveValue(Equal(policyv1.AlwaysAllow)))
		pdb.Labels = nil
		Expect(k8sClient.Update(ctx, pdb)).To(Succeed())
		Eventually(func() map[string]string {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pdb), pdb)).To(Succeed())
			return pdb.Labels
		}).WithTimeout(timeout).Should(HaveKeyWithValue(resources.LabelManagedBy, resources.ManagedBy))
	})

	It("puts back a child deleted from a Ready Shop, which nothing else has it look at again: each kind's watch does", func() {
		shop := minimalShop(takeNamespace(), "calm")
		createShopAndWait(shop)
		markAvailable(k8sClient, shop)
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		for _, child := range []client.Object{
			&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "calm-gateway"}},
			&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "calm-user"}},
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "calm-payment"}},
		} {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(child), child)).To(Succeed())
			gone := child.GetUID()
			Expect(k8sClient.Delete(ctx, child)).To(Succeed())
			Eventually(func() (types.UID, error) {
				err := k8sClient.Get(ctx, client.ObjectKeyFromObject(child), child)
				return child.GetUID(), err
			}).WithTimeout(timeout).ShouldNot(Equal(gone), "%T %s put back", child, child.GetName())
		}
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("True/Available"))

		By("a status that is not the one computed is put back: a change of the status has the Shop looked at again")
		// As a status patch a reconcile skipped leaves it: its cached Shop did not yet hold the
		// previous reconcile's patch, whose status it then took for what is stored. Written
		// once the Shop is quiet, so that no reconcile of the children just put back does it.
		Eventually(func() bool {
			before := getShop(shop).ResourceVersion
			time.Sleep(3 * time.Second)
			return getShop(shop).ResourceVersion == before
		}).WithTimeout(timeout).Should(BeTrue())
		stored := getShop(shop)
		wrong := stored.DeepCopy()
		meta.SetStatusCondition(&wrong.Status.Conditions, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse,
			Reason: ReasonComponentsNotReady, Message: "not ready: gateway (2/2)", ObservedGeneration: stored.Generation})
		Expect(k8sClient.Status().Patch(ctx, wrong, client.MergeFrom(stored))).To(Succeed())
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
	})

	It("repairs drift that only adds to a child: an allow-all ingress rule, a selector key, a partition", func() {
		shop := minimalShop(takeNamespace(), "added")
		createShopAndWait(shop)

		np := &networkingv1.NetworkPolicy{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "added-mongodb"}, np)).To(Succeed())
		want := np.Spec
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{}) // admits everyone
		Expect(k8sClient.Update(ctx, np)).To(Succeed())
		Eventually(func() networkingv1.NetworkPolicySpec {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(np), np)).To(Succeed())
			return np.Spec
		}).WithTimeout(timeout).Should(Equal(want))

		svc := &corev1.Service{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "added-user"}, svc)).To(Succeed())
		svc.Spec.Selector["extra"] = "key"
		Expect(k8sClient.Update(ctx, svc)).To(Succeed())
		Eventually(func() map[string]string {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(svc), svc)).To(Succeed())
			return svc.Spec.Selector
		}).WithTimeout(timeout).Should(Equal(resources.SelectorLabels(shop, resources.User)))

		// A partition would hold the pod back from every later update.
		set := resources.EmptyWorkload(shop, resources.Order).(*appsv1.StatefulSet)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(set), set)).To(Succeed())
		set.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](1)
		Expect(k8sClient.Update(ctx, set)).To(Succeed())
		Eventually(func() *int32 {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(set), set)).To(Succeed())
			return set.Spec.UpdateStrategy.RollingUpdate.Partition
		}).WithTimeout(timeout).Should(HaveValue(BeZero()))
	})

	It("keeps a restart asked for with kubectl rollout restart when the Shop changes", func() {
		shop := minimalShop(takeNamespace(), "restart")
		createShopAndWait(shop)
		const restartedAt = "kubectl.kubernetes.io/restartedAt"
		gw := deployment(shop, resources.Gateway)
		gw.Spec.Template.Annotations[restartedAt] = "2026-11-26T15:00:00Z"
		Expect(k8sClient.Update(ctx, gw)).To(Succeed())

		By("changing the gateway's replicas only: the pods are not rolled back to the template from before the restart")
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Replicas = ptr.To[int32](3) })
		Eventually(func() int32 { return *deployment(shop, resources.Gateway).Spec.Replicas }).WithTimeout(timeout).Should(BeEquivalentTo(3))
		Expect(deployment(shop, resources.Gateway).Spec.Template.Annotations).To(HaveKeyWithValue(restartedAt, "2026-11-26T15:00:00Z"))

		By("changing what the gateway's pods run: the new template keeps the restart too")
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.RateLimit.Requests = ptr.To[int32](250) })
		Eventually(func() string { return envOf(deployment(shop, resources.Gateway), "RATE_LIMIT_REQUESTS") }).WithTimeout(timeout).Should(Equal("250"))
		Expect(deployment(shop, resources.Gateway).Spec.Template.Annotations).To(HaveKeyWithValue(restartedAt, "2026-11-26T15:00:00Z"))
	})

	It("takes away from the children what the Shop no longer asks for", func() {
		shop := minimalShop(takeNamespace(), "removed")
		scraper := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}
		shop.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{scraper}
		shop.Spec.PodAnnotations = map[string]shopv1.AnnotationValue{"example.com/note": "1"}
		shop.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		shop.Spec.Services.User.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		}
		createShopAndWait(shop)
		user := deployment(shop, resources.User)
		Expect(user.Spec.Template.Annotations).To(HaveKey("example.com/note"))
		Expect(user.Spec.Template.Spec.ImagePullSecrets).NotTo(BeEmpty())
		Expect(user.Spec.Template.Spec.Containers[0].Resources.Limits).NotTo(BeEmpty())
		userNP := func() []networkingv1.NetworkPolicyPeer {
			np := &networkingv1.NetworkPolicy{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "removed-user"}, np)).To(Succeed())
			return np.Spec.Ingress[0].From
		}
		Expect(userNP()).To(ContainElement(scraper))

		updateShop(shop, func(s *shopv1.Shop) {
			s.Spec.Monitoring.Scrapers = nil
			s.Spec.PodAnnotations = nil
			s.Spec.ImagePullSecrets = nil
			s.Spec.Services.User.Resources.Limits = nil
		})
		Eventually(userNP).WithTimeout(timeout).Should(HaveLen(1))
		Eventually(func() map[string]string { return deployment(shop, resources.User).Spec.Template.Annotations }).
			WithTimeout(timeout).ShouldNot(HaveKey("example.com/note"))
		user = deployment(shop, resources.User)
		Expect(user.Spec.Template.Spec.ImagePullSecrets).To(BeEmpty())
		Expect(user.Spec.Template.Spec.Containers[0].Resources.Limits).To(BeEmpty())
		Expect(user.Spec.Template.Spec.Containers[0].Resources.Requests).To(HaveKey(corev1.ResourceCPU))
	})

	It("rolls out a changed spec", func() {
		shop := minimalShop(takeNamespace(), "change")
		createShopAndWait(shop)
		markAvailable(k8sClient, shop)
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		templateBefore := deployment(shop, resources.Gateway).Spec.Template

		updateShop(shop, func(s *shopv1.Shop) {
			s.Spec.Gateway.Replicas = ptr.To[int32](4)
			s.Spec.Gateway.RateLimit.Requests = ptr.To[int32](250)
			s.Spec.Gateway.TrustedProxies = []string{"10.0.0.0/8"}
			s.Spec.Services.Payment.LimitCents = ptr.To[int64](5000)
			s.Spec.Version = "v0.2.0"
		})
		Eventually(func() int32 { return *deployment(shop, resources.Gateway).Spec.Replicas }).WithTimeout(timeout).Should(BeEquivalentTo(4))
		gw := deployment(shop, resources.Gateway)
		Expect(envOf(gw, "RATE_LIMIT_REQUESTS")).To(Equal("250"))
		Expect(envOf(gw, "TRUSTED_PROXIES")).To(Equal("10.0.0.0/8"))
		Expect(gw.Spec.Template).NotTo(Equal(templateBefore))
		Expect(gw.Spec.Template.Spec.Containers[0].Image).To(HaveSuffix(":v0.2.0"))
		Eventually(func() string { return envOf(deployment(shop, resources.Payment), "PAYMENT_LIMIT_CENTS") }).WithTimeout(timeout).Should(Equal("5000"))
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("False/ComponentsNotReady"))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("True/RollingOut"))

		By("removing the last trusted proxy from the pods too")
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.TrustedProxies = nil })
		Eventually(func() string { return envOf(deployment(shop, resources.Gateway), "TRUSTED_PROXIES") }).WithTimeout(timeout).Should(BeEmpty())
	})

	It("switches the gateway's Service type both ways, keeping its clients' addresses from outside", func() {
		shop := minimalShop(takeNamespace(), "svctype")
		createShopAndWait(shop)
		gateway := func() *corev1.Service {
			svc := &corev1.Service{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, resources.Gateway)}, svc)).To(Succeed())
			return svc
		}
		typeAndPolicy := func() string {
			svc := gateway()
			return string(svc.Spec.Type) + "/" + string(svc.Spec.ExternalTrafficPolicy)
		}
		Expect(typeAndPolicy()).To(Equal("ClusterIP/"))

		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Service.Type = corev1.ServiceTypeNodePort })
		Eventually(typeAndPolicy).WithTimeout(timeout).Should(Equal("NodePort/Local"))
		nodePort := gateway().Spec.Ports[0].NodePort
		Expect(nodePort).NotTo(BeZero())
		By("leaving the Service alone once it is as desired")
		version := gateway().ResourceVersion
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.RateLimit.Requests = ptr.To[int32](101) })
		Eventually(func() string { return envOf(deployment(shop, resources.Gateway), "RATE_LIMIT_REQUESTS") }).WithTimeout(timeout).Should(Equal("101"))
		Consistently(func() string { return gateway().ResourceVersion }).WithTimeout(2 * time.Second).Should(Equal(version))
		Expect(gateway().Spec.Ports[0].NodePort).To(Equal(nodePort))

		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Service.Type = corev1.ServiceTypeClusterIP })
		Eventually(typeAndPolicy).WithTimeout(timeout).Should(Equal("ClusterIP/"))
	})

	It("keeps the credentials it generated once", func() {
		shop := minimalShop(takeNamespace(), "creds")
		createShopAndWait(shop)
		mongo := secretData(shop, "creds-mongodb-credentials")
		rabbit := secretData(shop, "creds-rabbitmq-credentials")
		Expect(mongo[resources.PasswordKey]).NotTo(BeEmpty())

		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Services.User.Replicas = ptr.To[int32](2) })
		Eventually(func() int32 { return *deployment(shop, resources.User).Spec.Replicas }).WithTimeout(timeout).Should(BeEquivalentTo(2))
		conn := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "creds-connections"}}
		Expect(k8sClient.Delete(ctx, conn)).To(Succeed())
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())

		Expect(secretData(shop, "creds-mongodb-credentials")).To(Equal(mongo))
		Expect(secretData(shop, "creds-rabbitmq-credentials")).To(Equal(rabbit))
		Expect(string(secretData(shop, "creds-connections")[resources.MongoDBURIKey(resources.Order)])).
			To(ContainSubstring(":" + string(mongo[resources.PasswordKey]) + "@creds-mongodb:27017/orders"))

		By("refusing an edit, which the store would never see")
		stored := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "creds-rabbitmq-credentials"}, stored)).To(Succeed())
		Expect(stored.Immutable).To(HaveValue(BeTrue()))
		stored.Data[resources.PasswordKey] = []byte("changed")
		err := k8sClient.Update(ctx, stored)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "update: %v", err)

		By("making deleted credentials again with those the services were given")
		checksums := map[string]string{}
		for _, c := range []string{resources.MongoDB, resources.RabbitMQ, resources.Order} {
			checksums[c] = podTemplate(shop, c).Annotations[resources.ChecksumAnnotation]
		}
		for _, name := range []string{"creds-mongodb-credentials", "creds-rabbitmq-credentials"} {
			Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: name}})).To(Succeed())
		}
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())
		Expect(secretData(shop, "creds-mongodb-credentials")).To(Equal(mongo))
		Expect(secretData(shop, "creds-rabbitmq-credentials")).To(Equal(rabbit))
		for c, sum := range checksums {
			Expect(podTemplate(shop, c).Annotations[resources.ChecksumAnnotation]).To(Equal(sum), "%s rolled", c)
		}
		Eventually(func() []string { return eventReasons(shop) }).WithTimeout(timeout).Should(ContainElement("CredentialsRestored"))
		Expect(eventReasons(shop)).NotTo(ContainElement("CredentialsLost"))
	})

	DescribeTable("replaces the Deployment an earlier version made for a one-process component once its pods are gone",
		func(orphaned bool) {
			shop := minimalShop(unwatchedNamespace, fmt.Sprintf("moved-%v", orphaned))
			r, _, reconcileShop := drivenByHand(shop)
			_, err := reconcileShop()
			Expect(err).NotTo(HaveOccurred())

			By("putting a Deployment, as an earlier version made, in the place of the product StatefulSet")
			set := resources.EmptyWorkload(shop, resources.Product).(*appsv1.StatefulSet)
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(set), set)).To(Succeed())
			Expect(k8sClient.Delete(ctx, set)).To(Succeed())
			owners := set.OwnerReferences
			if orphaned {
				owners = nil // as a Shop deleted with --cascade=orphan leaves it
			}
			old := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Namespace: set.Namespace, Name: set.Name, Labels: set.Labels, OwnerReferences: owners},
				Spec: appsv1.DeploymentSpec{
					Replicas: ptr.To[int32](1), Selector: set.Spec.Selector, Template: set.Spec.Template,
					Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
				},
			}
			Expect(k8sClient.Create(ctx, old)).To(Succeed())

			By("deleting it in the foreground, and making nothing in its place while it is there")
			events := r.Recorder.(*countingRecorder)
			events.reasons = nil
			for range 2 {
				_, err = reconcileShop()
				Expect(err).NotTo(HaveOccurred())
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(old), old)).To(Succeed())
				Expect(old.DeletionTimestamp).NotTo(BeNil())
				Expect(old.Finalizers).To(ContainElement(metav1.FinalizerDeleteDependents))
				Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(set), &appsv1.StatefulSet{}))).To(BeTrue())
			}
			Expect(events.reasons).To(Equal([]string{"Replacing"}), "one deletion, nothing created")
			Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("True/RollingOut"))

			By("making the StatefulSet once the garbage collector has removed the Deployment after its pods")
			old.Finalizers = nil
			Expect(k8sClient.Update(ctx, old)).To(Succeed())
			Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(old), old)) }).Should(BeTrue())
			_, err = reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(missingChildren(shop)).To(BeEmpty())
			Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(old), &appsv1.Deployment{}))).To(BeTrue())
		},
		Entry("owned by the Shop", false),
		Entry("orphaned, with the Shop's labels", true),
	)

	DescribeTable("reports a workload whose pod stays unready past its deadline as stalled, and looks again at the deadline",
		func(component string) {
			shop := minimalShop(unwatchedNamespace, "stuck-"+component)
			r, _, reconcileShop := drivenByHand(shop)
			_, err := reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			markAvailable(k8sClient, shop)

			By("a pod that crashes long after its rollout, as the kubelet would report it")
			w := resources.EmptyWorkload(shop, component)
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w)).To(Succeed())
			template := podTemplate(shop, component)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: w.GetName() + "-0", Labels: template.Labels},
				Spec:       template.Spec,
			}
			Expect(k8sClient.Create(ctx, pod)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, pod))).To(Succeed()) })
			pod.Status = corev1.PodStatus{
				Phase:      corev1.PodRunning,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: component, Image: "x", ImageID: "x", RestartCount: 5, State: corev1.ContainerState{
					Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 2m40s restarting failed container"},
				}}},
			}
			Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
			// What the workload's controller then reports: its rollout long complete (a
			// Deployment's progress deadline no longer counts), no pod ready.
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w)).To(Succeed())
				switch w := w.(type) {
				case *appsv1.StatefulSet:
					w.Status.ReadyReplicas, w.Status.AvailableReplicas = 0, 0
				case *appsv1.Deployment:
					w.Status.ReadyReplicas, w.Status.AvailableReplicas, w.Status.UnavailableReplicas = 0, 0, 1
				}
				return k8sClient.Status().Update(ctx, w)
			})).To(Succeed())

			By("within its deadline: rolling out, and a reconcile due when the deadline comes")
			r.PodReadyDeadline = time.Hour
			result, err := reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(result.RequeueAfter).To(BeNumerically("~", time.Hour, time.Minute))
			Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("True/RollingOut"))
			Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))

			By("past it: Degraded, saying which pod and why")
			r.PodReadyDeadline = time.Nanosecond
			_, err = reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("True/RolloutStalled"))
			Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).To(Equal(
				fmt.Sprintf("%s: pod %s not ready for 1ns: container %s keeps restarting", component, pod.Name, component)))

			By("recovering once the workload runs its pod")
			markAvailable(k8sClient, shop)
			result, err = reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(result.RequeueAfter).To(BeZero())
			Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
			Expect(conditionOf(shop, ConditionReady)()).To(Equal("True/Available"))
		},
		Entry("a StatefulSet's (product)", resources.Product),
		Entry("a Deployment's (user)", resources.User),
	)

	It("reports a StatefulSet that has failed to make its pod past the deadline as stalled", func() {
		shop := minimalShop(unwatchedNamespace, "nopod")
		r, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		set := resources.EmptyWorkload(shop, resources.Product).(*appsv1.StatefulSet)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(set), set)).To(Succeed())

		By("the StatefulSet controller's FailedCreate events, failing for an hour")
		failed := &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: set.Name + ".failed"},
			InvolvedObject: corev1.ObjectReference{
				Kind: "StatefulSet", APIVersion: "apps/v1", Namespace: set.Namespace, Name: set.Name, UID: set.UID,
			},
			Reason: "FailedCreate", Type: corev1.EventTypeWarning, Count: 30,
			Message:        `create Pod nopod-product-0 in StatefulSet nopod-product failed error: pods "nopod-product-0" is forbidden: exceeded quota`,
			FirstTimestamp: metav1.NewTime(time.Now().Add(-time.Hour)), LastTimestamp: metav1.Now(),
			Source: corev1.EventSource{Component: "statefulset-controller"},
		}
		Expect(k8sClient.Create(ctx, failed)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, failed))).To(Succeed()) })

		expectStalledForAnHour(shop, r, reconcileShop,
			"product: StatefulSet nopod-product has failed to make its pod for 10m0s (kubectl describe statefulset nopod-product)")
	})

	It("reports a Deployment that has failed to make its pods past the deadline as stalled", func() {
		shop := minimalShop(unwatchedNamespace, "scaleup")
		r, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		markAvailable(k8sClient, shop)
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Replicas = ptr.To[int32](3) })
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())

		By("the Deployment controller's status of a scale-up whose third pod a quota refuses, for an hour")
		// One ReplicaSet with every pod of it updated: the Deployment counts as complete, and
		// its progress deadline never runs out; the refusal is in ReplicaFailure alone.
		long := metav1.NewTime(time.Now().Add(-time.Hour))
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := deployment(shop, resources.Gateway)
			d.Status = appsv1.DeploymentStatus{
				ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UnavailableReplicas: 1,
				Conditions: []appsv1.DeploymentCondition{
					{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: long, LastTransitionTime: long},
					{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: long, LastTransitionTime: long},
					{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", LastUpdateTime: long, LastTransitionTime: long,
						Message: `pods "scaleup-gateway-5d8f-x" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2`},
				},
			}
			return k8sClient.Status().Update(ctx, d)
		})).To(Succeed())
		expectStalledForAnHour(shop, r, reconcileShop,
			"gateway: Deployment scaleup-gateway has failed to make its pods for 10m0s (kubectl describe deployment scaleup-gateway)")
	})

	It("says when the credentials a store was set up with are lost for good", func() {
		shop := minimalShop(unwatchedNamespace, "lost")
		r, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		lose := func(store string) {
			before := secretData(shop, "lost-"+store+"-credentials")
			for _, name := range []string{"lost-connections", "lost-" + store + "-credentials"} {
				Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: name}})).To(Succeed())
			}
			_, err = reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(missingChildren(shop)).To(BeEmpty())
			Expect(secretData(shop, "lost-"+store+"-credentials")[resources.PasswordKey]).NotTo(Equal(before[resources.PasswordKey]))
			Expect(r.Recorder.(*countingRecorder).reasons).NotTo(ContainElement("CredentialsRestored"))
		}

		By("the broker's: it takes its default user's new password from its definitions at its next boot")
		lose(resources.RabbitMQ)
		Expect(r.Recorder.(*countingRecorder).reasons).NotTo(ContainElement("CredentialsLost"))
		creds := secretData(shop, "lost-rabbitmq-credentials")
		Expect(string(secretData(shop, "lost-rabbitmq-config")[resources.RabbitMQDefinitionsKey])).To(ContainSubstring(
			resources.RabbitMQPasswordHash(string(creds[resources.UsernameKey]), string(creds[resources.PasswordKey]))))

		By("MongoDB's: it keeps the users of its first start")
		lose(resources.MongoDB)
		Expect(r.Recorder.(*countingRecorder).reasons).To(ContainElement("CredentialsLost"))
	})

	It("keeps the password of credentials that lost their label, out of the cache's sight", func() {
		shop := minimalShop(takeNamespace(), "unlabelled")
		createShopAndWait(shop)
		name := types.NamespacedName{Namespace: shop.Namespace, Name: "unlabelled-mongodb-credentials"}
		before := secretData(shop, name.Name)
		connBefore := secretData(shop, "unlabelled-connections")

		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s := &corev1.Secret{}
			Expect(k8sClient.Get(ctx, name, s)).To(Succeed())
			delete(s.Labels, resources.LabelShop)
			return k8sClient.Update(ctx, s)
		})).To(Succeed())
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Replicas = ptr.To[int32](3) })
		Eventually(func() map[string]string {
			s := &corev1.Secret{}
			Expect(k8sClient.Get(ctx, name, s)).To(Succeed())
			return s.Labels
		}).WithTimeout(timeout).Should(HaveKeyWithValue(resources.LabelShop, shop.Name))
		Expect(secretData(shop, name.Name)).To(Equal(before))
		Expect(secretData(shop, "unlabelled-connections")).To(Equal(connBefore))
	})

	It("keeps the password when its cache has not yet seen the credentials it made", func() {
		shop := minimalShop(unwatchedNamespace, "lagging")
		r, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		before := secretData(shop, "lagging-mongodb-credentials")

		By("reconciling through a cache that misses every Secret")
		cached := r.Client.(client.WithWatch)
		r.Client = interceptor.NewClient(cached, interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Secret); ok {
					return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
				}
				return c.Get(ctx, key, obj, opts...)
			},
		})
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(secretData(shop, "lagging-mongodb-credentials")).To(Equal(before))
	})

	It("takes back children that lost their owner: a Shop made again over what --cascade=orphan left", func() {
		shop := minimalShop(takeNamespace(), "orphans")
		createShopAndWait(shop)
		password := secretData(shop, resources.CredentialsSecretName(shop, resources.MongoDB))[resources.PasswordKey]
		Expect(k8sClient.Delete(ctx, shop)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), &shopv1.Shop{}))
		}).
			WithTimeout(timeout).Should(BeTrue())
		orphanChildren(shop)
		foreign := &corev1.Service{ // no owner, but not labelled as the Shop's: left alone
			ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, Name: "orphans-other", Labels: map[string]string{"app": "other"}},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())

		again := minimalShop(shop.Namespace, shop.Name)
		Expect(k8sClient.Create(ctx, again)).To(Succeed())
		Eventually(func() []string {
			var notOurs []string
			for _, o := range expectedChildren(again) {
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
				if !metav1.IsControlledBy(o, getShop(again)) {
					notOurs = append(notOurs, fmt.Sprintf("%T %s", o, o.GetName()))
				}
			}
			return notOurs
		}).WithTimeout(timeout).Should(BeEmpty())
		Expect(conditionOf(again, ConditionDegraded)()).NotTo(Equal("True/ChildConflict"))
		Expect(secretData(again, resources.CredentialsSecretName(again, resources.MongoDB))[resources.PasswordKey]).
			To(Equal(password), "the store keeps the users of its first start: the same password")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
		Expect(foreign.OwnerReferences).To(BeEmpty())
	})

	It("takes back no child of a Shop deleted with --cascade=orphan during a reconcile that read it before", func() {
		shop := minimalShop(unwatchedNamespace, "orphaning")
		DeferCleanup(func() { // after drivenByHand's: the garbage collector's last step, the Shop goes
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				gone := getShop(shop)
				gone.Finalizers = nil
				return k8sClient.Update(ctx, gone)
			})).To(Succeed())
		})
		r, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(missingChildren(shop)).To(BeEmpty())
		uid := getShop(shop).UID

		By("deleting the Shop, keeping its children, once the reconcile has read it")
		var once sync.Once
		r.Client = interceptor.NewClient(r.Client.(client.WithWatch), interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*appsv1.StatefulSet); ok {
					once.Do(func() {
						Expect(k8sClient.Delete(ctx, getShop(shop), client.PropagationPolicy(metav1.DeletePropagationOrphan))).To(Succeed())
						orphanChildren(shop)
					})
				}
				return c.Get(ctx, key, obj, opts...)
			},
		})
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(getShop(shop).DeletionTimestamp).NotTo(BeNil())
		var owned []string
		for _, o := range expectedChildren(shop) {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
			if slices.ContainsFunc(o.GetOwnerReferences(), func(ref metav1.OwnerReference) bool { return ref.UID == uid }) {
				owned = append(owned, fmt.Sprintf("%T %s", o, o.GetName()))
			}
		}
		Expect(owned).To(BeEmpty(), "children taken back by a Shop being deleted: the garbage collector deletes them with it")
	})

	It("says in the status why its writes keep failing, for a new Shop and a changed one", func() {
		shop := minimalShop(unwatchedNamespace, "failing")
		r, _, reconcileShop := drivenByHand(shop)
		direct := r.Client.(client.WithWatch)
		// A validating webhook on Deployments that is down, with failurePolicy Fail.
		webhookDown := apierrors.NewInternalError(errors.New(`failed calling webhook "deployments.policy.example.com": connection refused`))
		r.Client = interceptor.NewClient(direct, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*appsv1.Deployment); ok {
					return webhookDown
				}
				return c.Create(ctx, obj, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if _, ok := obj.(*appsv1.Deployment); ok {
					return webhookDown
				}
				return c.Update(ctx, obj, opts...)
			},
		})
		failed := func(generation int64) {
			GinkgoHelper()
			_, err := reconcileShop()
			Expect(err).To(MatchError(ContainSubstring("failed calling webhook")))
			Expect(conditionOf(shop, ConditionDegraded)()).NotTo(Equal("True/ReconcileFailed"), "a first failure alone is said")
			_, err = reconcileShop() // the retry
			Expect(err).To(MatchError(ContainSubstring("failed calling webhook")))
			got := getShop(shop)
			Expect(got.Status.ObservedGeneration).To(Equal(generation))
			for _, typ := range []string{ConditionReady, ConditionDegraded} {
				c := meta.FindStatusCondition(got.Status.Conditions, typ)
				Expect(c).NotTo(BeNil(), typ)
				Expect(c.Reason).To(Equal(ReasonReconcileFailed), typ)
				Expect(c.Message).To(ContainSubstring(`failed calling webhook "deployments.policy.example.com"`), typ)
				Expect(c.ObservedGeneration).To(Equal(generation), typ)
			}
			Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ReconcileFailed"))
		}
		failed(1)

		By("letting the writes through, and the Shop comes up")
		r.Client = direct
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		markAvailable(k8sClient, shop)
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("True/Available"))

		By("changing it while the webhook is down again")
		r.Client = interceptor.NewClient(direct, interceptor.Funcs{
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if _, ok := obj.(*appsv1.Deployment); ok {
					return webhookDown
				}
				return c.Update(ctx, obj, opts...)
			},
		})
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Replicas = ptr.To[int32](3) })
		failed(2)
		Expect(getShop(shop).Status.Components).To(HaveKey(resources.Gateway), "the components as last read")
	})

	DescribeTable("takes back no claim made for other storage than a Shop made again over it asks",
		func(first, again func(*shopv1.Shop), unlabelled bool, says string) {
			shop := minimalShop(takeNamespace(), "remade")
			first(shop)
			createShopAndWait(shop)
			store := statefulSet(shop, resources.MongoDB)
			connections := secretData(shop, "remade-connections")
			Expect(k8sClient.Delete(ctx, shop)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), &shopv1.Shop{}))
			}).WithTimeout(timeout).Should(BeTrue())
			orphanChildren(shop)
			claim := &corev1.PersistentVolumeClaim{}
			claimKey := types.NamespacedName{Namespace: shop.Namespace, Name: "remade-mongodb"}
			if unlabelled { // as an earlier version made it
				Expect(k8sClient.Get(ctx, claimKey, claim)).To(Succeed())
				delete(claim.Labels, resources.LabelEngine)
				Expect(k8sClient.Update(ctx, claim)).To(Succeed())
			}

			remade := minimalShop(shop.Namespace, shop.Name)
			again(remade)
			Expect(k8sClient.Create(ctx, remade)).To(Succeed())
			if says == "" {
				Eventually(func() []metav1.OwnerReference {
					Expect(k8sClient.Get(ctx, claimKey, claim)).To(Succeed())
					return claim.OwnerReferences
				}).WithTimeout(timeout).ShouldNot(BeEmpty(), "the claim was not taken back")
				Expect(claim.Labels).To(HaveKeyWithValue(resources.LabelEngine, string(resources.MongoDBEngine(remade))))
				return
			}
			Eventually(conditionOf(remade, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildConflict"))
			Expect(meta.FindStatusCondition(getShop(remade).Status.Conditions, ConditionDegraded).Message).To(ContainSubstring(says))
			// Nothing that runs on the store, or reads its URI, is changed meanwhile.
			Expect(secretData(remade, "remade-connections")).To(Equal(connections), "the connections Secret was rewritten")
			Expect(deployment(shop, resources.User).DeletionTimestamp).To(BeNil(), "the user service's workload is being replaced")
			Expect(k8sClient.Get(ctx, claimKey, claim)).To(Succeed())
			Expect(claim.OwnerReferences).To(BeEmpty(), "the claim was taken back")
			if unlabelled {
				Expect(claim.Labels).NotTo(HaveKey(resources.LabelEngine), "the claim was labelled with an engine not checked")
			}
			Expect(statefulSet(shop, resources.MongoDB).Spec).To(Equal(store.Spec), "the store on the claim was changed")
		},
		Entry("another storage class",
			func(s *shopv1.Shop) { s.Spec.MongoDB.Storage = &shopv1.StorageSpec{StorageClassName: ptr.To("slow")} },
			func(s *shopv1.Shop) { s.Spec.MongoDB.Storage = &shopv1.StorageSpec{StorageClassName: ptr.To("fast")} }, false,
			`PersistentVolumeClaim remade-mongodb is of storage class "slow", where the Shop asks "fast"`),
		Entry("a class, on a claim made with none",
			func(*shopv1.Shop) {},
			func(s *shopv1.Shop) { s.Spec.MongoDB.Storage = &shopv1.StorageSpec{StorageClassName: ptr.To("fast")} }, false,
			`where the Shop asks "fast", and a claim's class cannot change: leave storageClassName unset`),
		Entry("another engine",
			func(*shopv1.Shop) {},
			func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = shopv1.EngineFerretDB }, false,
			"PersistentVolumeClaim remade-mongodb holds the data of MongoDB, where the Shop asks for FerretDB"),
		Entry("another engine, on a claim made without the engine's label",
			func(*shopv1.Shop) {},
			func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = shopv1.EngineFerretDB }, true,
			"PersistentVolumeClaim remade-mongodb holds the data of MongoDB, where the Shop asks for FerretDB"),
		Entry("the same engine, on a claim made without the engine's label: taken back",
			func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = shopv1.EngineFerretDB },
			func(s *shopv1.Shop) { s.Spec.MongoDB.Engine = shopv1.EngineFerretDB }, true, ""),
	)

	It("takes back no claim made without the engine's label when nothing left says whose data it holds", func() {
		shop := minimalShop(takeNamespace(), "unknown")
		createShopAndWait(shop)
		Expect(k8sClient.Delete(ctx, shop)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), &shopv1.Shop{}))
		}).WithTimeout(timeout).Should(BeTrue())
		orphanChildren(shop)
		Expect(k8sClient.Delete(ctx, statefulSet(shop, resources.MongoDB))).To(Succeed())
		claim := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: "unknown-mongodb"}, claim)).To(Succeed())
		delete(claim.Labels, resources.LabelEngine)
		Expect(k8sClient.Update(ctx, claim)).To(Succeed())

		Expect(k8sClient.Create(ctx, minimalShop(shop.Namespace, shop.Name))).To(Succeed())
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildConflict"))
		Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).
			To(ContainSubstring("label it commerce.shopkeeper.dev/engine=MongoDB or commerce.shopkeeper.dev/engine=FerretDB to take it back"))
	})

	It("builds nothing from credentials it does not own, so a foreign Secret causes no rollout loop", func() {
		ns := takeNamespace()
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-mongodb-credentials"},
			Data:       map[string][]byte{resources.UsernameKey: []byte("x"), resources.PasswordKey: []byte("y")},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		shop := minimalShop(ns, "taken")
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildConflict"))
		Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).
			To(ContainSubstring("Secret taken-mongodb-credentials already exists and does not belong to this Shop"))

		Consistently(func() []string { return missingChildren(shop) }).WithTimeout(3 * time.Second).
			Should(ContainElements("*v1.StatefulSet taken-mongodb", "*v1.Secret taken-connections", "*v1.Deployment taken-user"))
		Expect(secretData(shop, foreign.Name)).To(Equal(foreign.Data), "the foreign Secret is left alone")
	})

	It("configures the broker through files made from its credentials, and waits for credentials it cannot write", func() {
		shop := minimalShop(unwatchedNamespace, "files")
		_, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		creds := secretData(shop, "files-rabbitmq-credentials")
		conf := string(secretData(shop, "files-rabbitmq-config")[resources.RabbitMQConfKey])
		Expect(conf).To(ContainSubstring("definitions.local.path = "))
		Expect(string(secretData(shop, "files-rabbitmq-config")[resources.RabbitMQDefinitionsKey])).To(ContainSubstring(
			resources.RabbitMQPasswordHash(string(creds[resources.UsernameKey]), string(creds[resources.PasswordKey]))))
		rabbit := podTemplate(shop, resources.RabbitMQ)
		Expect(rabbit.Spec.Containers[0].Env).To(BeEmpty())
		Expect(rabbit.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.Secret.SecretName", "files-rabbitmq-config")))
		checksumBefore := rabbit.Annotations[resources.ChecksumAnnotation]
		markAvailable(k8sClient, shop)
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("True/Available"))

		// The credentials Secret is immutable; one that is not, as an earlier version of
		// the controller made them, may have been edited: it is replaced here by such a
		// Secret holding password.
		replaceCredentials := func(password string) {
			key := types.NamespacedName{Namespace: shop.Namespace, Name: "files-rabbitmq-credentials"}
			old := &corev1.Secret{}
			Expect(k8sClient.Get(ctx, key, old)).To(Succeed())
			Expect(k8sClient.Delete(ctx, old)).To(Succeed())
			Expect(k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: old.Labels, OwnerReferences: old.OwnerReferences},
				Data:       map[string][]byte{resources.UsernameKey: old.Data[resources.UsernameKey], resources.PasswordKey: []byte(password)},
			})).To(Succeed())
			_, err := reconcileShop()
			Expect(err).NotTo(HaveOccurred())
		}

		By("refusing a password rabbitmq.conf cannot carry, without showing it")
		replaceCredentials("before#after")
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("True/CredentialsInvalid"))
		degraded := meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded)
		Expect(degraded.Message).To(ContainSubstring("password of Secret files-rabbitmq-credentials holds '#'"))
		Expect(degraded.Message).To(ContainSubstring("set it back to the broker's password"))
		Expect(degraded.Message).NotTo(ContainSubstring("before#after"))
		key := types.NamespacedName{Namespace: shop.Namespace, Name: "files-rabbitmq-credentials"}
		stored := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, key, stored)).To(Succeed())
		Expect(stored.Immutable).To(BeNil(), "left editable, to be set right")
		Expect(string(secretData(shop, "files-rabbitmq-config")[resources.RabbitMQConfKey])).To(Equal(conf), "the broker's files are left as they were")
		Expect(string(secretData(shop, "files-rabbitmq-config")[resources.RabbitMQDefinitionsKey])).To(ContainSubstring(
			resources.RabbitMQPasswordHash(string(creds[resources.UsernameKey]), string(creds[resources.PasswordKey]))), "the broker's files are left as they were")
		Expect(podTemplate(shop, resources.RabbitMQ).Annotations[resources.ChecksumAnnotation]).To(Equal(checksumBefore))

		By("rolling the broker when its files change, once the password is set right in place")
		stored.Data[resources.PasswordKey] = []byte("after")
		Expect(k8sClient.Update(ctx, stored)).To(Succeed())
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(string(secretData(shop, "files-rabbitmq-config")[resources.RabbitMQDefinitionsKey])).To(ContainSubstring(
			resources.RabbitMQPasswordHash(string(creds[resources.UsernameKey]), "after")))
		Expect(podTemplate(shop, resources.RabbitMQ).Annotations[resources.ChecksumAnnotation]).NotTo(Equal(checksumBefore))
		Expect(k8sClient.Get(ctx, key, stored)).To(Succeed())
		Expect(stored.Immutable).To(HaveValue(BeTrue()), "the Secret is made immutable")
	})

	It("gives each service that uses the in-cluster broker a user of its own, made once and kept", func() {
		shop := minimalShop(unwatchedNamespace, "amqpusers")
		_, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		users := secretData(shop, "amqpusers-rabbitmq-users")
		Expect(users).To(HaveLen(2))
		creds := secretData(shop, "amqpusers-rabbitmq-credentials")
		conn := secretData(shop, "amqpusers-connections")
		definitions := string(secretData(shop, "amqpusers-rabbitmq-config")[resources.RabbitMQDefinitionsKey])
		Expect(definitions).To(ContainSubstring(resources.RabbitMQPasswordHash(string(creds[resources.UsernameKey]), string(creds[resources.PasswordKey]))))
		for _, service := range []string{resources.Order, resources.Payment} {
			password := string(users[resources.RabbitMQPasswordKey(service)])
			Expect(password).NotTo(BeEmpty())
			Expect(definitions).To(ContainSubstring(resources.RabbitMQPasswordHash(service, password)))
			Expect(string(conn[resources.RabbitMQServiceURLKey(service)])).To(Equal(
				"amqp://" + service + ":" + password + "@amqpusers-rabbitmq:5672/shop"))
			Expect(podTemplate(shop, service).Spec.Containers[0].Env).To(ContainElement(And(
				HaveField("Name", "RABBITMQ_URL"), HaveField("ValueFrom.SecretKeyRef.Name", "amqpusers-connections"),
				HaveField("ValueFrom.SecretKeyRef.Key", service+"-rabbitmq-url"))))
		}
		// The default user's URL stays, read by no service: a lost credentials Secret is made
		// again from it.
		Expect(string(conn[resources.RabbitMQURLKey])).To(HavePrefix("amqp://" + string(creds[resources.UsernameKey]) + ":"))
		config := secretData(shop, "amqpusers-rabbitmq-config")
		brokerSum := podTemplate(shop, resources.RabbitMQ).Annotations[resources.ChecksumAnnotation]

		By("rendering the same files at the next reconcile, so the broker does not restart")
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(secretData(shop, "amqpusers-rabbitmq-config")).To(Equal(config))
		Expect(secretData(shop, "amqpusers-rabbitmq-users")).To(Equal(users))
		Expect(podTemplate(shop, resources.RabbitMQ).Annotations[resources.ChecksumAnnotation]).To(Equal(brokerSum))

		By("adding a missing password, and keeping the others and the credentials as they are")
		key := types.NamespacedName{Namespace: shop.Namespace, Name: "amqpusers-rabbitmq-users"}
		stored := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, key, stored)).To(Succeed())
		delete(stored.Data, resources.RabbitMQPasswordKey(resources.Payment))
		Expect(k8sClient.Update(ctx, stored)).To(Succeed())
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		again := secretData(shop, "amqpusers-rabbitmq-users")
		Expect(again[resources.RabbitMQPasswordKey(resources.Order)]).To(Equal(users[resources.RabbitMQPasswordKey(resources.Order)]))
		Expect(again[resources.RabbitMQPasswordKey(resources.Payment)]).NotTo(BeEmpty())
		Expect(again[resources.RabbitMQPasswordKey(resources.Payment)]).NotTo(Equal(users[resources.RabbitMQPasswordKey(resources.Payment)]))
		Expect(secretData(shop, "amqpusers-rabbitmq-credentials")).To(Equal(creds))

		By("making the Secret for a Shop that has none, as one made before the service users has not")
		Expect(k8sClient.Delete(ctx, stored)).To(Succeed())
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(secretData(shop, "amqpusers-rabbitmq-users")).To(HaveLen(2))
		Expect(secretData(shop, "amqpusers-rabbitmq-credentials")).To(Equal(creds))
		Expect(string(secretData(shop, "amqpusers-rabbitmq-config")[resources.RabbitMQDefinitionsKey])).To(ContainSubstring(
			resources.RabbitMQPasswordHash(string(creds[resources.UsernameKey]), string(creds[resources.PasswordKey]))))
	})

	It("gives the services an external broker's URL as it is, and makes no broker users", func() {
		ns := takeNamespace()
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "broker", Labels: map[string]string{resources.LabelShop: "extamqp"}},
			Data:       map[string][]byte{"url": []byte("amqp://u:p@broker.example:5672/")},
		})).To(Succeed())
		shop := minimalShop(ns, "extamqp")
		shop.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: "broker", Key: "url"}}
		createShopAndWait(shop)
		conn := secretData(shop, "extamqp-connections")
		Expect(string(conn[resources.RabbitMQURLKey])).To(Equal("amqp://u:p@broker.example:5672/"))
		Expect(conn).NotTo(HaveKey(resources.RabbitMQServiceURLKey(resources.Order)))
		for _, service := range []string{resources.Order, resources.Payment} {
			Expect(podTemplate(shop, service).Spec.Containers[0].Env).To(ContainElement(And(
				HaveField("Name", "RABBITMQ_URL"), HaveField("ValueFrom.SecretKeyRef.Key", resources.RabbitMQURLKey))))
		}
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "extamqp-rabbitmq-users"}, &corev1.Secret{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "users Secret: %v", err)
	})

	It("makes pods the restricted Pod Security Standard admits", func() {
		restricted := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:   "restricted-pods",
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
		}}
		Expect(k8sClient.Create(ctx, restricted)).To(Succeed())
		for _, engine := range []shopv1.MongoDBEngine{shopv1.EngineMongoDB, shopv1.EngineFerretDB} {
			shop := minimalShop(takeNamespace(), "psa")
			shop.Spec.MongoDB.Engine = engine
			createShopAndWait(shop)
			for _, c := range append(resources.InClusterStores(shop), resources.Apps...) {
				// The template as a pod of its own, which the namespace's admission judges.
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: restricted.Name, Name: strings.ToLower(string(engine)) + "-" + c},
					Spec:       podTemplate(shop, c).Spec,
				}
				Expect(k8sClient.Create(ctx, pod)).To(Succeed(), "%s with engine %s", c, engine)
			}
		}
	})

	It("runs FerretDB from its own image with no credentials", func() {
		shop := minimalShop(takeNamespace(), "ferret")
		shop.Spec.MongoDB.Engine = shopv1.EngineFerretDB
		createShopAndWait(shop)
		c := podTemplate(shop, resources.MongoDB).Spec.Containers[0]
		Expect(c.Image).To(Equal(shopv1.DefaultFerretDBImage))
		Expect(c.Command).To(BeEmpty())
		Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "FERRETDB_HANDLER", Value: "sqlite"}))
		Expect(string(secretData(shop, "ferret-connections")[resources.MongoDBURIKey(resources.Order)])).To(Equal("mongodb://ferret-mongodb:27017/orders"))
	})

	It("looks again at a name taken by someone else, and takes it once it is free", func() {
		foreign := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: unwatchedNamespace, Name: "freed-user"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		shop := minimalShop(unwatchedNamespace, "freed")
		_, _, reconcileShop := drivenByHand(shop)

		res, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("True/ChildConflict"))
		Expect(res.RequeueAfter).To(Equal(ConflictRetry), "the deleted object brings no event: the retry is the only way back")

		Expect(k8sClient.Delete(ctx, foreign)).To(Succeed())
		res, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(res.RequeueAfter).To(BeZero())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		// Once in a CI run a child was still missing here, cause not found; a reconcile that
		// does not make them all would show as this never settling.
		Eventually(func() []string {
			_, _ = reconcileShop()
			return missingChildren(shop)
		}).WithTimeout(timeout).Should(BeEmpty())
		svc := &corev1.Service{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), svc)).To(Succeed())
		Expect(metav1.IsControlledBy(svc, getShop(shop))).To(BeTrue())
	})

	It("retries an update that lost a race without a Warning Event", func() {
		shop := minimalShop(unwatchedNamespace, "raced")
		r, events, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Replicas = ptr.To[int32](3) })

		By("reconciling while another writer changes the gateway between read and write")
		direct := r.Client.(client.WithWatch)
		r.Client = interceptor.NewClient(direct, interceptor.Funcs{
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if _, ok := obj.(*appsv1.Deployment); ok {
					return apierrors.NewConflict(appsv1.Resource("deployments"), obj.GetName(), fmt.Errorf("the object has been modified"))
				}
				return c.Update(ctx, obj, opts...)
			},
		})
		events.Store(0)
		_, err = reconcileShop()
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "the conflict is returned, so the Shop is reconciled again: %v", err)
		Expect(events.Load()).To(BeZero())

		r.Client = direct
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(deployment(shop, resources.Gateway).Spec.Replicas).To(HaveValue(BeEquivalentTo(3)))
	})

	It("is not Ready at a new generation while its cache still holds a workload from before the change", func() {
		shop := minimalShop(unwatchedNamespace, "stale-cache")
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, shop)).To(Succeed()) })
		r, _, _ := countingReconciler()
		// The gateway Deployment as an informer's cache that has not yet seen the
		// reconcile's update serves it: the copy from before, every pod available.
		var stale atomic.Pointer[appsv1.Deployment]
		gatewayKey := types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, resources.Gateway)}
		r.Client = interceptor.NewClient(r.Client.(client.WithWatch), interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if d, ok := obj.(*appsv1.Deployment); ok && key == gatewayKey && stale.Load() != nil {
					stale.Load().DeepCopyInto(d)
					return nil
				}
				return c.Get(ctx, key, obj, opts...)
			},
		})
		req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(shop)}
		_, err := r.Reconcile(ctx, req)
		Expect(err).NotTo(HaveOccurred())
		markAvailable(k8sClient, shop)
		_, err = r.Reconcile(ctx, req)
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("True/Available"))

		stale.Store(deployment(shop, resources.Gateway))
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.RateLimit.Requests = ptr.To[int32](250) })
		_, err = r.Reconcile(ctx, req)
		Expect(err).NotTo(HaveOccurred())
		Expect(deployment(shop, resources.Gateway).Generation).To(BeNumerically(">", stale.Load().Generation), "the gateway was not updated")
		got := getShop(shop)
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ComponentsNotReady"))
	})

	It("writes nothing when a reconcile finds everything as desired", func() {
		By("driving a Shop in a namespace the manager does not watch, with a counting reconciler")
		shop := minimalShop(unwatchedNamespace, "quiet")
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		r, writes, events := countingReconciler()
		req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(shop)}

		_, err := r.Reconcile(ctx, req)
		Expect(err).NotTo(HaveOccurred())
		Expect(missingChildren(shop)).To(BeEmpty())
		// Every child created, the status patched: the counter sees writes.
		Expect(writes.Load()).To(BeNumerically(">=", int32(len(expectedChildren(shop))+1)))
		Expect(events.Load()).To(BeNumerically(">=", int32(len(expectedChildren(shop)))))

		markAvailable(k8sClient, shop)
		writes.Store(0)
		_, err = r.Reconcile(ctx, req)
		Expect(err).NotTo(HaveOccurred())
		Expect(writes.Load()).To(BeEquivalentTo(1), "the status moves to Ready: one patch")
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("True/Available"))

		writes.Store(0)
		events.Store(0)
		for range 3 {
			_, err = r.Reconcile(ctx, req)
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(writes.Load()).To(BeZero(), "a reconcile with nothing to change sent writes")
		Expect(events.Load()).To(BeZero(), "a reconcile with nothing to change recorded events")

		By("and so does a reconcile of a Shop the manager keeps")
		kept := minimalShop(takeNamespace(), "kept")
		createShopAndWait(kept)
		markAvailable(k8sClient, kept)
		Eventually(conditionOf(kept, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		writes.Store(0)
		events.Store(0)
		_, err = r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(kept)})
		Expect(err).NotTo(HaveOccurred())
		Expect(writes.Load()).To(BeZero())
		Expect(events.Load()).To(BeZero())
	})
})

// drivenByHand creates shop, in the namespace the manager does not watch, for a
// spec to reconcile by hand: it returns a countingReconciler, its Event counter and a
// function running one reconcile of shop with it (whose Client the spec may swap).
// expectStalledForAnHour checks a Shop with a workload that has failed to make a pod for an
// hour: with a deadline of 10 minutes the Shop is Degraded/RolloutStalled with message; with
// one of 2 hours it is not yet, still rolling out, and reconciled again when the deadline comes.
func expectStalledForAnHour(shop *shopv1.Shop, r *ShopReconciler, reconcileShop func() (reconcile.Result, error), message string) {
	GinkgoHelper()
	r.PodReadyDeadline = 10 * time.Minute
	_, err := reconcileShop()
	Expect(err).NotTo(HaveOccurred())
	Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("True/RolloutStalled"))
	Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).To(Equal(message))

	By("not before the deadline: looked at again when it comes")
	r.PodReadyDeadline = 2 * time.Hour
	result, err := reconcileShop()
	Expect(err).NotTo(HaveOccurred())
	Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
	Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("True/RollingOut"))
	Expect(result.RequeueAfter).To(BeNumerically("~", time.Hour, time.Minute))
}

func drivenByHand(shop *shopv1.Shop) (*ShopReconciler, *atomic.Int32, func() (reconcile.Result, error)) {
	ExpectWithOffset(1, shop.Namespace).To(Equal(unwatchedNamespace))
	ExpectWithOffset(1, k8sClient.Create(ctx, shop)).To(Succeed())
	DeferCleanup(func() { Expect(k8sClient.Delete(ctx, shop)).To(Succeed()) })
	r, _, events := countingReconciler()
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(shop)}
	return r, events, func() (reconcile.Result, error) { return r.Reconcile(ctx, req) }
}

// countingReconciler is a ShopReconciler that reads straight from the API server and
// counts every write it sends and every Event it records.
func countingReconciler() (*ShopReconciler, *atomic.Int32, *atomic.Int32) {
	var writes atomic.Int32
	direct, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	count := func() { writes.Add(1) }
	c := interceptor.NewClient(direct, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			count()
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			count()
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			count()
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			count()
			return c.Delete(ctx, obj, opts...)
		},
		DeleteAllOf: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteAllOfOption) error {
			count()
			return c.DeleteAllOf(ctx, obj, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			count()
			return c.Apply(ctx, obj, opts...)
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			count()
			return c.SubResource(sub).Create(ctx, obj, subObj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			count()
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			count()
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			count()
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		},
	})
	rec := &countingRecorder{}
	return &ShopReconciler{Client: c, APIReader: direct, Scheme: scheme, Recorder: rec}, &writes, &rec.n
}

// countingRecorder counts Events, and keeps their reasons, instead of sending them.
// Reconciles by hand run one at a time, so reasons needs no lock.
type countingRecorder struct {
	n       atomic.Int32
	reasons []string
}

func (r *countingRecorder) Eventf(_, _ runtime.Object, _, reason, _, _ string, _ ...any) {
	r.n.Add(1)
	r.reasons = append(r.reasons, reason)
}

var _ = Describe("A broker default user named as a service's user", func() {
	It("is set right by deleting its credentials Secret, as the Shop's message says", func() {
		shop := minimalShop(unwatchedNamespace, "collide")
		creds := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: unwatchedNamespace, Name: "collide-rabbitmq-credentials",
				Labels: map[string]string{resources.LabelShop: "collide", resources.LabelManagedBy: resources.ManagedBy}},
			Data: map[string][]byte{resources.UsernameKey: []byte(resources.Order), resources.PasswordKey: []byte("adminpw")},
		}
		Expect(k8sClient.Create(ctx, creds)).To(Succeed())
		_, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("True/CredentialsInvalid"))
		Expect(getShop(shop).Status.Conditions[0].Message).To(ContainSubstring("delete it"))
		Expect(k8sClient.Delete(ctx, creds)).To(Succeed())
		_, err = reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(string(secretData(shop, "collide-rabbitmq-credentials")[resources.UsernameKey])).NotTo(Equal(resources.Order))
		Expect(secretData(shop, "collide-rabbitmq-config")).To(HaveKey(resources.RabbitMQDefinitionsKey))
	})
})
