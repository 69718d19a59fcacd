// Package v1alpha1 holds the Shop API: one resource that describes a whole shop
// (gateway, four services, MongoDB and RabbitMQ) for the Shopkeeper operator.
//
// +kubebuilder:object:generate=true
// +groupName=commerce.shopkeeper.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the Shop API.
	GroupVersion = schema.GroupVersion{Group: "commerce.shopkeeper.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API's Go types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
