package resources

import (
	corev1 "k8s.io/api/core/v1"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// ResourceSetting is the resources a Shop sets for one component's container, and the
// field that sets them.
type ResourceSetting struct {
	Path      string // spec.gateway.resources, say
	Component string
	Resources corev1.ResourceRequirements
}

// ResourceSettings lists the resources the Shop sets, component by component; a component
// whose resources are left empty (the controller's defaults) is not listed.
func ResourceSettings(shop *shopv1.Shop) []ResourceSetting {
	s := shop.Spec
	all := []struct {
		path, component string
		r               *corev1.ResourceRequirements
	}{
		{"spec.gateway.resources", Gateway, &s.Gateway.Resources},
		{"spec.services.user.resources", User, &s.Services.User.Resources},
		{"spec.services.product.resources", Product, &s.Services.Product.Resources},
		{"spec.services.order.resources", Order, &s.Services.Order.Resources},
		{"spec.services.payment.resources", Payment, &s.Services.Payment.Resources},
		{"spec.mongodb.resources", MongoDB, s.MongoDB.Resources},
		{"spec.rabbitmq.resources", RabbitMQ, s.RabbitMQ.Resources},
	}
	var set []ResourceSetting
	for _, f := range all {
		if f.r != nil && (len(f.r.Requests) > 0 || len(f.r.Limits) > 0 || len(f.r.Claims) > 0) {
			set = append(set, ResourceSetting{Path: f.path, Component: f.component, Resources: *f.r.DeepCopy()})
		}
	}
	return set
}
