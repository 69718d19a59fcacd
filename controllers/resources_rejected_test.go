package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// One component's resources that its container cannot have hold back the whole change:
// applied child by child, it would reach the other components and stop at that one.
var _ = Describe("A Shop change with resources a container cannot have", func() {
	It("changes no child until they are fixed, and says which field", func() {
		shop := minimalShop(takeNamespace(), "res")
		createShopAndWait(shop)
		image := deployment(shop, resources.User).Spec.Template.Spec.Containers[0].Image

		updateShop(shop, func(s *shopv1.Shop) {
			s.Spec.Version = "v0.2.0"
			s.Spec.Gateway.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}
		})
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildRejected"))
		degraded := meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded)
		Expect(degraded.Message).To(And(HavePrefix("spec.gateway.resources: the API server refuses them"), ContainSubstring("must be less than or equal to cpu limit")))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"))
		Consistently(func() string { return deployment(shop, resources.User).Spec.Template.Spec.Containers[0].Image }).
			WithTimeout(2*time.Second).Should(Equal(image), "the version reaches user while the gateway's resources hold it back")

		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Resources.Limits[corev1.ResourceCPU] = resource.MustParse("2") })
		Eventually(func() string { return deployment(shop, resources.User).Spec.Template.Spec.Containers[0].Image }).
			WithTimeout(timeout).Should(HaveSuffix(":v0.2.0"))
		Eventually(func() string { return deployment(shop, resources.Gateway).Spec.Template.Spec.Containers[0].Image }).
			WithTimeout(timeout).Should(HaveSuffix(":v0.2.0"))
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
	})
})

var _ = DescribeTable("Resources the API server refuses on a container, on a new Shop",
	func(path string, edit func(*shopv1.ShopSpec), said string) {
		shop := minimalShop(takeNamespace(), "res-new")
		edit(&shop.Spec)
		Expect(k8sClient.Create(ctx, shop)).To(Succeed(), "the Shop's schema takes them")
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildRejected"))
		degraded := meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded)
		Expect(degraded.Message).To(And(HavePrefix(path+": the API server refuses them"), ContainSubstring(said)))
		Expect(missingChildren(shop)).To(HaveLen(len(expectedChildren(shop))), "no child is made")
	},
	Entry("an extended resource requested without a limit", "spec.gateway.resources", func(s *shopv1.ShopSpec) {
		s.Gateway.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), "example.com/gpu": resource.MustParse("1")}
	}, "Limit must be set"),
	Entry("a fraction of an extended resource", "spec.services.order.resources", func(s *shopv1.ShopSpec) {
		q := resource.MustParse("500m")
		s.Services.Order.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{"example.com/gpu": q}, Limits: corev1.ResourceList{"example.com/gpu": q},
		}
	}, "example.com/gpu"),
	Entry("huge pages without cpu or memory", "spec.mongodb.resources", func(s *shopv1.ShopSpec) {
		q := resource.MustParse("4Mi")
		s.MongoDB.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{"hugepages-2Mi": q}, Limits: corev1.ResourceList{"hugepages-2Mi": q},
		}
	}, "HugePages require cpu or memory"),
	Entry("a negative request", "spec.services.user.resources", func(s *shopv1.ShopSpec) {
		s.Services.User.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("-1Gi")}
	}, "must be greater than or equal to 0"),
	Entry("a resource no container can have", "spec.rabbitmq.resources", func(s *shopv1.ShopSpec) {
		s.RabbitMQ.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{"gpu": resource.MustParse("1")}}
	}, "gpu"),
)

// Scrapers whose selectors or CIDRs no NetworkPolicy can hold are refused before any child is
// made: found only at the services' NetworkPolicies, after their workloads, they left the
// services' pods running with no NetworkPolicy at all.
var _ = DescribeTable("Scrapers the API server refuses in a NetworkPolicy, on a new Shop",
	func(scraper networkingv1.NetworkPolicyPeer, said string) {
		shop := minimalShop(takeNamespace(), "scr-new")
		shop.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "monitoring"}}}, scraper,
		}
		Expect(k8sClient.Create(ctx, shop)).To(Succeed(), "the Shop's schema takes them")
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildRejected"))
		degraded := meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded)
		Expect(degraded.Message).To(And(HavePrefix("spec.monitoring.scrapers: the API server refuses them in a NetworkPolicy"),
			ContainSubstring(said), HaveSuffix("no child is changed until they are fixed")))
		Expect(missingChildren(shop)).To(HaveLen(len(expectedChildren(shop))), "no child is made")

		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Monitoring.Scrapers = s.Spec.Monitoring.Scrapers[:1] })
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())
	},
	Entry("an operator in lower case", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "in", Values: []string{"prometheus"}}},
	}}, "spec.monitoring.scrapers[1].podSelector.matchExpressions[0].operator: Invalid value: \"in\""),
	Entry("In with no values", networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "name", Operator: metav1.LabelSelectorOpIn}},
	}}, "spec.monitoring.scrapers[1].namespaceSelector.matchExpressions[0].values"),
	Entry("a label key no label can have", networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"not a key": "x"},
	}}, "spec.monitoring.scrapers[1].podSelector.matchLabels"),
	Entry("a CIDR that is none", networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}},
		"spec.monitoring.scrapers[1].ipBlock.cidr"),
)

// A Shop stored before the CRD refused a scraper with both or neither of an ipBlock and
// selectors (the API server ratchets the rule) is held back whole, as the README's upgrade
// notes say: the scrapers' dry run refuses it before any child is applied.
var _ = It("A scraper stored before the CRD refused it holds back every child", func() {
	r, _, _ := countingReconciler()
	for _, peer := range []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}, NamespaceSelector: &metav1.LabelSelector{}},
		{},
	} {
		shop := minimalShop(unwatchedNamespace, "stored") // never created: the CRD refuses it now
		shop.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{peer}
		p, err := r.scrapersRefused(ctx, shop)
		Expect(err).NotTo(HaveOccurred())
		Expect(p).NotTo(BeNil())
		Expect(p.Reason).To(Equal(ReasonChildRejected))
		Expect(p.Message).To(HavePrefix("spec.monitoring.scrapers: the API server refuses them in a NetworkPolicy (spec.monitoring.scrapers[0]"))
	}
})
