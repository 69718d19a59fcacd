package controllers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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
// ChildRejected with no child changed. So was one whose NetworkPolicy had lost the
// operator's labels: the manager's cache holds only labelled NetworkPolicies
// (CacheOptions), yet apply takes such a one back with an update (read from the API server
// after its create is refused as AlreadyExists), and the labels were never put back.
func TestScrapersKeptAcrossAStricterAPIServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lenient := startLenientAPIServer(ctx, t)
	sch, c := lenient.scheme, lenient.client
	scrapers := []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.2.3/16"}}}
	shop, unlabelled, other := minimalShop("upgraded", "shop"), minimalShop("upgraded", "unlabelled"), minimalShop("upgraded", "other")
	for _, s := range []*shopv1.Shop{shop, unlabelled, other} {
		s.Spec.Monitoring.Scrapers = scrapers
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, svc := range []string{resources.User, resources.Product, resources.Order, resources.Payment} {
		if err := c.Create(ctx, resources.NetworkPolicy(shop, svc)); err != nil {
			t.Fatalf("the NetworkPolicy of %s before the upgrade: %v", svc, err)
		}
	}
	np := resources.NetworkPolicy(unlabelled, resources.User)
	delete(np.Labels, resources.LabelManagedBy) // controlled, but out of the cache's sight
	if err := c.Create(ctx, np); err != nil {
		t.Fatal(err)
	}

	// The cluster upgraded: the same etcd, an API server with the stricter rule.
	adminConfig := lenient.upgrade(t)
	c = lenient.client
	// The manager's client: reads from a cache filtered as the manager's is.
	opts := CacheOptions()
	opts.Scheme = sch
	informers, err := cache.New(adminConfig, opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	cached, err := client.New(adminConfig, client.Options{Scheme: sch, Cache: &client.CacheOptions{Reader: informers}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*shopv1.Shop{shop, unlabelled, other} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			t.Fatal(err)
		}
	}
	if err := cached.Get(ctx, client.ObjectKeyFromObject(np), &networkingv1.NetworkPolicy{}); err == nil {
		t.Fatal("the cache sees a NetworkPolicy without the operator's labels: no test")
	}
	held := &networkingv1.NetworkPolicy{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(resources.NetworkPolicy(shop, resources.User)), held); err != nil {
		t.Fatal(err)
	}
	held.Spec = resources.NetworkPolicy(shop, resources.User).Spec
	if err := c.Update(ctx, held, client.DryRunAll); err != nil {
		t.Fatalf("the API server refuses the update of the NetworkPolicy it holds: %v", err)
	}

	r := &ShopReconciler{Client: cached, APIReader: c, Scheme: sch}
	for _, s := range []*shopv1.Shop{shop, unlabelled} {
		p, err := r.scrapersRefused(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if p != nil {
			t.Fatalf("%s: scrapers its NetworkPolicy holds, and may keep, refused: %s: %s", s.Name, p.Reason, p.Message)
		}
	}
	// A Shop with the same scrapers and no NetworkPolicy yet: its NetworkPolicies would be
	// refused, and so are its scrapers.
	if p, err := r.scrapersRefused(ctx, other); err != nil || p == nil || p.Reason != ReasonChildRejected {
		t.Fatalf("scrapers no new NetworkPolicy may hold: %v, %v; want ChildRejected", p, err)
	}
}

// apiServerMinor is the minor version of the kube-apiserver in KUBEBUILDER_ASSETS.
func apiServerMinor(t *testing.T) int {
	t.Helper()
	out, err := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-apiserver"), "--version").Output()
	if err != nil {
		t.Fatalf("kube-apiserver --version: %v", err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "Kubernetes v%d.%d", &major, &minor); err != nil || major != 1 {
		t.Fatalf("kube-apiserver --version: %q is no Kubernetes 1.x version", out)
	}
	return minor
}

// lenientAPIServer is an API server started without Kubernetes 1.36's stricter CIDR rule
// (StrictIPCIDRValidation), as a cluster's before its upgrade, with the namespace
// "upgraded"; client is an admin's client of it, in scheme.
type lenientAPIServer struct {
	env    *envtest.Environment
	scheme *runtime.Scheme
	client client.Client
}

func startLenientAPIServer(ctx context.Context, t *testing.T) *lenientAPIServer {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set (hack/kube-binaries.sh)")
	}
	// The upgrade is to 1.36's rule: an older API server has no such feature gate (1.32
	// refuses to start with it) or only its alpha (1.33 to 1.35), which ratchets nothing.
	if minor := apiServerMinor(t); minor < 36 {
		t.Skipf("kube-apiserver 1.%d of KUBEBUILDER_ASSETS predates StrictIPCIDRValidation's default (1.36)", minor)
	}
	sch := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(sch))
	utilruntime.Must(shopv1.AddToScheme(sch))
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	env.ControlPlane.GetAPIServer().Configure().Set("feature-gates", "StrictIPCIDRValidation=false") // as before 1.36
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
	return &lenientAPIServer{env: env, scheme: sch, client: c}
}

// upgrade restarts the API server, on the same etcd, with the stricter rule, points client
// at it and returns the config of an admin of it.
func (l *lenientAPIServer) upgrade(t *testing.T) *rest.Config {
	t.Helper()
	api := l.env.ControlPlane.GetAPIServer()
	if err := api.Stop(); err != nil {
		t.Fatal(err)
	}
	api.Configure().Set("feature-gates", "StrictIPCIDRValidation=true")
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	admin, err := l.env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.client, err = client.New(admin.Config(), client.Options{Scheme: l.scheme}); err != nil {
		t.Fatal(err)
	}
	return admin.Config()
}
