package gateway

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
)

// TestOperatorsEnvironmentIsAccepted checks the contract between the operator and the gateway:
// the environment the operator gives the gateway's container, for Shops at the bounds the Shop
// API admits, is a configuration the gateway accepts, with the values the Shop asked for. A
// configuration the gateway refused would leave its pods crash-looping behind a valid Shop.
func TestOperatorsEnvironmentIsAccepted(t *testing.T) {
	tests := []struct {
		name    string
		gateway shopv1.GatewaySpec
	}{
		{name: "the defaults"},
		{name: "the largest timeout, limit and window", gateway: shopv1.GatewaySpec{
			UpstreamTimeout: &metav1.Duration{Duration: 5 * time.Minute},
			RateLimit:       shopv1.RateLimitSpec{Requests: ptr.To[int32](1_000_000), Window: &metav1.Duration{Duration: 24 * time.Hour}},
		}},
		{name: "the smallest timeout, limit and window, and trusted proxies", gateway: shopv1.GatewaySpec{
			UpstreamTimeout: &metav1.Duration{Duration: 100 * time.Millisecond},
			RateLimit:       shopv1.RateLimitSpec{Requests: ptr.To[int32](1), Window: &metav1.Duration{Duration: time.Second}},
			TrustedProxies:  []string{"10.0.0.0/8", "2001:db8::/32"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop := &shopv1.Shop{
				ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "shops"},
				Spec:       shopv1.ShopSpec{Version: "v0.1.0", Image: shopv1.DefaultImage, Gateway: tt.gateway},
			}
			d := resources.AppWorkload(shop, resources.Gateway, &corev1.Secret{}).(*appsv1.Deployment)
			var environ []string
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.ValueFrom != nil {
					t.Fatalf("%s comes from %v: the gateway reads no Secret", e.Name, e.ValueFrom)
				}
				environ = append(environ, e.Name+"="+e.Value)
			}
			var cfg Config
			if err := config.LoadFrom(&cfg, environ); err != nil {
				t.Fatalf("the gateway refuses the operator's environment %q: %v", environ, err)
			}
			if g := tt.gateway; g.UpstreamTimeout != nil && cfg.UpstreamTimeout != g.UpstreamTimeout.Duration {
				t.Errorf("upstream timeout %s, want %s", cfg.UpstreamTimeout, g.UpstreamTimeout.Duration)
			}
			if g := tt.gateway; g.RateLimit.Requests != nil && (cfg.RateLimitRequests != int(*g.RateLimit.Requests) || cfg.RateLimitWindow != g.RateLimit.Window.Duration) {
				t.Errorf("rate limit %d per %s, want %d per %s", cfg.RateLimitRequests, cfg.RateLimitWindow, *g.RateLimit.Requests, g.RateLimit.Window.Duration)
			}
			if _, err := New(&cfg, nil); err != nil {
				t.Errorf("New: %v", err)
			}
		})
	}
}
