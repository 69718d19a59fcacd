// Command manager runs the Shopkeeper operator: the Shop controller, its health
// probes and metrics, optionally with leader election.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers"
)

func main() {
	var (
		metricsAddr, probeAddr, leaderElectionNamespace, namespaces string
		metricsCertPath, metricsCertName, metricsCertKey            string
		leaderElection, secureMetrics, enableHTTP2                  bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "address the Prometheus metrics endpoint binds to; 0 disables it")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"serve metrics over HTTPS to authenticated and authorized clients only; false serves plain HTTP to anyone")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "",
		"directory holding the metrics server's certificate and key (default: a self-signed certificate made at start)")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "file name of the metrics server's certificate in --metrics-cert-path")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "file name of the metrics server's key in --metrics-cert-path")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "offer HTTP/2 on the HTTPS metrics endpoint")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address the /healthz and /readyz probes bind to")
	flag.BoolVar(&leaderElection, "leader-elect", false, "elect a leader, so that only one of several replicas reconciles")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	leaderElectionID := flag.String("leader-election-id", "shopkeeper.commerce.shopkeeper.dev",
		"name of the leader election Lease: managers that share it elect one leader, so two installations in one namespace need one each")
	// controller-runtime's defaults (15 s, 10 s, 2 s) make the leader give up, and the
	// process exit, when the API server is away for 10 s, as it is in a control-plane
	// upgrade or an etcd leader change: every such blip restarted the pod. These survive
	// an outage of half a minute; a leader that stops (SIGTERM) still hands over at once
	// (LeaderElectionReleaseOnCancel), only one that crashes waits out the lease.
	leaseDuration := flag.Duration("leader-election-lease-duration", 60*time.Second,
		"how long a standby waits, after the leader last renewed its Lease, before taking it over (a leader that stops releases it at once)")
	renewDeadline := flag.Duration("leader-election-renew-deadline", 45*time.Second,
		"how long the leader keeps trying to renew its Lease, as while the API server is away, before it gives up and exits")
	retryPeriod := flag.Duration("leader-election-retry-period", 5*time.Second,
		"how often the managers try to acquire or renew the Lease")
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second,
		"how long the manager waits at shutdown for its reconciles to finish; it then exits")
	flag.StringVar(&namespaces, "watch-namespaces", "", "comma-separated namespaces to watch Shops in (default: all)")
	var level slog.Level
	flag.TextVar(&level, "log-level", slog.LevelInfo, "lowest level logged: debug, info, warn or error")
	stallDeadline := flag.Duration("stall-deadline", controllers.DefaultPodReadyDeadline,
		"how long a component's pod may stay unready, or a StatefulSet's pod missing, before the Shop is Degraded (RolloutStalled)")
	flag.Parse()
	// The flag package stops at the first argument that is no flag and leaves it and every
	// one after it unread: a stray word (log-level=debug in the chart's extraArgs, say)
	// would silently drop itself and the flags that follow it.
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected argument %q: the manager takes only flags (--name=value); it and those after it would be ignored\n", flag.Arg(0))
		os.Exit(2)
	}
	if *stallDeadline <= 0 {
		fmt.Fprintln(os.Stderr, "--stall-deadline must be positive")
		os.Exit(2)
	}
	// client-go's own checks, said before the manager starts rather than as its panic.
	if *retryPeriod <= 0 || *renewDeadline <= time.Duration(1.2*float64(*retryPeriod)) || *leaseDuration <= *renewDeadline {
		fmt.Fprintln(os.Stderr, "--leader-election-lease-duration must exceed --leader-election-renew-deadline, which must exceed 1.2 × --leader-election-retry-period (> 0)")
		os.Exit(2)
	}
	if *shutdownTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "--shutdown-timeout must be positive")
		os.Exit(2)
	}
	if errs := validation.IsDNS1123Subdomain(*leaderElectionID); len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "--leader-election-id %q is no Lease name: %s\n", *leaderElectionID, strings.Join(errs, "; "))
		os.Exit(2)
	}

	// JSON lines through log/slog, the services' format too; controller-runtime logs
	// through logr, which slog backs here.
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(shopv1.AddToScheme(scheme))

	var watched []string
	for ns := range strings.SplitSeq(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			watched = append(watched, ns)
		}
	}

	metricsOptions := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics}
	// HTTP/2 stays off unless asked for: its stream resets let one client exhaust the
	// server (CVE-2023-44487, CVE-2023-39325), and a scraper gains nothing from it.
	if !enableHTTP2 {
		metricsOptions.TLSOpts = append(metricsOptions.TLSOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	var metricsCertWatcher *certwatcher.CertWatcher
	if secureMetrics {
		// Every request must carry a bearer token that the API server accepts (a
		// TokenReview) for a user allowed to get /metrics (a SubjectAccessReview):
		// config/rbac/metrics_auth_role.yaml lets the manager ask both, and
		// metrics_reader_role.yaml is what a scraper is bound to.
		metricsOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
		if metricsCertPath != "" {
			// A watcher, not the metrics server's own CertDir: that one falls back to a
			// self-signed certificate when the files are missing, where a mistyped path
			// must stop the manager instead. The watcher also picks up a renewed
			// certificate (cert-manager rotates the Secret in place).
			var err error
			metricsCertWatcher, err = certwatcher.New(
				filepath.Join(metricsCertPath, metricsCertName), filepath.Join(metricsCertPath, metricsCertKey))
			if err != nil {
				log.Error(err, "cannot load the metrics certificate", "path", metricsCertPath)
				os.Exit(1)
			}
			metricsOptions.TLSOpts = append(metricsOptions.TLSOpts, func(c *tls.Config) { c.GetCertificate = metricsCertWatcher.GetCertificate })
		}
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(watched...),
		Metrics:                 metricsOptions,
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElection,
		LeaderElectionID:        *leaderElectionID,
		LeaderElectionNamespace: leaderElectionNamespace,
		LeaseDuration:           leaseDuration,
		RenewDeadline:           renewDeadline,
		RetryPeriod:             retryPeriod,
		GracefulShutdownTimeout: shutdownTimeout,
		// The process exits right after losing the lease: no second leader overlaps.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		log.Error(err, "cannot create the manager")
		os.Exit(1)
	}
	if metricsCertWatcher != nil {
		if err := mgr.Add(metricsCertWatcher); err != nil {
			log.Error(err, "cannot add the metrics certificate watcher")
			os.Exit(1)
		}
	}

	// SIGTERM or SIGINT ends ctx, and with it the manager (a second signal ends the
	// process at once).
	ctx := ctrl.SetupSignalHandler()
	go func() {
		// The manager's Start does not return when it is stopped while its caches cannot
		// sync (RBAC that does not cover what it watches, say): controller-runtime
		// v0.25.2 then loops on the ended context, a core busy until the kubelet kills
		// the pod. The process ends on its own once the shutdown has had its time.
		<-ctx.Done()
		time.Sleep(*shutdownTimeout + time.Second)
		log.Info("the manager did not stop within --shutdown-timeout; exiting", "shutdownTimeout", shutdownTimeout.String())
		os.Exit(1)
	}()
	if err := (&controllers.ShopReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("shopkeeper"),

		PodReadyDeadline: *stallDeadline,
	}).SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "cannot set up the Shop controller")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "cannot add the health check")
		os.Exit(1)
	}
	// Ready once the cache has synced: before that the controller cannot reconcile.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("cache not synced")
		}
		return nil
	}); err != nil {
		log.Error(err, "cannot add the readiness check")
		os.Exit(1)
	}

	log.Info("starting the manager", "watchNamespaces", watched, "leaderElection", leaderElection,
		"metricsBindAddress", metricsAddr, "metricsSecure", secureMetrics)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "the manager stopped")
		os.Exit(1)
	}
}
