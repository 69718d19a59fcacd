package controllers

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	gomegatypes "github.com/onsi/gomega/types"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// A child the API server forbids (a quota, an admission policy, a volume that cannot grow)
// is the user's to mend: the Shop says so, the other children are made, and changes to
// the Shop still roll out.
var _ = Describe("A child the API server forbids", func() {
	It("is reported, and the other children are made (a ResourceQuota on LoadBalancers)", func() {
		ns := takeNamespace()
		quota := forbid(ns, "no-load-balancers", corev1.ResourceServicesLoadBalancers)

		shop := minimalShop(ns, "quota")
		shop.Spec.Gateway.Service.Type = corev1.ServiceTypeLoadBalancer
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		expectDegraded(shop, "ChildForbidden", And(ContainSubstring("Service quota-gateway"), ContainSubstring("exceeded quota: no-load-balancers")))
		// Everything but the forbidden Service, the gateway's PodDisruptionBudget and
		// NetworkPolicy included, which come after it.
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(ConsistOf(HaveSuffix("Service quota-gateway")))
		gateway := types.NamespacedName{Namespace: ns, Name: resources.Name(shop, resources.Gateway)}
		Expect(k8sClient.Get(ctx, gateway, &policyv1.PodDisruptionBudget{})).To(Succeed())
		Expect(k8sClient.Get(ctx, gateway, &networkingv1.NetworkPolicy{})).To(Succeed())
		Expect(requeueOf(shop)).To(Equal(ConflictRetry), "a quota raised brings no event: the retry is the only way back")
		// The rest is made and rolls out (envtest runs no Deployment controller, so it
		// never ends): that is progress, not a rollout blocked.
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("True/RollingOut"))

		Expect(k8sClient.Delete(ctx, quota)).To(Succeed())
		Expect(requeueOf(shop)).To(BeZero())
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
	})

	It("reports a problem that holds back pods before one with the gateway's Service, which no pod needs", func() {
		ns := takeNamespace()
		forbid(ns, "no-load-balancers", corev1.ResourceServicesLoadBalancers)
		foreign := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "both-gateway"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "someone-else"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "someone-else"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
				},
			},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		shop := minimalShop(ns, "both")
		shop.Spec.Gateway.Service.Type = corev1.ServiceTypeLoadBalancer
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		expectDegraded(shop, "ChildConflict", ContainSubstring("Deployment both-gateway already exists and does not belong to this Shop"))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"))
	})

	It("makes nothing from credentials it could not store", func() {
		ns := takeNamespace()
		forbid(ns, "no-secrets", corev1.ResourceSecrets)
		shop := minimalShop(ns, "nosecrets")
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildForbidden"))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"))
		// A password made up again at every reconcile would roll every workload each time.
		workloads := func() int {
			sets, deployments := &appsv1.StatefulSetList{}, &appsv1.DeploymentList{}
			Expect(k8sClient.List(ctx, sets, client.InNamespace(ns))).To(Succeed())
			Expect(k8sClient.List(ctx, deployments, client.InNamespace(ns))).To(Succeed())
			return len(sets.Items) + len(deployments.Items)
		}
		Consistently(workloads).WithTimeout(3 * time.Second).Should(BeZero())
	})

	It("rolls no workload over and over while its connections Secret is forbidden", func() {
		ns := takeNamespace()
		external := func(name, uri string) *shopv1.ExternalSpec {
			Expect(k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{resources.LabelShop: "noconn"}},
				StringData: map[string]string{"uri": uri},
			})).To(Succeed())
			return &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: name}}
		}
		shop := minimalShop(ns, "noconn")
		shop.Spec.MongoDB.External = external("mongo", "mongodb://u:pw@db.example.com:27017/")
		shop.Spec.RabbitMQ.External = external("rabbit", "amqp://u:pw@mq.example.com:5672/shop")
		forbid(ns, "no-secrets", corev1.ResourceSecrets) // the stores are external: no other Secret is made
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildForbidden"))
		// A checksum key made at every reconcile and never stored would rewrite every
		// service's workload at each, and each write bring another reconcile.
		generations := func() map[string]int64 {
			got := map[string]int64{}
			for _, app := range resources.Apps {
				w := resources.EmptyWorkload(shop, app)
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(w), w); err == nil {
					got[app] = w.GetGeneration()
				}
			}
			return got
		}
		Eventually(generations).WithTimeout(timeout).Should(HaveLen(len(resources.Apps)))
		Consistently(generations).WithTimeout(3*time.Second).Should(Equal(generations()), "workloads rewritten while nothing changes")
	})

	DescribeTable("is Blocked, not rolling out, when the children it forbids are ones pods need",
		func(kind corev1.ResourceName) {
			ns := takeNamespace()
			forbid(ns, "no-"+strings.ReplaceAll(string(kind), "/", "-"), kind)
			shop := minimalShop(ns, "needed")
			Expect(k8sClient.Create(ctx, shop)).To(Succeed())
			Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildForbidden"))
			// The other children are made, and the workloads wait for their pods (envtest
			// runs none); but what is forbidden, or the pods that need it, will never be
			// ready until the quota goes: that is not progress.
			gateway := types.NamespacedName{Namespace: ns, Name: resources.Name(shop, resources.Gateway)}
			Eventually(func() error { return k8sClient.Get(ctx, gateway, &appsv1.Deployment{}) }).WithTimeout(timeout).Should(Succeed())
			requeueOf(shop)
			Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"))
		},
		Entry("StatefulSets (the stores, the services run as one process)", corev1.ResourceName("count/statefulsets.apps")),
		Entry("Services (how the services reach their stores and peers)", corev1.ResourceServices),
	)

	It("does not hold back a new version when a volume cannot grow", func() {
		ns := takeNamespace()
		class := storageClass("fixed-size", false)
		shop := minimalShop(ns, "grow")
		shop.Spec.MongoDB.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("1Gi")), StorageClassName: ptr.To(class.Name)}
		createShopAndWait(shop)
		bindClaim(shop, resources.MongoDB)

		updateShop(shop, func(s *shopv1.Shop) {
			s.Spec.MongoDB.Storage.Size = ptr.To(resource.MustParse("2Gi"))
			s.Spec.Version = "v0.2.0"
		})
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildForbidden"))
		Eventually(func() string { return deployment(shop, resources.User).Spec.Template.Spec.Containers[0].Image }).
			WithTimeout(timeout).Should(HaveSuffix(":v0.2.0"))
		Eventually(func() int64 { return getShop(shop).Status.ObservedGeneration }).WithTimeout(timeout).Should(Equal(getShop(shop).Generation))
	})
})

// expectDegraded waits until shop is Degraded for reason, with a message that matches message.
func expectDegraded(shop *shopv1.Shop, reason string, message gomegatypes.GomegaMatcher) {
	GinkgoHelper()
	Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/" + reason))
	Expect(getShop(shop).Status.Conditions).To(ContainElement(And(HaveField("Type", ConditionDegraded), HaveField("Message", message))))
}

// forbid makes a ResourceQuota that allows no object of kind in namespace ns.
func forbid(ns, name string, kind corev1.ResourceName) *corev1.ResourceQuota {
	none := corev1.ResourceList{kind: resource.MustParse("0")}
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ResourceQuotaSpec{Hard: none}}
	ExpectWithOffset(1, k8sClient.Create(ctx, quota)).To(Succeed())
	// No quota controller runs here: its usage is set by hand, as that controller would.
	quota.Status = corev1.ResourceQuotaStatus{Hard: none, Used: none}
	ExpectWithOffset(1, k8sClient.Status().Update(ctx, quota)).To(Succeed())
	return quota
}

// requeueOf reconciles shop once by hand, beside the manager, and returns when the
// controller would look at it again unasked (0: only at an event). The reconciler reads
// straight from the API server: it sees objects the manager's cache leaves out.
func requeueOf(shop *shopv1.Shop) time.Duration {
	r, _, _ := countingReconciler()
	var res reconcile.Result
	// The manager writes the same objects: a conflict is tried again.
	EventuallyWithOffset(1, func() (err error) {
		res, err = r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(shop)})
		return err
	}).WithTimeout(timeout).Should(Succeed())
	return res.RequeueAfter
}

// An admission policy that denies a child is ChildForbidden whatever status it answers
// with: a ValidatingAdmissionPolicy answers 422 unless told otherwise, a webhook any code
// from 400 up (Kyverno's come with none, which the API server makes 400). Either way the
// other children are made, and the Shop is looked at again, as a policy may be lifted with
// no event the controller sees.
var _ = DescribeTable("A child an admission policy denies", func(reason metav1.StatusReason) {
	ns := takeNamespace()
	shop := minimalShop(ns, "denied")
	user := resources.Name(shop, resources.User)
	denyDeployment(ns, user, reason)

	Expect(k8sClient.Create(ctx, shop)).To(Succeed())
	expectDegraded(shop, "ChildForbidden", And(ContainSubstring("Deployment "+user), ContainSubstring("denied request: no, said the policy")))
	Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(ConsistOf(HaveSuffix("Deployment " + user)))
	Expect(requeueOf(shop)).To(Equal(ConflictRetry), "a policy lifted brings no event: the retry is the only way back")
},
	Entry("with its default answer, 422 Invalid", metav1.StatusReason("")),
	Entry("answering 413 RequestEntityTooLarge", metav1.StatusReasonRequestEntityTooLarge),
)

// A policy that denies every Deployment denies the dry run that checks the Shop's resources
// too (resourcesRefused): that is no verdict on the resources, and the children meet the
// policy themselves.
var _ = It("A policy denying every Deployment, resources set, is reported as such", func() {
	ns := takeNamespace()
	denyDeployment(ns, "", metav1.StatusReasonRequestEntityTooLarge)
	shop := minimalShop(ns, "alldenied")
	shop.Spec.Gateway.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("300Mi")}}
	Expect(k8sClient.Create(ctx, shop)).To(Succeed())
	expectDegraded(shop, "ChildForbidden", ContainSubstring("denied request: no, said the policy"))
	// The StatefulSets, Services and the rest are made.
	Eventually(func() error {
		return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: resources.Name(shop, resources.MongoDB)}, &appsv1.StatefulSet{})
	}).WithTimeout(timeout).Should(Succeed())
})

// A refusal quoting a long value leaves the status writable: the condition's message is
// cut short, not the whole status refused (the API takes 32 KiB in a message).
var _ = It("A value of 40 KB the API server refuses is reported, its message cut short", func() {
	ns := takeNamespace()
	shop := minimalShop(ns, "long")
	// The Shop's schema checks no label selector of a scraper; the dry run of a
	// NetworkPolicy that carries it is refused, quoting the value.
	shop.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{{
		PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": strings.Repeat("a", 40_000)}},
	}}
	Expect(k8sClient.Create(ctx, shop)).To(Succeed())
	expectDegraded(shop, "ChildRejected", And(ContainSubstring("the API server refuses them in a NetworkPolicy"), HaveSuffix("(cut short)"), HaveLen(maxConditionMessage)))
})

// bindInNamespace makes policy and its binding to namespace ns, denying what it does not
// admit, both deleted when the spec ends.
func bindInNamespace(policy *admissionv1.ValidatingAdmissionPolicy, ns string) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, policy)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, policy))).To(Succeed()) })
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		},
	}
	Expect(k8sClient.Create(ctx, binding)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, binding))).To(Succeed()) })
}

// denyDeployment makes a ValidatingAdmissionPolicy, bound to namespace ns, that denies every
// write of the Deployment named name (any Deployment when name is empty), with reason (none:
// the policy's default).
func denyDeployment(ns, name string, reason metav1.StatusReason) {
	GinkgoHelper()
	var why *metav1.StatusReason
	if reason != "" {
		why = &reason
	}
	var names []string
	if name != "" {
		names = []string{name}
	} else {
		name = "every"
	}
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-" + name + "-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				ResourceNames: names,
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				},
			}}},
			FailurePolicy: ptr.To(admissionv1.Fail),
			Validations:   []admissionv1.Validation{{Expression: "false", Message: "no, said the policy", Reason: why}},
		},
	}
	bindInNamespace(policy, ns)
	// In force once a dry-run create of such an object in the namespace is denied.
	probe := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "probe"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
			},
		},
	}
	Eventually(func() error { return k8sClient.Create(ctx, probe.DeepCopy(), client.DryRunAll) }).
		WithTimeout(timeout).Should(MatchError(ContainSubstring("no, said the policy")), "the policy is never in force")
}
