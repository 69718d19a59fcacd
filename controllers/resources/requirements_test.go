package resources

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

func TestInvalidResources(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name string
		edit func(*shopv1.ShopSpec)
		want string // in the error; empty: none
	}{
		{name: "none set", edit: func(*shopv1.ShopSpec) {}},
		{name: "requests below limits, extended and huge pages", edit: func(s *shopv1.ShopSpec) {
			s.Gateway.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: q("500m"), "example.com/gpu": q("1"), "hugepages-2Mi": q("4Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1"), "example.com/gpu": q("1"), "hugepages-2Mi": q("4Mi")},
			}
		}},
		{name: "a request above its limit", edit: func(s *shopv1.ShopSpec) {
			s.Gateway.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: q("2")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1")},
			}
		}, want: "spec.gateway.resources: requests.cpu (2) is above limits.cpu (1)"},
		{name: "a negative request", edit: func(s *shopv1.ShopSpec) {
			s.Services.Payment.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: q("-1Gi")}
		}, want: "spec.services.payment.resources.requests.memory: -1Gi is negative"},
		{name: "a resource no container has", edit: func(s *shopv1.ShopSpec) {
			s.MongoDB.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{"gpu": q("1")}}
		}, want: `spec.mongodb.resources.limits: "gpu" is no resource a container can have`},
		{name: "an extended resource requested without a limit", edit: func(s *shopv1.ShopSpec) {
			s.Gateway.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: q("100m"), "example.com/gpu": q("1")}
		}, want: "spec.gateway.resources: requests.example.com/gpu needs a limit, equal to it"},
		{name: "an extended resource requested below its limit", edit: func(s *shopv1.ShopSpec) {
			s.Gateway.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{"example.com/gpu": q("1")},
				Limits:   corev1.ResourceList{"example.com/gpu": q("2")},
			}
		}, want: "requests.example.com/gpu (1) must equal limits.example.com/gpu (2)"},
		{name: "huge pages alone", edit: func(s *shopv1.ShopSpec) {
			s.Services.Order.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{"hugepages-2Mi": q("4Mi")},
				Limits:   corev1.ResourceList{"hugepages-2Mi": q("4Mi")},
			}
		}, want: "spec.services.order.resources: huge pages need cpu or memory too"},
		{name: "huge pages with a memory limit only", edit: func(s *shopv1.ShopSpec) {
			s.Services.Order.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{"hugepages-2Mi": q("4Mi")},
				Limits:   corev1.ResourceList{"hugepages-2Mi": q("4Mi"), corev1.ResourceMemory: q("64Mi")},
			}
		}},
		{name: "an extended resource limited, not requested", edit: func(s *shopv1.ShopSpec) {
			s.Gateway.Resources.Limits = corev1.ResourceList{"example.com/gpu": q("1")}
		}},
		{name: "claims", edit: func(s *shopv1.ShopSpec) {
			s.Services.User.Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}}
		}, want: "spec.services.user.resources.claims"},
		{name: "a kubernetes.io resource", edit: func(s *shopv1.ShopSpec) {
			s.RabbitMQ.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{"kubernetes.io/thing": q("1")}}
		}, want: `spec.rabbitmq.resources.requests: "kubernetes.io/thing"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop := &shopv1.Shop{}
			tt.edit(&shop.Spec)
			err := InvalidResources(shop)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
