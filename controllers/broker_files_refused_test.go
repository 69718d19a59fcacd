package controllers

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// The broker reads its files (the Secret <shop>-rabbitmq-config, mounted by subPath) only at
// start, and restarts for a change of them only through its pod template's checksum: that
// checksum must be of the files its Secret holds, not of the files the controller could not
// write, else the broker restarts onto the old files, and never again once the new ones are
// written.
var _ = Describe("The broker's files, when their Secret's write is refused", func() {
	DescribeTable("restart the broker only once its Secret holds them",
		func(block func(ns, name string), unblock func(ns, name string), reason string) {
			shop := minimalShop(unwatchedNamespace, "brokerfiles-"+strings.ToLower(reason))
			_, _, reconcileShop := drivenByHand(shop)
			_, err := reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			checksum := func() string {
				return podTemplate(shop, resources.RabbitMQ).Annotations[resources.ChecksumAnnotation]
			}
			before := checksum()
			config := resources.RabbitMQConfigSecretName(shop)
			block(shop.Namespace, config)

			By("a new password for the order service's broker user, which the README says may be set in its Secret")
			users := &corev1.Secret{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: resources.RabbitMQUsersSecretName(shop)}, users)).To(Succeed())
			users.Data[resources.RabbitMQPasswordKey(resources.Order)] = []byte("a-password-set-by-hand")
			Expect(k8sClient.Update(ctx, users)).To(Succeed())
			_, err = reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("True/" + reason))
			// The order service is given the new password at once: its Secret is written.
			Expect(string(secretData(shop, resources.ConnectionsSecretName(shop))[resources.RabbitMQServiceURLKey(resources.Order)])).
				To(ContainSubstring("a-password-set-by-hand"))
			Expect(checksum()).To(Equal(before), "the broker restarts onto files its Secret does not hold: the old users' passwords")

			By("the write let through: the broker restarts, to import the new password")
			unblock(shop.Namespace, config)
			_, err = reconcileShop()
			Expect(err).NotTo(HaveOccurred())
			Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
			Expect(checksum()).NotTo(Equal(before), "the broker keeps the old password, and the order service, given the new one, is locked out")
		},
		Entry("made immutable by hand, then deleted as the Shop's message leads to", func(ns, name string) {
			s := &corev1.Secret{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s)).To(Succeed())
			s.Immutable = ptr.To(true)
			Expect(k8sClient.Update(ctx, s)).To(Succeed())
		}, func(ns, name string) {
			Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
		}, ReasonChildRejected),
		Entry("denied by an admission policy, then lifted", denySecretUpdates, liftSecretUpdates, ReasonChildForbidden),
	)
})

// denySecretUpdates makes a ValidatingAdmissionPolicy, bound to namespace ns, that denies
// every update of the Secret name, and waits until it is in force.
func denySecretUpdates(ns, name string) {
	GinkgoHelper()
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-" + name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				ResourceNames: []string{name},
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
				},
			}}},
			FailurePolicy: ptr.To(admissionv1.Fail),
			Validations:   []admissionv1.Validation{{Expression: "false", Message: "no, said the policy"}},
		},
	}
	bindInNamespace(policy, ns)
	Eventually(func() error {
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			return err
		}
		return k8sClient.Update(ctx, s, client.DryRunAll)
	}).WithTimeout(timeout).Should(MatchError(ContainSubstring("no, said the policy")), "the policy is never in force")
}

// liftSecretUpdates removes what denySecretUpdates made, and waits until an update of the
// Secret name goes through again.
func liftSecretUpdates(ns, name string) {
	GinkgoHelper()
	Expect(k8sClient.Delete(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "deny-" + name}})).To(Succeed())
	Expect(k8sClient.Delete(ctx, &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny-" + name}})).To(Succeed())
	Eventually(func() error {
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			return err
		}
		return k8sClient.Update(ctx, s, client.DryRunAll)
	}).WithTimeout(timeout).Should(Succeed())
}
