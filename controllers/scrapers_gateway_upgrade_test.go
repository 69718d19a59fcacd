package controllers

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// TestGatewayScrapersAcrossAStricterAPIServer: a Shop whose scrapers hold a CIDR Kubernetes
// 1.36 refuses in a new NetworkPolicy (10.1.2.3/16), made before: its services' policies keep
// it (the API server ratchets it), and the dry run of its scrapers passes. The gateway's
// NetworkPolicy, made when it admitted anyone to its one port and no scraper, now asked to
// admit the scrapers to its metrics port, must be written too.
func TestGatewayScrapersAcrossAStricterAPIServer(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set (hack/kube-binaries.sh)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sch := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(sch))
	utilruntime.Must(shopv1.AddToScheme(sch))
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	api := env.ControlPlane.GetAPIServer()
	api.Configure().Set("feature-gates", "StrictIPCIDRValidation=false") // as before 1.36
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: sch})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "upgraded"}}); err != nil {
		t.Fatal(err)
	}
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

	if err := api.Stop(); err != nil {
		t.Fatal(err)
	}
	api.Configure().Set("feature-gates", "StrictIPCIDRValidation=true")
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	admin, err := env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = client.New(admin.Config(), client.Options{Scheme: sch}); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(shop), shop); err != nil {
		t.Fatal(err)
	}
	r := &ShopReconciler{Client: c, APIReader: c, Scheme: sch, Recorder: events.NewFakeRecorder(100)}
	if p, err := r.scrapersRefused(ctx, shop); err != nil || p != nil {
		t.Fatalf("scrapers refused: %v %v", p, err)
	}
	if err := r.apply(ctx, shop, resources.NetworkPolicy(shop, resources.Gateway)); err != nil {
		t.Fatalf("the gateway's NetworkPolicy, after the scrapers passed: %v", err)
	}
}
