package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// The manager of the suite watches only the namespaces of this pool, which the
// specs take one at a time; unwatchedNamespace is left to reconcilers the specs
// drive by hand, so that what they count is theirs alone.
const (
	namespacePool      = 80
	unwatchedNamespace = "shops-unwatched"
)

var (
	cfg       *rest.Config
	k8sClient client.Client // direct to the API server, no cache
	scheme    = runtime.NewScheme()
	testEnv   *envtest.Environment
	ctx       context.Context
	cancel    context.CancelFunc
	nextNS    atomic.Int32
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		Fail("KUBEBUILDER_ASSETS is not set: run `make test`, which builds kube-apiserver, etcd " +
			"and kubectl once (hack/kube-binaries.sh) and points KUBEBUILDER_ASSETS at them")
	}
	ctx, cancel = context.WithCancel(context.Background())

	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(shopv1.AddToScheme(scheme))

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// Every Service takes an address, and no garbage collector runs here to free those
	// of a deleted Shop: envtest's default range (a /24) holds about 36 Shops.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	// OpenShift's default: setting an owner reference asks for delete on the object.
	testEnv.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	watched := []string{}
	for i := range namespacePool {
		watched = append(watched, poolNamespace(i))
	}
	for _, ns := range append(watched, unwatchedNamespace) {
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}

	mgr, err := ctrl.NewManager(asOperator(ctx, cfg), ctrl.Options{
		Scheme:  scheme,
		Cache:   CacheOptions(watched...),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect((&ShopReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("shopkeeper"),
	}).SetupWithManager(ctx, mgr)).To(Succeed())

	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	// Specs measure the controller's work, not the manager's start.
	Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
})

// asOperator returns cfg acting as the operator's ServiceAccount, bound to the manager's
// ClusterRole as config/rbac makes it from the controllers' RBAC markers and nothing else:
// a call the role does not allow fails the specs, as it would fail in a cluster.
func asOperator(ctx context.Context, cfg *rest.Config) *rest.Config {
	GinkgoHelper()
	const namespace, name = "shopkeeper-system", "controller-manager"
	raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var role rbacv1.ClusterRole
	Expect(yaml.UnmarshalStrict(raw, &role)).To(Succeed())
	Expect(k8sClient.Create(ctx, &role)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
	})).To(Succeed())
	operator := rest.CopyConfig(cfg)
	operator.Impersonate = rest.ImpersonationConfig{
		UserName: serviceaccount.MakeUsername(namespace, name),
		Groups:   append(serviceaccount.MakeGroupNames(namespace), user.AllAuthenticated),
	}
	// Connections of its own: client-go shares one transport among configs that differ only
	// in impersonation, and the manager's watches (eight kinds in each of the pool's
	// namespaces, over 500) keep those HTTP/2 connections at the API server's stream limit. A
	// spec's request riding on them was now and then refused under load (stream error
	// PROTOCOL_ERROR, the server's over_max_streams); the manager retries such a reconcile,
	// a spec's assertion does not.
	operator.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return operator
}

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

func poolNamespace(i int) string { return fmt.Sprintf("shops-%d", i) }

// takeNamespace hands a spec a namespace of its own that the manager watches.
func takeNamespace() string {
	i := int(nextNS.Add(1)) - 1
	Expect(i).To(BeNumerically("<", namespacePool), "raise namespacePool: every spec takes one namespace")
	return poolNamespace(i)
}
