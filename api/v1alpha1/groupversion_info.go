// Package v1alpha1 holds the Shop API: one resource that describes a whole shop
// (gateway, four services, MongoDB and RabbitMQ) for the Shopkeeper operator.
//
// +kubebuilder:object:generate=true
// +groupName=commerce.shopkeeper.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the Shop API.
	GroupVersion = schema.GroupVersion{Group: "commerce.shopkeeper.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API's Go types with a runtime.Scheme. It is
	// apimachinery's own builder, so that importing the API pulls in no controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers Shop and ShopList, and the meta types (ListOptions,
// WatchEvent, ...) clients send along with them, under GroupVersion.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Shop{}, &ShopList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
