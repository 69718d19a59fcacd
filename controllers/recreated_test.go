package controllers

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

var _ = Describe("A Shop made again under the name of one just deleted", func() {
	It("says its children wait for the garbage collector, not that the user must delete them", func() {
		shop := minimalShop(takeNamespace(), "remade")
		createShopAndWait(shop)
		Expect(k8sClient.Delete(ctx, shop)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), &shopv1.Shop{}))
		}).WithTimeout(timeout).Should(BeTrue())
		// envtest runs no garbage collector: the children stay, owned by the deleted Shop, as
		// they do in a cluster until the collector comes to them (a claim for as long as its
		// store's pod takes to stop).

		again := minimalShop(shop.Namespace, shop.Name)
		Expect(k8sClient.Create(ctx, again)).To(Succeed())
		DeferCleanup(func() { deleteWithServices(again) })
		Eventually(conditionOf(again, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildConflict"))
		msg := meta.FindStatusCondition(getShop(again).Status.Conditions, ConditionDegraded).Message
		Expect(msg).NotTo(ContainSubstring("delete or rename it"))
		Expect(msg).To(ContainSubstring("the deleted Shop remade of the same name"))

		By("the garbage collector removing them: they are made again for the new Shop")
		for _, o := range expectedChildren(shop) {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o); err == nil && len(o.GetFinalizers()) > 0 {
				o.SetFinalizers(nil) // the claim's protection, which ends with its store's pod
				Expect(k8sClient.Update(ctx, o)).To(Succeed())
			}
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, o))).To(Succeed())
		}
		Eventually(conditionOf(again, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
		Expect(missingChildren(again)).To(BeEmpty())
	})
})
