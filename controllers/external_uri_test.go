package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

var _ = Describe("An external store's URI", func() {
	It("is refused, and the running pods keep the last good one, when the services' clients could not use it", func() {
		ns := takeNamespace()
		const password = "s3cret"
		mongo := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mongo", Labels: map[string]string{resources.LabelShop: "badurl"}},
			StringData: map[string]string{"uri": "mongodb://u:" + password + "@db.example.com:27017/"},
		}
		rabbit := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rabbit", Labels: map[string]string{resources.LabelShop: "badurl"}},
			StringData: map[string]string{"uri": "amqp://u:" + password + "@mq.example.com:5672/shop"},
		}
		Expect(k8sClient.Create(ctx, mongo)).To(Succeed())
		Expect(k8sClient.Create(ctx, rabbit)).To(Succeed())
		shop := minimalShop(ns, "badurl")
		shop.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: mongo.Name}}
		shop.Spec.RabbitMQ.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: rabbit.Name}}
		createShopAndWait(shop)
		markAvailable(k8sClient, shop)
		Eventually(conditionOf(shop, ConditionReady)).WithTimeout(timeout).Should(Equal("True/Available"))
		good := secretData(shop, resources.ConnectionsSecretName(shop))

		for _, bad := range []struct {
			field    string
			secret   *corev1.Secret
			uri, why string
		}{
			{"rabbitmq", rabbit, "http://u:" + password + "@mq.example.com:5672/shop", "scheme"},
			{"rabbitmq", rabbit, "amqp://u:" + password + "@mq.example.com:99999/shop", "port 99999"},
			{"mongodb", mongo, "mongodb+srv://u:" + password + "@db.example.com:27017/", "no port"},
			{"mongodb", mongo, "mongodb://u:" + password + "@db.example.com:99999/", "port"},
			// A literal "%" in the TLS key's password: the driver quotes the option's value.
			{"mongodb", mongo, "mongodb://db.example.com:27017/?tls=true&tlsCertificateKeyFilePassword=" + password + "%rest", "invalid option value"},
		} {
			By(bad.secret.Name + ": " + bad.uri)
			setURI(bad.secret, bad.uri)
			Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("True/ExternalSecretInvalid"))
			cond := meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded)
			Expect(cond.Message).To(And(ContainSubstring(bad.field+".external: Secret "+bad.secret.Name), ContainSubstring(bad.why)))
			Expect(cond.Message).NotTo(ContainSubstring(password))
			Expect(secretData(shop, resources.ConnectionsSecretName(shop))).To(Equal(good), "the pods were given the unusable URI")

			setURI(bad.secret, string(bad.secret.Data["uri"]))
			Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(Equal("False/AsExpected"))
		}
	})
})

var _ = It("An external store's new URI rolls the services only once the connections Secret holds it", func() {
	ns := takeNamespace()
	mongo := labelledURISecret(ns, "mongo", "held", "mongodb://u:pw@db1.example.com:27017/")
	shop := minimalShop(ns, "held")
	shop.Spec.MongoDB.External = &shopv1.ExternalSpec{SecretRef: shopv1.SecretKeyRef{Name: mongo.Name}}
	createShopAndWait(shop)
	checksum := func() string { return podTemplate(shop, resources.User).Annotations[resources.ChecksumAnnotation] }
	Eventually(checksum).WithTimeout(timeout).ShouldNot(BeEmpty())
	before := checksum()

	// The connections Secret made immutable: the operator's write of the new URI is refused.
	conn := &corev1.Secret{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: resources.ConnectionsSecretName(shop)}, conn)).To(Succeed())
	conn.Immutable = ptr.To(true)
	Expect(k8sClient.Update(ctx, conn)).To(Succeed())
	setURI(mongo, "mongodb://u:pw@db2.example.com:27017/")
	Eventually(conditionOf(shop, ConditionDegraded)).WithTimeout(timeout).Should(HavePrefix("True/"))
	Expect(string(secretData(shop, conn.Name)[resources.MongoDBURIKey(resources.User)])).To(ContainSubstring("db1"))
	// Rolled now, the pods would read db1 again, and not roll when db2 is written.
	Consistently(checksum).WithTimeout(2*time.Second).Should(Equal(before), "the pods roll while the Secret they read is unchanged")
})

// setURI sets the uri key of secret to uri, keeping the value before in secret.Data.
func setURI(secret *corev1.Secret, uri string) {
	GinkgoHelper()
	current := &corev1.Secret{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), current)).To(Succeed())
	secret.Data = current.Data
	update := current.DeepCopy()
	update.Data = map[string][]byte{"uri": []byte(uri)}
	Expect(k8sClient.Update(ctx, update)).To(Succeed())
}
