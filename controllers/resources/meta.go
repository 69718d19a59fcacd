// Package resources builds the objects a Shop is made of. Every builder is a pure
// function of the Shop (and of values read beforehand, such as existing credentials):
// it talks to no API server, so each is tested with plain table tests and the
// reconciler only decides the order and applies the result.
package resources

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// Label keys and values carried by every child of a Shop.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// LabelShop names the Shop a Secret belongs to. The controller caches only Secrets
	// carrying it, so an external store's Secret must carry it too to be seen.
	LabelShop = "commerce.shopkeeper.dev/shop"

	// LabelEngine on the in-cluster document store's claim names the engine whose data it
	// holds (shopv1.EngineMongoDB or shopv1.EngineFerretDB): the other cannot read it.
	LabelEngine = "commerce.shopkeeper.dev/engine"

	// ManagedBy is the value of LabelManagedBy: the controller's cache selects on it.
	ManagedBy = "shopkeeper"
	// PartOf is the value of LabelPartOf.
	PartOf = "shopkeeper"

	// ChecksumAnnotation on a pod template holds a digest of the settings and secret
	// values the pod reads at start, so a change to any of them rolls the pods.
	ChecksumAnnotation = "commerce.shopkeeper.dev/config-checksum"
)

// Component names, used in object names (<shop>-<component>) and labels.
const (
	Gateway  = "gateway"
	User     = "user"
	Product  = "product"
	Order    = "order"
	Payment  = "payment"
	MongoDB  = "mongodb"
	RabbitMQ = "rabbitmq"

	// Credentials and Connections name the Secrets' component label.
	credentials = "credentials"
	connections = "connections"
)

// Name is the name of a Shop's child: <shop>-<suffix>.
func Name(shop *shopv1.Shop, suffix string) string {
	return shop.Name + "-" + suffix
}

// SelectorLabels select the pods of one component of one Shop. They never change
// once a Deployment or StatefulSet exists (their selectors are immutable).
func SelectorLabels(shop *shopv1.Shop, component string) map[string]string {
	return map[string]string{
		LabelName:     component,
		LabelInstance: shop.Name,
	}
}

// Labels are the labels of every child of a Shop that belongs to component.
func Labels(shop *shopv1.Shop, component string) map[string]string {
	l := SelectorLabels(shop, component)
	l[LabelComponent] = component
	l[LabelPartOf] = PartOf
	l[LabelManagedBy] = ManagedBy
	l[LabelShop] = shop.Name
	return l
}

// objectMeta is the metadata of a child: name, namespace, labels and the controller
// owner reference that makes deleting the Shop delete it.
func objectMeta(shop *shopv1.Shop, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       shop.Namespace,
		Labels:          Labels(shop, component),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(shop, shopv1.GroupVersion.WithKind("Shop"))},
	}
}
