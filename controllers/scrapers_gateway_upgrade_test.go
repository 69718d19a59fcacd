package controllers

import (
	"context"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// TestGatewayScrapersAcrossAStricterAPIServer: a Shop whose scrapers hold a CIDR Kubernetes
// 1.36 refuses in a new NetworkPolicy (10.1.2.3/16), made before: its services' policies keep
// it (the API server ratchets it), and the dry run of its scrapers passes. The gateway's
// NetworkPolicy, made when it admitted anyone to its one port and no scraper, now asked to
// admit the scrapers to its metrics port, must be written too.
func TestGatewayScrapersAcrossAStricterAPIServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lenient := startLenientAPIServer(ctx, t)
	c := lenient.client
	shop := minimalShop("upgraded", "shop")
	shop.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.2.3/16"}}}
	if err := c.Create(ctx, shop); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{resources.User, resources.Product, resources.Order, resources.Payment} {
		if err := c.Create(ctx, resources.NetworkPolicy(shop, svc)); err != nil {
			t.Fatal(err)
		}
	}
	gateway := resources.NetworkPolicy(shop, resources.Gateway)
	gateway.Spec.Ingress = gateway.Spec.Ingress[:1] // as made before the metrics port
	if err := c.Create(ctx, gateway); err != nil {
		t.Fatal(err)
	}

	lenient.upgrade(t)
	c = lenient.client
	if err := c.Get(ctx, client.ObjectKeyFromObject(shop), shop); err != nil {
		t.Fatal(err)
	}
	r := &ShopReconciler{Client: c, APIReader: c, Scheme: lenient.scheme, Recorder: events.NewFakeRecorder(100)}
	if p, err := r.scrapersRefused(ctx, shop); err != nil || p != nil {
		t.Fatalf("scrapers refused: %v %v", p, err)
	}
	if err := r.apply(ctx, shop, resources.NetworkPolicy(shop, resources.Gateway)); err != nil {
		t.Fatalf("the gateway's NetworkPolicy, after the scrapers passed: %v", err)
	}
}
