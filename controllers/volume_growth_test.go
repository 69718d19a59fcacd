package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// A raised storage.size changes no workload: only the claim, which the cluster's resizer then
// grows. The Shop is not Ready at that generation, nor done Progressing, until the claim holds
// what it asks; and a growth the resizer fails is reported, as one the API server refuses is.
var _ = Describe("A store's volume growing", func() {
	It("holds the Shop from Ready until the claim has grown, and reports a growth that fails", func() {
		shop, claim := growingRabbitMQ("volgrow-expandable", "volgrow")
		Eventually(func() int64 { return getShop(shop).Status.ObservedGeneration }).WithTimeout(timeout).Should(Equal(getShop(shop).Generation))
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ComponentsNotReady"), "Ready while the volume has not grown")
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("True/RollingOut"))
		Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionProgressing).Message).To(
			ContainSubstring("rabbitmq (1/1, PersistentVolumeClaim volgrow-rabbitmq growing to 2Gi from 1Gi)"))

		By("the volume grown, its file system not yet")
		setClaimStatus(claim, func(st *corev1.PersistentVolumeClaimStatus) {
			st.Conditions = []corev1.PersistentVolumeClaimCondition{{
				Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now(),
			}}
		})
		Eventually(func() string {
			return meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionReady).Message
		}).
			WithTimeout(timeout).Should(ContainSubstring("its file system grows on the node"))
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ComponentsNotReady"))

		By("the resizer failing to grow it")
		setClaimStatus(claim, func(st *corev1.PersistentVolumeClaimStatus) {
			st.Conditions = []corev1.PersistentVolumeClaimCondition{{
				Type: corev1.PersistentVolumeClaimControllerResizeError, Status: corev1.ConditionTrue,
				Message: "resize volume failed: quota exceeded", LastTransitionTime: metav1.Now(),
			}}
		})
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/" + ReasonVolumeResizeFailed))
		Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).To(Equal(
			"rabbitmq: PersistentVolumeClaim volgrow-rabbitmq failed to grow to 2Gi from 1Gi: kubectl describe pvc volgrow-rabbitmq"))
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ComponentsNotReady"))

		By("the claim grown")
		setClaimStatus(claim, func(st *corev1.PersistentVolumeClaimStatus) {
			st.Conditions = nil
			st.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}
		})
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/RolloutComplete"))
	})

	It("lets the Shop be Ready again when a growth that failed is set back in the Shop", func() {
		shop, claim := growingRabbitMQ("volgrow-setback", "volback")
		setClaimStatus(claim, func(st *corev1.PersistentVolumeClaimStatus) {
			st.Conditions = []corev1.PersistentVolumeClaimCondition{{
				Type: corev1.PersistentVolumeClaimControllerResizeError, Status: corev1.ConditionTrue,
				Message: "resize volume failed: quota exceeded", LastTransitionTime: metav1.Now(),
			}}
		})
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/" + ReasonVolumeResizeFailed))

		By("the Shop asking its old size again: the claim keeps 2Gi, a claim never shrinks, and the volume holds what the Shop asks")
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.RabbitMQ.Storage.Size = ptr.To(resource.MustParse("1Gi")) })
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/RolloutComplete"))
		Expect(claimSize(claim)).To(Equal("2Gi"))
	})
})

// setClaimStatus edits the status of claim as stored, as the volume resizer would.
func setClaimStatus(claim *corev1.PersistentVolumeClaim, edit func(*corev1.PersistentVolumeClaimStatus)) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		stored := &corev1.PersistentVolumeClaim{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(claim), stored); err != nil {
			return err
		}
		edit(&stored.Status)
		return k8sClient.Status().Update(ctx, stored)
	})).To(Succeed())
}

// growingRabbitMQ makes Shop name, its RabbitMQ's 1Gi claim bound on the expandable class
// class and the Shop Ready, then raises the size to 2Gi and waits for the claim to ask it;
// the volume still holds 1Gi.
func growingRabbitMQ(class, name string) (*shopv1.Shop, *corev1.PersistentVolumeClaim) {
	GinkgoHelper()
	expandable := storageClass(class, true)
	shop := minimalShop(takeNamespace(), name)
	shop.Spec.RabbitMQ.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("1Gi")), StorageClassName: ptr.To(expandable.Name)}
	createShopAndWait(shop)
	DeferCleanup(deleteWithServices, shop)
	claim := bindClaim(shop, resources.RabbitMQ)
	markAvailable(k8sClient, shop)
	Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))

	updateShop(shop, func(s *shopv1.Shop) { s.Spec.RabbitMQ.Storage.Size = ptr.To(resource.MustParse("2Gi")) })
	Eventually(func() string { return claimSize(claim) }).WithTimeout(timeout).Should(Equal("2Gi"))
	return shop, claim
}
