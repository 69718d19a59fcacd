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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// TestScrapersKeptAcrossAStricterAPIServer: Kubernetes 1.36 refuses a CIDR with bits past its
// prefix (StrictIPCIDRValidation), such as 10.1.2.3/16, which 1.35 took in a NetworkPolicy;
// a NetworkPolicy that holds one keeps it through every update (the API server ratchets
// it). A Shop whose services' NetworkPolicies were made before the cluster's upgrade went on
// being reconciled; the dry run of its scrapers, a create, was refused, and the Shop was
// ChildRejected with no child changed.
func TestScrapersKeptAcrossAStricterAPIServer(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set (hack/kube-binaries.sh)")
	}
	ctx := context.Background()
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
			t.Fatalf("the NetworkPolicy of %s before the upgrade: %v", svc, err)
		}
	}

	// The cluster upgraded: the same etcd, an API server with the stricter rule.
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
	np := &networkingv1.NetworkPolicy{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(resources.NetworkPolicy(shop, resources.User)), np); err != nil {
		t.Fatal(err)
	}
	np.Spec = resources.NetworkPolicy(shop, resources.User).Spec
	if err := c.Update(ctx, np, client.DryRunAll); err != nil {
		t.Fatalf("the API server refuses the update of the NetworkPolicy it holds: %v", err)
	}

	r := &ShopReconciler{Client: c, APIReader: c, Scheme: sch}
	p, err := r.scrapersRefused(ctx, shop)
	if err != nil {
		t.Fatal(err)
	}
	if p != nil {
		t.Fatalf("scrapers its NetworkPolicies hold, and may keep, refused: %s: %s", p.Reason, p.Message)
	}

	// A Shop with the same scrapers and no NetworkPolicy yet: its NetworkPolicies would be
	// refused, and so are its scrapers.
	other := minimalShop("upgraded", "other")
	other.Spec.Monitoring.Scrapers = shop.Spec.Monitoring.Scrapers
	if err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	if p, err := r.scrapersRefused(ctx, other); err != nil || p == nil || p.Reason != ReasonChildRejected {
		t.Fatalf("scrapers no new NetworkPolicy may hold: %v, %v; want ChildRejected", p, err)
	}
}
