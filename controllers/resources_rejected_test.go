package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"

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
		Expect(degraded.Message).To(ContainSubstring("spec.gateway.resources: requests.cpu (2) is above limits.cpu (1)"))
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
