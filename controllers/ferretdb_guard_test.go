package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// FerretDB checks no credentials (its URI carries none): its NetworkPolicy is all that
// keeps the other pods of the cluster from the shop's data.
var _ = Describe("An in-cluster FerretDB whose NetworkPolicy is forbidden", func() {
	It("is not run until its NetworkPolicy is stored", func() {
		ns := takeNamespace()
		quota := forbid(ns, "no-network-policies", corev1.ResourceName("count/networkpolicies.networking.k8s.io"))
		shop := minimalShop(ns, "unguarded")
		shop.Spec.MongoDB.Engine = shopv1.EngineFerretDB
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		expectDegraded(shop, ReasonChildForbidden, ContainSubstring("NetworkPolicy unguarded-mongodb"))
		store := types.NamespacedName{Namespace: ns, Name: resources.Name(shop, resources.MongoDB)}
		err := k8sClient.Get(ctx, store, &appsv1.StatefulSet{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "FerretDB runs open to every pod of the cluster: %v", err)
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"))

		By("the quota lifted: the NetworkPolicy is made, then the store")
		Expect(k8sClient.Delete(ctx, quota)).To(Succeed())
		requeueOf(shop)
		Eventually(func() error { return k8sClient.Get(ctx, store, &networkingv1.NetworkPolicy{}) }).WithTimeout(timeout).Should(Succeed())
		Eventually(func() error { return k8sClient.Get(ctx, store, &appsv1.StatefulSet{}) }).WithTimeout(timeout).Should(Succeed())
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())
	})
})
