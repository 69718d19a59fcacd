package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

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

// A FerretDB already running whose NetworkPolicy is gone and cannot be made again (a quota
// on NetworkPolicies set since): the store must not go on running open to every pod.
var _ = Describe("A running in-cluster FerretDB whose NetworkPolicy is gone and forbidden", func() {
	It("does not keep running unguarded", func() {
		ns := takeNamespace()
		shop := minimalShop(ns, "unguarded-later")
		shop.Spec.MongoDB.Engine = shopv1.EngineFerretDB
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		key := types.NamespacedName{Namespace: ns, Name: resources.Name(shop, resources.MongoDB)}
		Eventually(func() error { return k8sClient.Get(ctx, key, &appsv1.StatefulSet{}) }).WithTimeout(timeout).Should(Succeed())
		Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())

		quota := forbid(ns, "no-network-policies", corev1.ResourceName("count/networkpolicies.networking.k8s.io"))
		policy := &networkingv1.NetworkPolicy{}
		Expect(k8sClient.Get(ctx, key, policy)).To(Succeed())
		Expect(k8sClient.Delete(ctx, policy)).To(Succeed())
		requeueOf(shop)
		expectDegraded(shop, ReasonChildForbidden, ContainSubstring("NetworkPolicy unguarded-later-mongodb"))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"))
		sts := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(ctx, key, sts)).To(Succeed())
		Expect(ptr.Deref(sts.Spec.Replicas, 1)).To(BeZero(), "FerretDB runs open to every pod of the cluster, its NetworkPolicy gone")

		By("the quota lifted: the NetworkPolicy is made again, then the store runs again")
		Expect(k8sClient.Delete(ctx, quota)).To(Succeed())
		requeueOf(shop)
		Expect(k8sClient.Get(ctx, key, &networkingv1.NetworkPolicy{})).To(Succeed())
		Eventually(func() int32 {
			Expect(k8sClient.Get(ctx, key, sts)).To(Succeed())
			return ptr.Deref(sts.Spec.Replicas, 0)
		}).WithTimeout(timeout).Should(Equal(int32(1)))
	})
})

// A FerretDB whose NetworkPolicy's name is someone else's is held back, and the conflict's
// message names it among the children left as they are meanwhile, as the README says.
var _ = Describe("An in-cluster FerretDB whose NetworkPolicy's name is someone else's", func() {
	It("is named among the children held back", func() {
		ns := takeNamespace()
		shop := minimalShop(ns, "foreign-policy")
		shop.Spec.MongoDB.Engine = shopv1.EngineFerretDB
		name := resources.Name(shop, resources.MongoDB)
		foreign := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}, // admits anyone
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		expectDegraded(shop, ReasonChildConflict, ContainSubstring("StatefulSet "+name))
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &appsv1.StatefulSet{}))).To(BeTrue())
	})
})
