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
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// TestScrapersKeptOnAnUnlabelledNetworkPolicy: the manager's cache holds only the
// NetworkPolicies with the operator's labels (CacheOptions). A NetworkPolicy the Shop
// controls whose labels were removed is out of its sight, yet apply takes it back with an
// update (read from the API server after the create is refused as AlreadyExists). Its
// scrapers, kept through updates since the API server tightened its rules, were dry-run as
// a create, refused, and the Shop was ChildRejected with no child changed: the labels were
// never put back.
func TestScrapersKeptOnAnUnlabelledNetworkPolicy(t *testing.T) {
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
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}}); err != nil {
		t.Fatal(err)
	}
	shop := minimalShop("unlabelled", "shop")
	shop.Spec.Monitoring.Scrapers = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.2.3/16"}}}
	if err := c.Create(ctx, shop); err != nil {
		t.Fatal(err)
	}
	np := resources.NetworkPolicy(shop, resources.User)
	delete(np.Labels, resources.LabelManagedBy) // controlled, but out of the cache's sight
	if err := c.Create(ctx, np); err != nil {
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
	opts := CacheOptions()
	opts.Scheme = sch
	informers, err := cache.New(admin.Config(), opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	cached, err := client.New(admin.Config(), client.Options{Scheme: sch, Cache: &client.CacheOptions{Reader: informers}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(shop), shop); err != nil {
		t.Fatal(err)
	}
	if err := cached.Get(ctx, client.ObjectKeyFromObject(np), &networkingv1.NetworkPolicy{}); err == nil {
		t.Fatal("the cache sees a NetworkPolicy without the operator's labels: no test")
	}

	r := &ShopReconciler{Client: cached, APIReader: c, Scheme: sch}
	p, err := r.scrapersRefused(ctx, shop)
	if err != nil {
		t.Fatal(err)
	}
	if p != nil {
		t.Fatalf("scrapers the Shop's NetworkPolicy holds, and may keep, refused: %s: %s", p.Reason, p.Message)
	}
}
