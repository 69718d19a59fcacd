package controllers

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// A cluster's mutating admission (a MutatingAdmissionPolicy, a webhook such as
// Kyverno's) that adds to the workloads' pod templates is the cluster's, not drift:
// the controller neither strips it nor writes the workloads at every reconcile.
var _ = Describe("A mutating admission policy on the workloads", func() {
	DescribeTable("is kept, and the workloads are not written again while the Shop is reconciled", func(operations ...admissionv1.OperationType) {
		// MutatingAdmissionPolicy is served as v1 by recent API servers only (not 1.32 or 1.33);
		// an older one (a run against the oldest Kubernetes supported) has none to test with.
		if _, err := k8sClient.RESTMapper().RESTMapping(admissionv1.SchemeGroupVersion.WithKind("MutatingAdmissionPolicy").GroupKind(), "v1"); meta.IsNoMatchError(err) {
			Skip("the API server serves no admissionregistration.k8s.io/v1 MutatingAdmissionPolicy")
		}
		ns := takeNamespace()
		const key, value = "example.com/admitted", "yes"
		policy := &admissionv1.MutatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "annotate-templates-" + ns},
			Spec: admissionv1.MutatingAdmissionPolicySpec{
				MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionv1.RuleWithOperations{
						Operations: operations,
						Rule: admissionv1.Rule{
							APIGroups: []string{"apps"}, APIVersions: []string{"v1"},
							Resources: []string{"deployments", "statefulsets"},
						},
					},
				}}},
				FailurePolicy:      ptr.To(admissionv1.Fail),
				ReinvocationPolicy: admissionv1.NeverReinvocationPolicy,
				Mutations: []admissionv1.Mutation{{
					PatchType: admissionv1.PatchTypeApplyConfiguration,
					ApplyConfiguration: &admissionv1.ApplyConfiguration{Expression: fmt.Sprintf(
						`Object{spec: Object.spec{template: Object.spec.template{metadata: Object.spec.template.metadata{annotations: {%q: %q}}}}}`,
						key, value)},
				}},
			},
		}
		Expect(k8sClient.Create(ctx, policy)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, policy))).To(Succeed()) })
		binding := &admissionv1.MutatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
			Spec: admissionv1.MutatingAdmissionPolicyBindingSpec{
				PolicyName: policy.Name,
				MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
					MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
			},
		}
		Expect(k8sClient.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, binding))).To(Succeed()) })

		// The policy is in force once a dry-run create in the namespace shows its mutation.
		Eventually(func() map[string]string { return dryRunTemplateAnnotations(ns) }).
			WithTimeout(timeout).Should(HaveKeyWithValue(key, value), "the policy is never in force")

		shop := minimalShop(ns, "admitted")
		createShopAndWait(shop)
		waitSettled(shop)
		components := append([]string{resources.MongoDB, resources.RabbitMQ}, resources.Apps...)
		for _, c := range components {
			Expect(podTemplate(shop, c).Annotations).To(HaveKeyWithValue(key, value), "the pod template of %s", c)
		}

		// An update the API server stores as a no-op changes no resourceVersion: count
		// the updates a reconciler sends to the workloads.
		r, _, _ := countingReconciler()
		var updates []string
		r.Client = interceptor.NewClient(r.Client.(client.WithWatch), interceptor.Funcs{
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				o := &client.UpdateOptions{}
				o.ApplyOptions(opts)
				if _, ok := obj.(*corev1.Service); !ok && len(o.DryRun) == 0 {
					updates = append(updates, kindOf(obj)+" "+obj.GetName())
				}
				return c.Update(ctx, obj, opts...)
			},
		})
		for range 3 {
			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(shop)})
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(updates).To(BeEmpty(), "a reconcile sent updates to the workloads")

		// The manager reconciles the Shop again and again: nothing is written to the workloads.
		before := workloadVersions(shop)
		deadline := time.Now().Add(5 * time.Second)
		for i := 0; time.Now().Before(deadline); i++ {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				s := &shopv1.Shop{}
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), s); err != nil {
					return err
				}
				s.Annotations = mapWithEntry(s.Annotations, "example.com/touched", fmt.Sprint(i))
				return k8sClient.Update(ctx, s)
			})).To(Succeed())
			time.Sleep(500 * time.Millisecond)
			Expect(workloadVersions(shop)).To(Equal(before), "a workload is written again")
		}
		for _, c := range components {
			Expect(podTemplate(shop, c).Annotations).To(HaveKeyWithValue(key, value), "the pod template of %s", c)
		}
	},
		Entry("on create and update", admissionv1.Create, admissionv1.Update),
		// Stripping the mutation would roll the pods again right after they were made.
		Entry("on create only", admissionv1.Create),
	)
})

// dryRunTemplateAnnotations is the pod template annotations of a Deployment in ns
// as a dry-run create returns it, or nil when the create fails.
func dryRunTemplateAnnotations(ns string) map[string]string {
	labels := map[string]string{"app": "probe"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admission-probe"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "probe"}}},
			},
		},
	}
	if err := k8sClient.Create(ctx, d, client.DryRunAll); err != nil {
		return nil
	}
	return d.Spec.Template.Annotations
}

// workloadVersions maps each workload of shop to its resourceVersion and generation.
func workloadVersions(shop *shopv1.Shop) map[string]string {
	versions := map[string]string{}
	for _, c := range append([]string{resources.MongoDB, resources.RabbitMQ}, resources.Apps...) {
		w := resources.EmptyWorkload(shop, c)
		ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w)).To(Succeed())
		versions[c] = fmt.Sprintf("%s/%d", w.GetResourceVersion(), w.GetGeneration())
	}
	return versions
}
