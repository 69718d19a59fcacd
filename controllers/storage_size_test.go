package controllers

import (
	"errors"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// A store's size may be set below what its claim holds: the claim stays as it is,
// since a claim never shrinks. That is what lets a user take back a growth the storage
// class refuses (kind's, k3s's and minikube's default classes allow no expansion).
//
// One Shop serves both specs, its MongoDB on a class that cannot grow a volume and its
// RabbitMQ on one that can: every Service takes an address of the API server's small
// range, and no garbage collector frees them here.
var _ = Describe("A store's storage size", Ordered, func() {
	var shop *shopv1.Shop
	var mongoClaim, rabbitClaim *corev1.PersistentVolumeClaim

	BeforeAll(func() {
		fixed, expandable := storageClass("size-fixed", false), storageClass("size-expandable", true)
		shop = minimalShop(takeNamespace(), "storesize")
		shop.Spec.MongoDB.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("1Gi")), StorageClassName: ptr.To(fixed.Name)}
		shop.Spec.RabbitMQ.Storage = &shopv1.StorageSpec{Size: ptr.To(resource.MustParse("1Gi")), StorageClassName: ptr.To(expandable.Name)}
		createShopAndWait(shop)
		DeferCleanup(deleteWithServices, shop)
		mongoClaim, rabbitClaim = bindClaim(shop, resources.MongoDB), bindClaim(shop, resources.RabbitMQ)
		markAvailable(k8sClient, shop)
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
	})

	It("can be set back after a growth its storage class refuses, and the Shop recovers", func() {
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.MongoDB.Storage.Size = ptr.To(resource.MustParse("2Gi")) })
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildForbidden"))
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ChildForbidden"))
		Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).To(And(
			ContainSubstring("PersistentVolumeClaim storesize-mongodb"),
			ContainSubstring("set mongodb.storage.size back to 1Gi or less")), "the message names the way out")

		updateShop(shop, func(s *shopv1.Shop) { s.Spec.MongoDB.Storage.Size = ptr.To(resource.MustParse("1Gi")) })
		markAvailable(k8sClient, shop)
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/RolloutComplete"))
		Expect(claimSize(mongoClaim)).To(Equal("1Gi"))

		// Nothing is tried again: no timed retry, no write refused, no Event at all.
		res, reasons := reconcileOnce(shop)
		Expect(res.RequeueAfter).To(BeZero())
		Expect(reasons).To(BeEmpty())
	})

	It("may be set below the claim's size: the claim is kept, and the user told once", func() {
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.RabbitMQ.Storage.Size = ptr.To(resource.MustParse("2Gi")) })
		Eventually(func() string { return claimSize(rabbitClaim) }).WithTimeout(timeout).Should(Equal("2Gi"))
		// The resizer grows the volume (none runs here).
		setClaimStatus(rabbitClaim, func(st *corev1.PersistentVolumeClaimStatus) {
			st.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}
		})
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rabbitClaim), rabbitClaim)).To(Succeed())
		grown := rabbitClaim.ResourceVersion

		updateShop(shop, func(s *shopv1.Shop) { s.Spec.RabbitMQ.Storage.Size = ptr.To(resource.MustParse("1536Mi")) })
		Eventually(func() []string { return eventNotes(shop, ReasonStorageNotShrunk) }).WithTimeout(timeout).Should(ConsistOf(
			"PersistentVolumeClaim storesize-rabbitmq keeps its 2Gi: rabbitmq.storage.size asks 1536Mi, and a claim never shrinks"))
		Eventually(func() int64 { return getShop(shop).Status.ObservedGeneration }).WithTimeout(timeout).Should(Equal(getShop(shop).Generation))
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("True/Available"))
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rabbitClaim), rabbitClaim)).To(Succeed())
		Expect(rabbitClaim.ResourceVersion).To(Equal(grown), "the claim was written")

		// Said for the change of the Shop, not at every later reconcile.
		_, reasons := reconcileOnce(shop)
		Expect(reasons).NotTo(ContainElement(ReasonStorageNotShrunk))
	})
})

// deleteWithServices deletes shop, then its Services, which the garbage collector
// would delete in a cluster: each holds one of the few addresses envtest's API server
// hands out.
func deleteWithServices(shop *shopv1.Shop) {
	Expect(k8sClient.Delete(ctx, shop)).To(Succeed())
	// A reconcile already under way may make one again: delete until none is left.
	Eventually(func() []corev1.Service {
		list := &corev1.ServiceList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(shop.Namespace), client.MatchingLabels{resources.LabelInstance: shop.Name})).To(Succeed())
		for i := range list.Items {
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &list.Items[i]))).To(Succeed())
		}
		return list.Items
	}).WithTimeout(timeout).Should(BeEmpty())
}

// storageClass makes a StorageClass, removed after the spec, that grows its volumes
// only when expandable.
func storageClass(name string, expandable bool) *storagev1.StorageClass {
	class := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: name},
		Provisioner:          "example.com/none",
		AllowVolumeExpansion: ptr.To(expandable),
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, class)).To(Succeed())
	DeferCleanup(func() { Expect(k8sClient.Delete(ctx, class)).To(Succeed()) })
	return class
}

// bindClaim binds the claim of shop's store to a volume of the size it asks, as a
// provisioner would (none runs here): only a bound claim may be resized, and only its
// growth is checked against its class. It returns the claim.
func bindClaim(shop *shopv1.Shop, store string) *corev1.PersistentVolumeClaim {
	claim := &corev1.PersistentVolumeClaim{}
	key := types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, store)}
	ExpectWithOffset(1, k8sClient.Get(ctx, key, claim)).To(Succeed())
	volume := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: *claim.Spec.Resources.Requests.Storage()},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName:       ptr.Deref(claim.Spec.StorageClassName, ""),
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/" + key.Name}},
			ClaimRef:               &corev1.ObjectReference{Namespace: key.Namespace, Name: key.Name},
		},
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, volume)).To(Succeed())
	DeferCleanup(func() { Expect(k8sClient.Delete(ctx, volume)).To(Succeed()) })
	claim.Spec.VolumeName = volume.Name
	ExpectWithOffset(1, k8sClient.Update(ctx, claim)).To(Succeed())
	claim.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: volume.Spec.Capacity, AccessModes: volume.Spec.AccessModes}
	ExpectWithOffset(1, k8sClient.Status().Update(ctx, claim)).To(Succeed())
	return claim
}

// claimSize is the storage the stored claim asks for.
func claimSize(claim *corev1.PersistentVolumeClaim) string {
	stored := &corev1.PersistentVolumeClaim{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(claim), stored)).To(Succeed())
	return stored.Spec.Resources.Requests.Storage().String()
}

// eventNotes lists the notes of the Events with reason regarding shop.
func eventNotes(shop *shopv1.Shop, reason string) []string {
	list := &eventsv1.EventList{}
	ExpectWithOffset(1, k8sClient.List(ctx, list, client.InNamespace(shop.Namespace))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Shop" && e.Regarding.Name == shop.Name && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

// reconcileOnce reconciles shop once by hand, beside the manager, and returns the
// result and the reasons of the Events it recorded.
func reconcileOnce(shop *shopv1.Shop) (reconcile.Result, []string) {
	var res reconcile.Result
	var reasons []string
	// The manager writes the same objects: a conflict is tried again, afresh.
	EventuallyWithOffset(1, func() (err error) {
		r, _, _ := countingReconciler()
		res, err = r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(shop)})
		reasons = r.Recorder.(*countingRecorder).reasons
		return err
	}).WithTimeout(timeout).Should(Succeed())
	return res, reasons
}

func TestClaimResize(t *testing.T) {
	claim := func(size string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "s-mongodb", Labels: map[string]string{resources.LabelComponent: resources.MongoDB}},
			Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}},
		}
	}
	forbidden := func() error { return &Problem{Reason: ReasonChildForbidden, Message: "the API server forbade it"} }
	const wayOut = "the API server forbade it; to go on without growing it, set mongodb.storage.size back to 1Gi or less: " +
		"a claim never shrinks, so a smaller size leaves it as it is"
	for _, tc := range []struct {
		name              string
		desired, existing client.Object
		err               error
		shrinks           bool
		message           string // of the Problem explain returns; "" when it returns err itself
	}{
		{name: "growth refused", desired: claim("2Gi"), existing: claim("1Gi"), err: forbidden(), message: wayOut},
		{name: "same size, labels refused", desired: claim("1Gi"), existing: claim("1Gi"), err: forbidden()},
		{name: "less than the claim", desired: claim("512Mi"), existing: claim("1Gi"), err: forbidden(), shrinks: true},
		{name: "growth failing for a retry", desired: claim("2Gi"), existing: claim("1Gi"), err: errors.New("connection refused")},
		{name: "no claim", desired: &corev1.Service{}, existing: &corev1.Service{}, err: forbidden()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resize := resizeOf(tc.desired, tc.existing)
			if got := resize.shrinks(); got != tc.shrinks {
				t.Errorf("shrinks() = %v, want %v", got, tc.shrinks)
			}
			got := resize.explain(tc.err)
			p, ok := errors.AsType[*Problem](got)
			switch {
			case tc.message == "" && got != tc.err: //nolint:errorlint // the very error given, not one wrapping it
				t.Errorf("explain changed the error: %v", got)
			case tc.message != "" && (!ok || p.Message != tc.message):
				t.Errorf("explain = %v, want the Problem %q", got, tc.message)
			}
		})
	}
}
