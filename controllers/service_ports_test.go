package controllers

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// childEvents keeps, instead of sending them, the Events a reconcile records, each as
// "<reason> <kind> <name>" of the child it is about. Reconciles by hand run one at a
// time, so it needs no lock.
type childEvents []string

func (e *childEvents) Eventf(_, related runtime.Object, _, reason, _, _ string, _ ...any) {
	if child, ok := related.(client.Object); ok {
		*e = append(*e, reason+" "+kindOf(child)+" "+child.GetName())
	}
}

var _ = Describe("A gateway Service reachable from outside the cluster", func() {
	// The API server allocates the node ports (and, for a LoadBalancer keeping its
	// clients' addresses, the health-check node port) the builders leave at zero: those
	// are not drift, and a reconcile that finds the Service otherwise as desired must
	// not write it, nor tell of an update that changed nothing.
	DescribeTable("is left alone once as desired, keeps its node ports, and still follows a change of type",
		func(from, to corev1.ServiceType) {
			shop := minimalShop(unwatchedNamespace, "ports-"+strings.ToLower(string(from)))
			shop.Spec.Gateway.Service.Type = from
			r, _, reconcileShop := drivenByHand(shop)
			events := &childEvents{}
			r.Recorder = events
			key := client.ObjectKey{Namespace: shop.Namespace, Name: resources.Name(shop, resources.Gateway)}
			updated := "Updated Service " + key.Name
			gateway := func() *corev1.Service {
				svc := &corev1.Service{}
				ExpectWithOffset(1, k8sClient.Get(ctx, key, svc)).To(Succeed())
				return svc
			}
			// settled reconciles shop a few times and expects the Service untouched.
			settled := func(want *corev1.Service) {
				*events = nil
				for range 3 {
					_, err := reconcileShop()
					ExpectWithOffset(1, err).NotTo(HaveOccurred())
				}
				ExpectWithOffset(1, *events).NotTo(ContainElement(updated))
				got := gateway()
				ExpectWithOffset(1, got.ResourceVersion).To(Equal(want.ResourceVersion), "the Service was written")
				ExpectWithOffset(1, got.Spec.Ports).To(Equal(want.Spec.Ports))
				ExpectWithOffset(1, got.Spec.HealthCheckNodePort).To(Equal(want.Spec.HealthCheckNodePort))
			}

			_, err := reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(*events).To(ContainElement("Created Service " + key.Name))
			made := gateway()
			Expect(made.Spec.Ports[0].NodePort).NotTo(BeZero())
			Expect(made.Spec.ExternalTrafficPolicy).To(Equal(corev1.ServiceExternalTrafficPolicyLocal))
			Expect(made.Spec.HealthCheckNodePort != 0).To(Equal(from == corev1.ServiceTypeLoadBalancer),
				"a LoadBalancer keeping its clients' addresses has a health-check node port, a NodePort none")
			settled(made)

			By("switching to " + string(to))
			updateShop(shop, func(s *shopv1.Shop) { s.Spec.Gateway.Service.Type = to })
			*events = nil
			_, err = reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(*events).To(ContainElement(updated))
			switched := gateway()
			Expect(switched.Spec.Type).To(Equal(to))
			Expect(switched.Spec.Ports[0].NodePort).To(Equal(made.Spec.Ports[0].NodePort), "the node port moved")
			Expect(switched.Spec.HealthCheckNodePort != 0).To(Equal(to == corev1.ServiceTypeLoadBalancer))
			settled(switched)
		},
		Entry("NodePort, then LoadBalancer", corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer),
		Entry("LoadBalancer, then NodePort", corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort),
	)
})

var _ = Describe("A store's storage class", func() {
	// An empty class on a claim means "no class": nothing provisions it and it stays
	// Pending for ever. The cluster's default class is asked for by leaving the field out.
	DescribeTable("is refused when empty, with a message a person understands",
		func(store string, edit func(*shopv1.Shop, *shopv1.StorageSpec)) {
			shop := minimalShop(unwatchedNamespace, "emptyclass")
			edit(shop, &shopv1.StorageSpec{StorageClassName: ptr.To("")})
			err := k8sClient.Create(ctx, shop)
			if err == nil {
				Expect(k8sClient.Delete(ctx, shop)).To(Succeed())
			}
			Expect(err).To(MatchError(ContainSubstring("spec." + store + ".storage.storageClassName in body should be at least 1 chars long")))
		},
		Entry("mongodb", "mongodb", func(s *shopv1.Shop, st *shopv1.StorageSpec) { s.Spec.MongoDB.Storage = st }),
		Entry("rabbitmq", "rabbitmq", func(s *shopv1.Shop, st *shopv1.StorageSpec) { s.Spec.RabbitMQ.Storage = st }),
	)
})
