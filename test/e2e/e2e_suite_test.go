//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// settings are what the environment says about the cluster under test (see the
// package documentation).
type settings struct {
	kubectl       string
	managerImage  string
	shopVersion   string
	servicesImage string
	engine        shopv1.MongoDBEngine
	mongoDBImage  string
	rabbitMQImage string
	readyTimeout  time.Duration
	keepOperator  bool
}

var (
	env       settings
	repoRoot  string
	restCfg   *rest.Config
	k8sClient client.Client // straight to the API server: no cache, so every read is current
	clientset *kubernetes.Clientset
	scheme    = runtime.NewScheme()
	operator  *operatorInstall
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Shopkeeper end-to-end suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	// client-go's port-forward and controller-runtime report through klog and logr:
	// into GinkgoWriter, shown with -ginkgo.v or when a spec fails.
	logger := logr.FromSlogHandler(slog.NewTextHandler(GinkgoWriter, nil))
	klog.SetLogger(logger)
	logf.SetLogger(logger)

	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(shopv1.AddToScheme(scheme))

	var err error
	repoRoot, err = filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())
	env, err = readSettings(ctx)
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("settings", env.String())

	restCfg, err = config.GetConfig()
	Expect(err).NotTo(HaveOccurred(), "no cluster: set KUBECONFIG")
	k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	clientset, err = kubernetes.NewForConfig(restCfg)
	Expect(err).NotTo(HaveOccurred())
	out, err := kubectl(ctx, "version")
	Expect(err).NotTo(HaveOccurred(), "the cluster of the current kubeconfig does not answer: %s", out)

	// Whatever fails, in the suite's setup or in a spec, the operator's state and logs
	// are in the report.
	DeferOnFailure(dumpOperatorState, NodeTimeout(time.Minute))
	operator, err = newOperatorInstall(ctx)
	Expect(err).NotTo(HaveOccurred())
	operator.install(ctx)
}, NodeTimeout(20*time.Minute))

var _ = AfterSuite(func(ctx SpecContext) {
	if operator != nil {
		operator.uninstall(ctx)
	}
}, NodeTimeout(5*time.Minute))

// readSettings reads the environment, with the defaults a kind cluster and the local
// cluster share.
func readSettings(ctx context.Context) (settings, error) {
	s := settings{
		kubectl:       os.Getenv("KUBECTL"),
		managerImage:  envOr("E2E_MANAGER_IMAGE", "ghcr.io/shopkeeper-dev/shopkeeper:v0.1.0"),
		shopVersion:   envOr("E2E_SHOP_VERSION", "v0.1.0"),
		servicesImage: os.Getenv("E2E_SERVICES_IMAGE"),
		engine:        shopv1.MongoDBEngine(envOr("E2E_MONGODB_ENGINE", string(shopv1.EngineFerretDB))),
		mongoDBImage:  os.Getenv("E2E_MONGODB_IMAGE"),
		rabbitMQImage: os.Getenv("E2E_RABBITMQ_IMAGE"),
		keepOperator:  os.Getenv("E2E_KEEP") != "",
	}
	if s.engine != shopv1.EngineMongoDB && s.engine != shopv1.EngineFerretDB {
		return s, fmt.Errorf("E2E_MONGODB_ENGINE=%q: want %s or %s", s.engine, shopv1.EngineMongoDB, shopv1.EngineFerretDB)
	}
	var err error
	if s.readyTimeout, err = time.ParseDuration(envOr("E2E_READY_TIMEOUT", "10m")); err != nil {
		return s, fmt.Errorf("E2E_READY_TIMEOUT: %w", err)
	}
	if s.kubectl == "" {
		// The kubectl `make test` builds for envtest (cached under bin/k8s).
		cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "hack", "kube-binaries.sh"), "kubectl")
		cmd.Stderr = GinkgoWriter
		dir, err := cmd.Output()
		if err != nil {
			return s, fmt.Errorf("KUBECTL is not set and hack/kube-binaries.sh kubectl failed: %w", err)
		}
		s.kubectl = filepath.Join(strings.TrimSpace(string(dir)), "kubectl")
	}
	return s, nil
}

// String shows the settings in the report, one per line.
func (s settings) String() string {
	orDefault := func(v string) string {
		if v == "" {
			return "(the operator's default)"
		}
		return v
	}
	return fmt.Sprintf("kubectl %s\nmanager image %s\nshop version %s\nservices image %s\n"+
		"MongoDB engine %s, image %s\nRabbitMQ image %s\nReady within %s\nkeep the operator: %v",
		s.kubectl, s.managerImage, s.shopVersion, orDefault(s.servicesImage),
		s.engine, orDefault(s.mongoDBImage), orDefault(s.rabbitMQImage), s.readyTimeout, s.keepOperator)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
