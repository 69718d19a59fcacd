package controllers

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// An object with a child's name that the Shop does not own is someone else's: besides
// being left alone and reported, it must not be used by name. A workload whose claim,
// files, connections or store's Service is someone else's would mount that claim, read
// those files or URIs, or send the store's password to whatever that Service reaches.
var _ = Describe("A child's name taken by someone else", func() {
	It("keeps the store's StatefulSet, and the services that use the store, off a foreign claim", func() {
		ns := takeNamespace()
		foreign := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pvc-mongodb", Labels: map[string]string{"app": "someone-else"}},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}},
			},
		}
		shop := minimalShop(ns, "pvc")
		takenThenFreed(shop, foreign,
			[]string{resources.MongoDB, resources.User, resources.Product, resources.Order, resources.Payment},
			[]string{resources.RabbitMQ, resources.Gateway},
			func() {
				Consistently(func() []string { return eventReasons(shop) }).WithTimeout(2*time.Second).NotTo(ContainElement("CredentialsLost"),
					"someone else's claim is no volume the store was set up on: nobody is told to delete it")
				claim := &corev1.PersistentVolumeClaim{}
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), claim)).To(Succeed())
				Expect(claim.OwnerReferences).To(BeEmpty())
				Expect(claim.Labels).To(Equal(foreign.Labels), "the foreign claim is left alone")
			})
		Expect(podTemplate(shop, resources.MongoDB).Spec.Volumes).To(ContainElement(
			HaveField("VolumeSource.PersistentVolumeClaim.ClaimName", "pvc-mongodb")))
	})

	It("keeps the broker, and the services that use it, off a foreign configuration Secret", func() {
		ns := takeNamespace()
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "conf-rabbitmq-config"},
			Data:       map[string][]byte{resources.RabbitMQConfKey: []byte("default_user = someone\n")},
		}
		shop := minimalShop(ns, "conf")
		takenThenFreed(shop, foreign,
			[]string{resources.RabbitMQ, resources.Order, resources.Payment},
			[]string{resources.MongoDB, resources.User, resources.Product, resources.Gateway},
			func() {
				Expect(secretData(shop, foreign.Name)).To(Equal(foreign.Data), "the foreign Secret is left alone")
			})
		Expect(podTemplate(shop, resources.RabbitMQ).Spec.Volumes).To(ContainElement(
			HaveField("VolumeSource.Secret.SecretName", "conf-rabbitmq-config")))
		creds := secretData(shop, "conf-rabbitmq-credentials")
		Expect(string(secretData(shop, "conf-rabbitmq-config")[resources.RabbitMQDefinitionsKey])).To(
			ContainSubstring(resources.RabbitMQPasswordHash(string(creds[resources.UsernameKey]), string(creds[resources.PasswordKey]))))
	})

	It("keeps the services off a foreign connections Secret", func() {
		ns := takeNamespace()
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "conn-connections"},
			Data: map[string][]byte{
				resources.RabbitMQURLKey:                   []byte("amqp://someone:else@elsewhere:5672/"),
				resources.MongoDBURIKey(resources.User):    []byte("mongodb://someone:else@elsewhere:27017/users"),
				resources.MongoDBURIKey(resources.Order):   []byte("mongodb://someone:else@elsewhere:27017/orders"),
				resources.MongoDBURIKey(resources.Payment): []byte("mongodb://someone:else@elsewhere:27017/payments"),
			},
		}
		shop := minimalShop(ns, "conn")
		takenThenFreed(shop, foreign,
			[]string{resources.User, resources.Product, resources.Order, resources.Payment},
			[]string{resources.MongoDB, resources.RabbitMQ, resources.Gateway},
			func() {
				Expect(secretData(shop, foreign.Name)).To(Equal(foreign.Data), "the foreign Secret is left alone")
				// No checksum key is stored meanwhile: one made at each reconcile would
				// rewrite the gateway at each, and each write bring another reconcile.
				gw := resources.EmptyWorkload(shop, resources.Gateway)
				generation := func() int64 {
					Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(gw), gw)).To(Succeed())
					return gw.GetGeneration()
				}
				Consistently(generation).WithTimeout(3*time.Second).Should(Equal(generation()), "the gateway is rewritten while nothing changes")
			})
		Expect(podTemplate(shop, resources.Order).Spec.Containers[0].Env).To(ContainElement(And(
			HaveField("Name", "RABBITMQ_URL"), HaveField("ValueFrom.SecretKeyRef.Name", "conn-connections"))))
		Expect(string(secretData(shop, "conn-connections")[resources.RabbitMQURLKey])).To(ContainSubstring("@conn-rabbitmq:5672"))
	})

	It("sends no password to a foreign store Service", func() {
		ns := takeNamespace()
		foreign := foreignService(ns, "svc-mongodb", resources.MongoDBPort)
		shop := minimalShop(ns, "svc")
		takenThenFreed(shop, foreign,
			[]string{resources.User, resources.Product, resources.Order, resources.Payment},
			// The store itself reaches nothing through its Service: it runs meanwhile.
			[]string{resources.MongoDB, resources.RabbitMQ, resources.Gateway},
			func() {
				Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "svc-connections"}, &corev1.Secret{})).
					To(Satisfy(apierrors.IsNotFound), "the connections would address the store's password to the foreign Service")
				svc := &corev1.Service{}
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), svc)).To(Succeed())
				Expect(svc.Spec.Selector).To(Equal(foreign.Spec.Selector), "the foreign Service is left alone")
			})
		svc := &corev1.Service{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), svc)).To(Succeed())
		Expect(svc.Spec.Selector).To(Equal(resources.SelectorLabels(shop, resources.MongoDB)))
		Expect(string(secretData(shop, "svc-connections")[resources.MongoDBURIKey(resources.User)])).To(ContainSubstring("@svc-mongodb:27017/"))
	})

	It("sends no service's requests to a foreign Service of a peer it calls", func() {
		ns := takeNamespace()
		// order asks payment for the payment of an order left PENDING, and settles the order on
		// the answer: whoever held payment's Service would decide it.
		foreign := foreignService(ns, "peer-payment", 80)
		shop := minimalShop(ns, "peer")
		takenThenFreed(shop, foreign,
			[]string{resources.Order, resources.Gateway},
			[]string{resources.MongoDB, resources.RabbitMQ, resources.User, resources.Product, resources.Payment},
			func() {
				svc := &corev1.Service{}
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), svc)).To(Succeed())
				Expect(svc.Spec.Selector).To(Equal(foreign.Spec.Selector), "the foreign Service is left alone")
			})
		Expect(podTemplate(shop, resources.Order).Spec.Containers[0].Env).To(ContainElement(
			corev1.EnvVar{Name: "PAYMENT_SERVICE_URL", Value: "http://peer-payment:80"}))
	})

	It("updates no service of a running Shop whose store Service became someone else's, until it is freed", func() {
		shop := minimalShop(takeNamespace(), "later")
		createShopAndWait(shop)
		connections := secretData(shop, "later-connections")
		image := deployment(shop, resources.User).Spec.Template.Spec.Containers[0].Image

		By("giving the store's Service to someone else, and changing the Shop")
		key := types.NamespacedName{Namespace: shop.Namespace, Name: "later-mongodb"}
		foreign := &corev1.Service{}
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8sClient.Get(ctx, key, foreign); err != nil {
				return err
			}
			// No owner, not the Shop's labels: someone else's, which the Shop leaves alone.
			foreign.OwnerReferences = nil
			foreign.Labels = map[string]string{"app": "someone-else"}
			foreign.Spec.Selector = map[string]string{"app": "someone-else"}
			return k8sClient.Update(ctx, foreign)
		})).To(Succeed())
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Version = "v0.2.0" })
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildConflict"))
		Expect(requeueOf(shop)).To(Equal(ConflictRetry))
		Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"))
		Expect(deployment(shop, resources.User).Spec.Template.Spec.Containers[0].Image).To(Equal(image), "an existing service is left as it is")
		Expect(secretData(shop, "later-connections")).To(Equal(connections))
		Expect(deployment(shop, resources.Gateway).Spec.Template.Spec.Containers[0].Image).To(HaveSuffix(":v0.2.0"),
			"the gateway reaches no store: it rolls out")

		By("freeing the name")
		Expect(k8sClient.Delete(ctx, foreign)).To(Succeed())
		Expect(requeueOf(shop)).To(BeZero())
		Eventually(func() string { return deployment(shop, resources.User).Spec.Template.Spec.Containers[0].Image }).
			WithTimeout(timeout).Should(HaveSuffix(":v0.2.0"))
		Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
	})
})

// foreignService is a Service named name in ns that is someone else's: its pods are not the
// Shop's.
func foreignService(ns, name string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "someone-else"},
			Ports:    []corev1.ServicePort{{Port: port}},
		},
	}
}

// takenThenFreed makes foreign, then shop, and checks that the workloads of withheld
// are not made while foreign holds a child's name, those of made are, and the Shop
// says why (meanwhile runs then); then it deletes foreign and checks that the Shop
// takes the name, makes everything and becomes Ready.
func takenThenFreed(shop *shopv1.Shop, foreign client.Object, withheld, made []string, meanwhile func()) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
	Expect(k8sClient.Create(ctx, shop)).To(Succeed())
	Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ChildConflict"))
	Expect(requeueOf(shop)).To(Equal(ConflictRetry), "the name freed brings no event: the retry is the only way back")
	degraded := meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded)
	Expect(degraded.Message).To(ContainSubstring(fmt.Sprintf("%s %s already exists and does not belong to this Shop", kindOf(foreign), foreign.GetName())))
	for _, c := range withheld {
		w := resources.EmptyWorkload(shop, c)
		Expect(degraded.Message).To(ContainSubstring(kindOf(w)+" "+w.GetName()), "the status says which workloads wait")
	}
	Expect(conditionOf(shop, ConditionProgressing)()).To(Equal("False/Blocked"), "the pods that need it would never be ready")
	Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/ChildConflict"))
	exists := func(component string) bool {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(resources.EmptyWorkload(shop, component)), resources.EmptyWorkload(shop, component))
		if err != nil {
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		}
		return err == nil
	}
	for _, c := range withheld {
		Consistently(func() bool { return exists(c) }).WithTimeout(time.Second).Should(BeFalse(), "%s is made while someone else holds %s", c, foreign.GetName())
	}
	for _, c := range made {
		Expect(exists(c)).To(BeTrue(), "%s depends on nothing someone else holds: it is made", c)
	}
	meanwhile()

	By("freeing the name")
	Expect(k8sClient.Delete(ctx, foreign)).To(Succeed())
	// No controller here removes a claim's protection finalizer: it is done by hand.
	Eventually(func() bool {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)
		if err == nil && len(foreign.GetFinalizers()) > 0 {
			_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign); err != nil {
					return err
				}
				foreign.SetFinalizers(nil)
				return k8sClient.Update(ctx, foreign)
			})
		}
		return apierrors.IsNotFound(err)
	}).WithTimeout(timeout).Should(BeTrue())
	Expect(requeueOf(shop)).To(BeZero())
	Eventually(func() []string { return missingChildren(shop) }).WithTimeout(timeout).Should(BeEmpty())
	Eventually(func() []string {
		var notOurs []string
		owner := getShop(shop)
		for _, o := range expectedChildren(shop) {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
			if !metav1.IsControlledBy(o, owner) {
				notOurs = append(notOurs, fmt.Sprintf("%T %s", o, o.GetName()))
			}
		}
		return notOurs
	}).WithTimeout(timeout).Should(BeEmpty())
	Eventually(func() string {
		markAvailable(k8sClient, shop)
		return conditionOf(shop, ConditionReady)()
	}).WithTimeout(timeout).Should(Equal("True/Available"))
	Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
}
