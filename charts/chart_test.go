// Package charts tests the Helm chart of the operator (charts/shopkeeper): that it carries
// the same CRDs and permissions as config/, passes `helm lint`, renders what its values
// promise, and installs beside other releases of itself into a real kube-apiserver (envtest).
// The chart is plain files; these tests are its only Go.
package charts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

const chartDir = "shopkeeper"

// kubeVersion is the cluster version the chart is rendered for: the one the operator is
// built against. Helm built from source would otherwise assume its default, v1.20.
const kubeVersion = "v1.37.2"

// TestCRDsMatchConfig keeps the chart's CRDs identical to what controller-gen writes to
// config/crd/bases (hack/sync-chart.sh copies them).
func TestCRDsMatchConfig(t *testing.T) {
	want := readDir(t, filepath.Join("..", "config", "crd", "bases"))
	got := readDir(t, filepath.Join(chartDir, "crds"))
	if len(want) == 0 {
		t.Fatal("config/crd/bases holds no CRD")
	}
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("charts/shopkeeper/crds lacks %s; run hack/sync-chart.sh", name)
		} else if !bytes.Equal(g, w) {
			t.Errorf("charts/shopkeeper/crds/%s differs from config/crd/bases; run hack/sync-chart.sh", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("charts/shopkeeper/crds/%s is not in config/crd/bases; run hack/sync-chart.sh", name)
		}
	}
}

// TestRoleMatchesConfig keeps the rules the chart grants identical to the ClusterRole
// controller-gen writes from the controllers' RBAC markers.
func TestRoleMatchesConfig(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chartDir, "files", "manager-role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("charts/shopkeeper/files/manager-role.yaml differs from config/rbac/role.yaml; run hack/sync-chart.sh")
	}
}

func TestLint(t *testing.T) {
	helm := helmBinary(t)
	for _, set := range [][]string{
		nil,
		{"watchNamespaces={shop-a,shop-b}", "metrics.enabled=false", "leaderElection.enabled=false"},
		{"metrics.secure=false", "metrics.port=8080"},
		{"metrics.certSecret=shop-metrics-tls"},
	} {
		args := []string{"lint", "--strict", chartDir}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if out, err := run(t, helm, args...); err != nil {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestTemplate renders the chart with the values a user would set and checks what each
// promises in the objects a cluster would receive.
func TestTemplate(t *testing.T) {
	helm := helmBinary(t)
	rules := configRules(t, "role.yaml")
	metrics := configMetrics(t)
	for _, tc := range []struct {
		name  string
		set   []string
		check func(t *testing.T, r rendered)
	}{
		{
			name: "defaults: every namespace, leader election, metrics, appVersion tag",
			check: func(t *testing.T, r rendered) {
				d := r.deployment(t)
				c := d.Spec.Template.Spec.Containers[0]
				if c.Image != "ghcr.io/shopkeeper-dev/shopkeeper:"+r.appVersion(t) {
					t.Errorf("image = %s", c.Image)
				}
				wantArgs := []string{
					"--leader-elect=true", "--leader-election-id=shop-shopkeeper.commerce.shopkeeper.dev",
					"--leader-election-lease-duration=60s", "--leader-election-renew-deadline=45s", "--leader-election-retry-period=5s",
					"--metrics-bind-address=:8443", "--metrics-secure=true", "--health-probe-bind-address=:8081",
				}
				if !slices.Equal(c.Args, wantArgs) {
					t.Errorf("args = %q, want %q", c.Args, wantArgs)
				}
				sc := c.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					d.Spec.Template.Spec.SecurityContext.RunAsNonRoot == nil || !*d.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
					t.Errorf("the manager does not run restricted: %+v", sc)
				}
				if d.Spec.Template.Spec.ServiceAccountName != "shop-shopkeeper" {
					t.Errorf("service account = %q", d.Spec.Template.Spec.ServiceAccountName)
				}
				r.want(t, "ServiceAccount", "shops-system", "shop-shopkeeper")
				r.want(t, "ClusterRoleBinding", "", "shops-system-shop-shopkeeper-manager")
				if id := r.leaderElection(t); id != "shop-shopkeeper.commerce.shopkeeper.dev" {
					t.Errorf("leader election Lease = %q", id)
				}
				r.want(t, "RoleBinding", "shops-system", "shop-shopkeeper-leader-election")
				r.want(t, "Service", "shops-system", "shop-shopkeeper-metrics")
				if n := r.count("RoleBinding"); n != 1 {
					t.Errorf("%d RoleBindings, want only the leader election's", n)
				}
				var role rbacv1.ClusterRole
				r.decode(t, "ClusterRole", "", "shops-system-shop-shopkeeper-manager", &role)
				if !equalRules(role.Rules, rules) {
					t.Errorf("ClusterRole rules = %+v, want config/rbac/role.yaml's %+v", role.Rules, rules)
				}
				r.checkSecureMetrics(t, metrics)
			},
		},
		{
			name: "watched namespaces: a RoleBinding in each, no ClusterRoleBinding",
			set:  []string{"watchNamespaces={shop-a,shop-b}"},
			check: func(t *testing.T, r rendered) {
				c := r.deployment(t).Spec.Template.Spec.Containers[0]
				if !slices.Contains(c.Args, "--watch-namespaces=shop-a,shop-b") {
					t.Errorf("args = %q, want --watch-namespaces=shop-a,shop-b", c.Args)
				}
				// The one ClusterRoleBinding left is the metrics filter's: TokenReviews and
				// SubjectAccessReviews are cluster-wide, and grant no namespace.
				if r.find("ClusterRoleBinding", "", "shops-system-shop-shopkeeper-manager") != nil || r.count("ClusterRoleBinding") != 1 {
					t.Error("a ClusterRoleBinding grants every namespace although only two are watched")
				}
				for _, ns := range []string{"shop-a", "shop-b"} {
					var b rbacv1.RoleBinding
					r.decode(t, "RoleBinding", ns, "shops-system-shop-shopkeeper-manager", &b)
					if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != "shops-system-shop-shopkeeper-manager" ||
						len(b.Subjects) != 1 || b.Subjects[0].Namespace != "shops-system" {
						t.Errorf("RoleBinding in %s = %+v", ns, b)
					}
				}
			},
		},
		{
			name: "leader election timings",
			set:  []string{"leaderElection.leaseDurationSeconds=30", "leaderElection.renewDeadlineSeconds=20", "leaderElection.retryPeriodSeconds=4"},
			check: func(t *testing.T, r rendered) {
				args := r.deployment(t).Spec.Template.Spec.Containers[0].Args
				for _, want := range []string{"--leader-election-lease-duration=30s", "--leader-election-renew-deadline=20s", "--leader-election-retry-period=4s"} {
					if !slices.Contains(args, want) {
						t.Errorf("args = %q, want %s", args, want)
					}
				}
			},
		},
		{
			name: "metrics and leader election off, image and resources set",
			set: []string{
				"metrics.enabled=false", "leaderElection.enabled=false", "leaderElection.leaseDurationSeconds=1",
				"image.repository=localhost/manager", "image.tag=dev", "resources.limits.memory=128Mi",
			},
			check: func(t *testing.T, r rendered) {
				c := r.deployment(t).Spec.Template.Spec.Containers[0]
				if !slices.Contains(c.Args, "--metrics-bind-address=0") || !slices.Contains(c.Args, "--leader-elect=false") ||
					slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--leader-election-") }) {
					t.Errorf("args = %q, want no metrics and no leader election", c.Args)
				}
				if c.Image != "localhost/manager:dev" {
					t.Errorf("image = %s", c.Image)
				}
				if got := c.Resources.Limits.Memory().String(); got != "128Mi" {
					t.Errorf("memory limit = %s", got)
				}
				for _, kind := range []string{"Service", "Role"} {
					if r.count(kind) != 0 {
						t.Errorf("a %s is rendered although its feature is off", kind)
					}
				}
				if n := r.count("ClusterRole"); n != 1 {
					t.Errorf("%d ClusterRoles, want only the manager's: the metrics ones are rendered without metrics", n)
				}
			},
		},
		{
			name: "image pinned by digest",
			set:  []string{"image.tag=ignored", "image.digest=sha256:" + strings.Repeat("ab", 32)},
			check: func(t *testing.T, r rendered) {
				c := r.deployment(t).Spec.Template.Spec.Containers[0]
				if want := "ghcr.io/shopkeeper-dev/shopkeeper@sha256:" + strings.Repeat("ab", 32); c.Image != want {
					t.Errorf("image = %s, want %s", c.Image, want)
				}
			},
		},
		{
			name: "plain HTTP metrics: no authentication, so no metrics RBAC",
			set:  []string{"metrics.secure=false", "metrics.port=8080"},
			check: func(t *testing.T, r rendered) {
				d := r.deployment(t)
				c := d.Spec.Template.Spec.Containers[0]
				for _, arg := range []string{"--metrics-bind-address=:8080", "--metrics-secure=false"} {
					if !slices.Contains(c.Args, arg) {
						t.Errorf("args = %q, want %s", c.Args, arg)
					}
				}
				var svc corev1.Service
				r.decode(t, "Service", "shops-system", "shop-shopkeeper-metrics", &svc)
				if p := svc.Spec.Ports; len(p) != 1 || p[0].Name != "http" || p[0].Port != 8080 {
					t.Errorf("metrics Service ports = %+v, want http 8080", p)
				}
				for _, name := range []string{"shops-system-shop-shopkeeper-metrics-auth", "shops-system-shop-shopkeeper-metrics-reader"} {
					if r.find("ClusterRole", "", name) != nil {
						t.Errorf("ClusterRole %s rendered, although plain HTTP metrics ask no one", name)
					}
				}
				if r.find("ClusterRoleBinding", "", "shops-system-shop-shopkeeper-metrics-auth") != nil {
					t.Error("the manager may review tokens although plain HTTP metrics need none")
				}
				if len(d.Spec.Template.Spec.Volumes) != 0 {
					t.Errorf("volumes = %+v, want none", d.Spec.Template.Spec.Volumes)
				}
			},
		},
		{
			name: "metrics certificate from a Secret",
			set:  []string{"metrics.certSecret=shop-metrics-tls"},
			check: func(t *testing.T, r rendered) {
				d := r.deployment(t)
				c := d.Spec.Template.Spec.Containers[0]
				const dir = "/etc/shopkeeper/metrics-certs"
				if !slices.Contains(c.Args, "--metrics-cert-path="+dir) {
					t.Errorf("args = %q, want --metrics-cert-path=%s", c.Args, dir)
				}
				vols := d.Spec.Template.Spec.Volumes
				if len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != "shop-metrics-tls" {
					t.Fatalf("volumes = %+v, want the Secret shop-metrics-tls", vols)
				}
				if m := c.VolumeMounts; len(m) != 1 || m[0].Name != vols[0].Name || m[0].MountPath != dir || !m[0].ReadOnly {
					t.Errorf("volume mounts = %+v, want %s read-only at %s", m, vols[0].Name, dir)
				}
				r.checkSecureMetrics(t, metrics)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "shop", chartDir, "--namespace", "shops-system", "--kube-version", kubeVersion}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := run(t, helm, args...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			tc.check(t, parse(t, out))
		})
	}
}

// TestReleasesApart renders two releases that one cluster must hold side by side, and
// checks that they claim no object in common: neither a rendered object (kind, namespace,
// name) nor the Lease their managers elect a leader with. A shared ClusterRole fails the
// second install; a shared Lease lets only one release's manager reconcile.
func TestReleasesApart(t *testing.T) {
	helm := helmBinary(t)
	type release struct{ name, namespace string }
	for _, tc := range []struct {
		name string
		a, b release
		set  []string
	}{
		{"two releases in one namespace", release{"a", "ops"}, release{"b", "ops"}, nil},
		{"two releases in one namespace, each watching its own", release{"a", "ops"}, release{"b", "ops"}, []string{"watchNamespaces={shop-a}"}},
		{"one release name in two namespaces", release{"shop", "t1"}, release{"shop", "t2"}, nil},
		{"one release name in two namespaces, watching the same one", release{"shop", "t1"}, release{"shop", "t2"}, []string{"watchNamespaces={shop-a}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claimed := map[string]string{}
			for _, rel := range []release{tc.a, tc.b} {
				args := []string{"template", rel.name, chartDir, "--namespace", rel.namespace, "--kube-version", kubeVersion}
				for _, s := range tc.set {
					args = append(args, "--set", s)
				}
				out, err := run(t, helm, args...)
				if err != nil {
					t.Fatalf("helm template: %v\n%s", err, out)
				}
				r := parse(t, out)
				keys := []string{"Lease " + rel.namespace + "/" + r.leaderElection(t)}
				for _, o := range r {
					keys = append(keys, o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName())
				}
				for _, k := range keys {
					if other, ok := claimed[k]; ok {
						t.Errorf("releases %s and %s/%s both claim %s", other, rel.namespace, rel.name, k)
					}
					claimed[k] = rel.namespace + "/" + rel.name
				}
			}
		})
	}
}

// TestNotes checks what the chart tells a user after an install. Helm renders NOTES.txt on
// install only (not `helm template`), and `helm install --dry-run` still asks a cluster,
// so the chart is installed in dry run against a real kube-apiserver (envtest).
func TestNotes(t *testing.T) {
	helm := helmBinary(t)
	kubeconfig, _ := startAPIServer(t)
	// The lines that make and watch the sample Shop.
	shopLine := func(l string) bool {
		return strings.Contains(l, "commerce_v1alpha1_shop.yaml") || strings.Contains(l, "shop/demo") || strings.HasSuffix(l, "get shop")
	}
	for _, tc := range []struct {
		name   string
		set    []string
		shopNs string // the namespace each Shop command must name; empty: none
		want   []string
	}{
		{
			name: "every namespace",
			want: []string{
				"watching every namespace",
				"ClusterRole shops-system-shop-shopkeeper-metrics-reader",
				"--clusterrole=shops-system-shop-shopkeeper-metrics-reader --serviceaccount=shops-system:metrics-scraper",
			},
		},
		{
			name:   "watched namespaces: the Shop goes in the first",
			set:    []string{"watchNamespaces={shop-a,shop-b}"},
			shopNs: "shop-a",
			want:   []string{"watching only shop-a, shop-b", "Run a shop in shop-a:"},
		},
		{
			name: "the image installed, not the chart's appVersion",
			set:  []string{"image.tag=v9.9.9"},
			want: []string{"Shopkeeper (ghcr.io/shopkeeper-dev/shopkeeper:v9.9.9) is installed"},
		},
		{
			name: "plain HTTP metrics",
			set:  []string{"metrics.secure=false"},
			want: []string{"curl -s http://127.0.0.1:8443/metrics"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"install", "shop", chartDir, "--dry-run=client", "--namespace", "shops-system", "--kubeconfig", kubeconfig}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := run(t, helm, args...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			_, notes, ok := strings.Cut(string(out), "\nNOTES:\n")
			if !ok {
				t.Fatalf("helm install printed no NOTES:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
			shops := 0
			for _, l := range strings.Split(notes, "\n") {
				if !shopLine(l) {
					continue
				}
				shops++
				if named := strings.Contains(l, " -n "); tc.shopNs == "" && named {
					t.Errorf("%q names a namespace although every namespace is watched", l)
				} else if tc.shopNs != "" && !strings.Contains(l, "kubectl -n "+tc.shopNs+" ") {
					t.Errorf("%q does not run in %s, the first watched namespace: elsewhere the Shop is never reconciled", l, tc.shopNs)
				}
			}
			if shops != 3 {
				t.Errorf("%d commands make, wait for and get the sample Shop, want 3:\n%s", shops, notes)
			}
		})
	}
}

// TestInstallSideBySide installs the chart, for real, into a kube-apiserver (envtest)
// several times: two releases in one namespace, and one release name in two namespaces.
// Helm refuses to install an object another release owns, so every install succeeds only
// if no release claims another's objects.
func TestInstallSideBySide(t *testing.T) {
	helm := helmBinary(t)
	kubeconfig, cfg := startAPIServer(t)
	admin, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The watched namespaces, which hold the releases' RoleBindings, are the user's.
	for _, ns := range []string{"shop-a", "shop-b"} {
		if err := admin.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []struct{ name, namespace, watch string }{
		{"a", "ops", "shop-a"},
		{"b", "ops", "shop-b"},
		{"shop", "t1", "shop-a"},
		{"shop", "t2", "shop-a"},
		// Helm allows a release name of 53 characters, dots included; a Service's name
		// may have neither dots nor more than 63.
		{"payments-platform-ecommerce-operator-prod-eu1-west-23", "ops", "shop-b"},
		{"shop.v2", "t1", "shop-b"},
		{"shop-v2", "t1", "shop-b"}, // a name of its own all the same
	} {
		args := []string{
			"install", rel.name, chartDir, "--namespace", rel.namespace, "--create-namespace", "--kubeconfig", kubeconfig,
			"--set", "watchNamespaces={" + rel.watch + "}",
		}
		if out, err := run(t, helm, args...); err != nil {
			t.Errorf("helm install %s in %s: %v\n%s", rel.name, rel.namespace, err, out)
		}
	}
}

// startAPIServer starts a kube-apiserver (envtest) for the test and returns the path of a
// kubeconfig that reaches it as a cluster admin, and its admin's client config.
// KUBEBUILDER_ASSETS names the binaries; unset, hack/kube-binaries.sh builds them (once,
// cached under bin/).
func startAPIServer(t *testing.T) (string, *rest.Config) {
	t.Helper()
	env := &envtest.Environment{BinaryAssetsDirectory: os.Getenv("KUBEBUILDER_ASSETS")}
	if env.BinaryAssetsDirectory == "" {
		out, err := exec.CommandContext(t.Context(), filepath.Join("..", "hack", "kube-binaries.sh"), "kube-apiserver", "etcd").Output()
		if err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS is not set and hack/kube-binaries.sh failed: %v", err)
		}
		env.BinaryAssetsDirectory = strings.TrimSpace(string(out))
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop kube-apiserver: %v", err)
		}
	})
	admin, err := env.AddUser(envtest.User{Name: "chart-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// templateWithoutValues renders the chart as `helm upgrade --reuse-values` does from a chart
// that had no values by the lines drop picks in values.yaml (want of them, named what): with
// that release's values, which lack them.
func templateWithoutValues(t *testing.T, what string, want int, drop func(line string) bool) []byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shopkeeper")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	kept := slices.DeleteFunc(slices.Clone(lines), drop)
	if len(kept) != len(lines)-want {
		t.Fatalf("values.yaml: %d %s lines found, want %d", len(lines)-len(kept), what, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "values.yaml"), []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, helmBinary(t), "template", "shop", dir, "--namespace", "shops-system", "--kube-version", kubeVersion)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	return out
}

// TestTemplateWithoutLeaderElectionTimings: `helm upgrade --reuse-values` from a chart that
// had no leaderElection timings renders with that release's values, which lack them.
func TestTemplateWithoutLeaderElectionTimings(t *testing.T) {
	out := templateWithoutValues(t, "timing", 3, func(l string) bool {
		return strings.HasPrefix(l, "  ") && strings.Contains(l, "Seconds:") && !strings.Contains(l, "#")
	})
	args := parse(t, out).deployment(t).Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--leader-election-lease-duration=60s", "--leader-election-renew-deadline=45s", "--leader-election-retry-period=5s"} {
		if !slices.Contains(args, want) {
			t.Errorf("args = %q, want %s", args, want)
		}
	}
}

// TestTemplateWithoutMetricsSecure: `helm upgrade --reuse-values` from a chart that had no
// metrics.secure (before f157469) renders with that release's values, which lack it: the
// manager got --metrics-secure=, a flag it refuses, and exited.
func TestTemplateWithoutMetricsSecure(t *testing.T) {
	out := templateWithoutValues(t, "metrics.secure", 1, func(l string) bool { return l == "  secure: true" })
	r := parse(t, out)
	if args := r.deployment(t).Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--metrics-secure=true") {
		t.Errorf("args = %q, want --metrics-secure=true, the default", args)
	}
	r.want(t, "ClusterRole", "", "shops-system-shop-shopkeeper-metrics-reader")
	svc := r.find("Service", "shops-system", "shop-shopkeeper-metrics")
	if svc == nil {
		t.Fatal("no metrics Service")
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if len(ports) != 1 || ports[0].(map[string]any)["name"] != "https" {
		t.Errorf("metrics Service ports = %v, want one named https", ports)
	}
}

// TestTemplatePodMetadataOverlap: a podLabel that names one of the selector's labels, or a
// podAnnotation that names the chart's own, was written twice in the pod's metadata: Helm
// read the last (the podLabel dropped without a word) and a kustomize post-renderer refused
// the document ("mapping key already defined").
func TestTemplatePodMetadataOverlap(t *testing.T) {
	out, err := run(t, helmBinary(t), "template", "shop", chartDir, "--namespace", "shops-system", "--kube-version", kubeVersion,
		"--set", `podLabels.app\.kubernetes\.io/component=operator`, "--set", "podLabels.team=a",
		"--set-string", `podAnnotations.kubectl\.kubernetes\.io/default-container=sidecar`)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	for doc := range strings.SplitSeq(string(out), "\n---") {
		if _, err := yaml.YAMLToJSONStrict([]byte(doc)); err != nil {
			t.Errorf("rendered document is no strict YAML: %v\n%s", err, doc)
		}
	}
	meta := parse(t, out).deployment(t).Spec.Template.ObjectMeta
	want := map[string]string{"app.kubernetes.io/name": "shopkeeper", "app.kubernetes.io/instance": "shop", "app.kubernetes.io/component": "manager", "team": "a"}
	if fmt.Sprint(meta.Labels) != fmt.Sprint(want) {
		t.Errorf("pod labels = %v, want %v", meta.Labels, want)
	}
	if got := meta.Annotations["kubectl.kubernetes.io/default-container"]; got != "sidecar" {
		t.Errorf("default-container annotation = %q, want the podAnnotation's, sidecar", got)
	}
}

// TestTemplateNamesThatLookLikeNumbers: a namespace, ServiceAccount, Secret or
// PriorityClass name YAML reads as a number or a boolean (2024, 007, 1e3, true) was written
// unquoted, and so was no string: the API server refused the object.
func TestTemplateNamesThatLookLikeNumbers(t *testing.T) {
	out, err := run(t, helmBinary(t), "template", "shop", chartDir, "--namespace", "2024", "--kube-version", kubeVersion,
		"--set", "watchNamespaces={007}", "--set-string", "metrics.certSecret=0123,serviceAccount.name=1e3,priorityClassName=true")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	r := parse(t, out)
	for _, obj := range r {
		if ns, ok := obj.Object["metadata"].(map[string]any)["namespace"]; ok {
			if _, isString := ns.(string); !isString {
				t.Errorf("%s %s: metadata.namespace = %v (%T), want a string", obj.GetKind(), obj.GetName(), ns, ns)
			}
		}
		subjects, _, _ := unstructured.NestedSlice(obj.Object, "subjects")
		for _, s := range subjects {
			for _, k := range []string{"name", "namespace"} {
				if _, isString := s.(map[string]any)[k].(string); !isString {
					t.Errorf("%s %s: subject %s = %v, want a string", obj.GetKind(), obj.GetName(), k, s.(map[string]any)[k])
				}
			}
		}
	}
	spec, _, _ := unstructured.NestedMap(r.findKind("Deployment").Object, "spec", "template", "spec")
	for k, want := range map[string]string{"serviceAccountName": "1e3", "priorityClassName": "true"} {
		if spec[k] != want {
			t.Errorf("pod %s = %v (%T), want the string %q", k, spec[k], spec[k], want)
		}
	}
	if got, _, _ := unstructured.NestedSlice(spec, "volumes"); len(got) != 1 || fmt.Sprint(got[0].(map[string]any)["secret"].(map[string]any)["secretName"]) != "0123" {
		t.Errorf("volumes = %v, want the Secret 0123", got)
	} else if _, isString := got[0].(map[string]any)["secret"].(map[string]any)["secretName"].(string); !isString {
		t.Errorf("volumes = %v, want the Secret name a string", got)
	}
}

// TestTemplateRefuses checks that values which cannot work together fail to render, with
// a message that says why.
func TestTemplateRefuses(t *testing.T) {
	helm := helmBinary(t)
	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"replicas without leader election", []string{"replicaCount=2", "leaderElection.enabled=false"}, "needs leaderElection.enabled"},
		{"a lease no longer than its renewal", []string{"leaderElection.leaseDurationSeconds=45"}, "leaseDurationSeconds must exceed renewDeadlineSeconds"},
		{"a renewal within 1.2 retries", []string{"leaderElection.renewDeadlineSeconds=6"}, "must exceed 1.2 × retryPeriodSeconds"},
		{"a retry period of 0", []string{"leaderElection.retryPeriodSeconds=0"}, "at '/leaderElection/retryPeriodSeconds': minimum: got 0, want 1"},
		{"a duration where seconds go", []string{"leaderElection.leaseDurationSeconds=60s"}, "at '/leaderElection/leaseDurationSeconds': got string, want integer"},
		{"a certificate for plain HTTP", []string{"metrics.certSecret=shop-metrics-tls", "metrics.secure=false"}, "metrics.certSecret needs"},
		{"a certificate without metrics", []string{"metrics.certSecret=shop-metrics-tls", "metrics.enabled=false"}, "metrics.certSecret needs"},
		{"metrics on the probes' port", []string{"metrics.port=8081"}, "metrics.port 8081 is the health probes' port"},
		// values.schema.json
		{"a namespace that is no list", []string{"watchNamespaces=tenant-a"}, "at '/watchNamespaces': got string, want array"},
		{"an empty namespace", []string{"watchNamespaces={tenant-a,}"}, "at '/watchNamespaces/1': '' does not match pattern"},
		{"arguments that are no list", []string{"extraArgs=--log-level=debug"}, "at '/extraArgs': got string, want array"},
		// Helm's --set 'extraArgs={}' is a list of one empty argument, which stops the manager
		// at start (unexpected argument ""): refused here, at install or upgrade, instead.
		{"an empty argument", []string{"extraArgs={}"}, "at '/extraArgs/0': minLength: got 0, want 1"},
		{"a digest that is none", []string{"image.digest=latest"}, "at '/image/digest': 'latest' does not match pattern"},
		{"a pull policy that is none", []string{"image.pullPolicy=Sometimes"}, "at '/image/pullPolicy': value must be one of"},
		// --set key=null deletes the key: a value the templates cannot do without is refused
		// (--leader-elect= stopped the manager at start; a null port or repository made a
		// Deployment the API server or Helm's YAML parser refused without naming the value).
		{"leader election unset", []string{"leaderElection.enabled=null"}, "at '/leaderElection': missing property 'enabled'"},
		{"metrics unset", []string{"metrics.enabled=null"}, "at '/metrics': missing property 'enabled'"},
		{"metrics port unset", []string{"metrics.port=null"}, "at '/metrics': missing property 'port'"},
		{"image repository unset", []string{"image.repository=null"}, "at '/image': missing property 'repository'"},
		{"ServiceAccount creation unset", []string{"serviceAccount.create=null"}, "at '/serviceAccount': missing property 'create'"},
		// A misspelt key would be ignored: watchNamespace would install a cluster-wide operator.
		{"a key the chart does not know", []string{"watchNamespace={tenant-a}"}, "additional properties 'watchNamespace' not allowed"},
		{"a key inside one the chart does not know", []string{"leaderElection.enable=false"}, "at '/leaderElection': additional properties 'enable' not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "shop", chartDir, "--kube-version", kubeVersion}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := run(t, helm, args...)
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("helm %s: err %v, want %q\n%s", strings.Join(args, " "), err, tc.want, out)
			}
		})
	}
}

// TestTemplateTakesAParentsCondition: a parent chart that installs this one with
// `condition: shopkeeper.enabled` gives it an enabled key, which the schema must allow.
func TestTemplateTakesAParentsCondition(t *testing.T) {
	out, err := run(t, helmBinary(t), "template", "shop", chartDir, "--kube-version", kubeVersion, "--set", "enabled=true", "--set", "global.x=1")
	if err != nil {
		t.Fatalf("helm template with enabled and global set: %v\n%s", err, out)
	}
}

// metricsConfig is what config/ (kustomize) sets for the metrics endpoint, which the
// chart's defaults must match.
type metricsConfig struct {
	bindArg     string // the manager's --metrics-bind-address argument
	port        int32  // the manager's container port named metrics
	servicePort corev1.ServicePort
	authRules   []rbacv1.PolicyRule // config/rbac/metrics_auth_role.yaml
	readerRules []rbacv1.PolicyRule // config/rbac/metrics_reader_role.yaml
}

func configMetrics(t *testing.T) metricsConfig {
	t.Helper()
	var m metricsConfig
	var manager appsv1.Deployment
	readYAMLDocument(t, filepath.Join("..", "config", "manager", "manager.yaml"), "Deployment", &manager)
	c := manager.Spec.Template.Spec.Containers[0]
	for _, arg := range c.Args {
		if strings.HasPrefix(arg, "--metrics-bind-address=") {
			m.bindArg = arg
		}
	}
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			m.port = p.ContainerPort
		}
	}
	var svc corev1.Service
	readYAMLDocument(t, filepath.Join("..", "config", "default", "metrics_service.yaml"), "Service", &svc)
	if m.bindArg == "" || m.port == 0 || len(svc.Spec.Ports) != 1 {
		t.Fatalf("config/ sets no metrics endpoint: argument %q, port %d, Service ports %+v", m.bindArg, m.port, svc.Spec.Ports)
	}
	m.servicePort = svc.Spec.Ports[0]
	m.authRules = configRules(t, "metrics_auth_role.yaml")
	m.readerRules = configRules(t, "metrics_reader_role.yaml")
	return m
}

// checkSecureMetrics checks that the chart serves metrics as config/ does: the same
// port and arguments, the same Service port, and the RBAC of the authentication filter
// (the manager may review tokens and access; a scraper is bound to metrics-reader).
func (r rendered) checkSecureMetrics(t *testing.T, want metricsConfig) {
	t.Helper()
	c := r.deployment(t).Spec.Template.Spec.Containers[0]
	for _, arg := range []string{want.bindArg, "--metrics-secure=true"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args = %q, want %s as config/manager", c.Args, arg)
		}
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" && p.ContainerPort == want.port }) {
		t.Errorf("container ports = %+v, want metrics %d as config/manager", c.Ports, want.port)
	}
	var svc corev1.Service
	r.decode(t, "Service", "shops-system", "shop-shopkeeper-metrics", &svc)
	if p := svc.Spec.Ports; len(p) != 1 || p[0].Name != want.servicePort.Name || p[0].Port != want.servicePort.Port ||
		p[0].TargetPort != want.servicePort.TargetPort {
		t.Errorf("metrics Service ports = %+v, want config/default's %+v", p, want.servicePort)
	}
	var auth, reader rbacv1.ClusterRole
	r.decode(t, "ClusterRole", "", "shops-system-shop-shopkeeper-metrics-auth", &auth)
	if !equalRules(auth.Rules, want.authRules) {
		t.Errorf("metrics-auth rules = %+v, want config/rbac/metrics_auth_role.yaml's %+v", auth.Rules, want.authRules)
	}
	r.decode(t, "ClusterRole", "", "shops-system-shop-shopkeeper-metrics-reader", &reader)
	if !equalRules(reader.Rules, want.readerRules) {
		t.Errorf("metrics-reader rules = %+v, want config/rbac/metrics_reader_role.yaml's %+v", reader.Rules, want.readerRules)
	}
	var b rbacv1.ClusterRoleBinding
	r.decode(t, "ClusterRoleBinding", "", "shops-system-shop-shopkeeper-metrics-auth", &b)
	if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != "shops-system-shop-shopkeeper-metrics-auth" || len(b.Subjects) != 1 ||
		b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != "shop-shopkeeper" || b.Subjects[0].Namespace != "shops-system" {
		t.Errorf("metrics-auth ClusterRoleBinding = %+v, want the manager's ServiceAccount", b)
	}
}

// leaderElection returns the Lease the manager is told to elect its leader with, after
// checking that the release's leader-election Role lets it use that Lease and no other
// (but create it: RBAC cannot name an object that does not exist yet).
func (r rendered) leaderElection(t *testing.T) string {
	t.Helper()
	d := r.findKind("Deployment")
	if d == nil {
		t.Fatal("no Deployment rendered")
	}
	var id string
	var dep appsv1.Deployment
	r.decode(t, "Deployment", d.GetNamespace(), d.GetName(), &dep)
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--leader-election-id="); ok {
			id = v
		}
	}
	if id == "" {
		t.Fatalf("the manager is given no --leader-election-id: it would share the default Lease with every other release in %s", d.GetNamespace())
	}
	var role rbacv1.Role
	r.decode(t, "Role", d.GetNamespace(), d.GetName()+"-leader-election", &role)
	renews := false
	for _, rule := range role.Rules {
		if !slices.Contains(rule.Resources, "leases") {
			continue
		}
		named := slices.Equal(rule.ResourceNames, []string{id})
		if !named && !slices.Equal(rule.Verbs, []string{"create"}) {
			t.Errorf("leader election rule %+v reaches other Leases than %s", rule, id)
		}
		renews = renews || named && slices.Contains(rule.Verbs, "get") && slices.Contains(rule.Verbs, "update")
	}
	if !renews {
		t.Errorf("the leader election Role %+v cannot read and renew the Lease %s", role.Rules, id)
	}
	return id
}

// rendered is the output of `helm template`, one object per document.
type rendered []*unstructured.Unstructured

func parse(t *testing.T, out []byte) rendered {
	t.Helper()
	var r rendered
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return r
		} else if err != nil {
			t.Fatalf("decode rendered chart: %v", err)
		}
		if obj != nil {
			r = append(r, &unstructured.Unstructured{Object: obj})
		}
	}
}

func (r rendered) find(kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range r {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (r rendered) findKind(kind string) *unstructured.Unstructured {
	for _, o := range r {
		if o.GetKind() == kind {
			return o
		}
	}
	return nil
}

func (r rendered) want(t *testing.T, kind, namespace, name string) {
	t.Helper()
	if r.find(kind, namespace, name) == nil {
		t.Errorf("no %s %s/%s rendered", kind, namespace, name)
	}
}

func (r rendered) count(kind string) int {
	n := 0
	for _, o := range r {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

// decode converts the rendered object into a typed one.
func (r rendered) decode(t *testing.T, kind, namespace, name string, into any) {
	t.Helper()
	o := r.find(kind, namespace, name)
	if o == nil {
		t.Fatalf("no %s %s/%s rendered", kind, namespace, name)
	}
	b, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatal(err)
	}
}

func (r rendered) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	r.decode(t, "Deployment", "shops-system", "shop-shopkeeper", &d)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want the manager only", len(d.Spec.Template.Spec.Containers))
	}
	return &d
}

func (r rendered) appVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	return chart.AppVersion
}

// configRules returns the rules of the ClusterRole in config/rbac/<file>.
func configRules(t *testing.T, file string) []rbacv1.PolicyRule {
	t.Helper()
	var role rbacv1.ClusterRole
	readYAMLDocument(t, filepath.Join("..", "config", "rbac", file), "ClusterRole", &role)
	if len(role.Rules) == 0 {
		t.Fatalf("config/rbac/%s grants nothing", file)
	}
	return role.Rules
}

// readYAMLDocument decodes into into the first document of kind in a YAML file.
func readYAMLDocument(t *testing.T, path, kind string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o := parse(t, b).findKind(kind)
	if o == nil {
		t.Fatalf("%s holds no %s", path, kind)
	}
	j, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(j, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func equalRules(a, b []rbacv1.PolicyRule) bool {
	return slices.EqualFunc(a, b, func(x, y rbacv1.PolicyRule) bool {
		return slices.Equal(x.APIGroups, y.APIGroups) && slices.Equal(x.Resources, y.Resources) &&
			slices.Equal(x.Verbs, y.Verbs) && slices.Equal(x.ResourceNames, y.ResourceNames) &&
			slices.Equal(x.NonResourceURLs, y.NonResourceURLs)
	})
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// helmBinary returns $HELM, else bin/helm of the repository, building it from the
// pinned version in hack/tools when missing (no release download is possible here).
func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// Build next to the target and rename, so a concurrent test never runs half a binary.
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", helmLDFlags, "-o", tmp, "helm.sh/helm/v3/cmd/helm")
	cmd.Dir = filepath.Join(root, "hack", "tools")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		t.Fatalf("build helm in hack/tools: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// helmLDFlags set what Helm's release build sets: its version and the Kubernetes version
// it assumes when no cluster is asked. hack/cluster.mk builds bin/helm with the same.
const helmLDFlags = "-X helm.sh/helm/v3/internal/version.version=v3.22.0 " +
	"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37"

func run(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// TestUpgradeBackToEveryNamespace runs the README's upgrade that takes a release watching
// some namespaces back to every namespace, with --reuse-values as it is written, against a
// real kube-apiserver: the Deployment must lose --watch-namespaces and the manager its
// RoleBindings for a ClusterRoleBinding. (With --reuse-values, --set watchNamespaces=null
// kept the old list: Helm drops a null key and falls back to the old release's values.)
func TestUpgradeBackToEveryNamespace(t *testing.T) {
	helm := helmBinary(t)
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var install, upgrade []string
	for line := range strings.Lines(string(readme)) {
		if !strings.HasPrefix(line, "helm ") {
			continue
		}
		words := shellWords(t, strings.TrimSpace(line))
		switch {
		case len(words) > 2 && words[0] == "helm" && words[1] == "install" && slices.Contains(words, "tenant-a"):
			install = words
		case len(words) > 2 && words[0] == "helm" && words[1] == "upgrade" && slices.Contains(words, "tenant-a"):
			upgrade = words
		}
	}
	if install == nil || upgrade == nil {
		t.Fatalf("README.md shows no helm install and helm upgrade of tenant-a")
	}
	kubeconfig, _ := startAPIServer(t)
	for _, words := range [][]string{install, upgrade} {
		args := slices.Clone(words[1:])
		for i, a := range args {
			if a == "charts/shopkeeper" {
				args[i] = chartDir
			}
		}
		if out, err := run(t, helm, append(args, "--kubeconfig", kubeconfig)...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(words, " "), err, out)
		}
	}
	out, err := run(t, helm, "get", "manifest", "tenant-a", "-n", "tenant-a", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("helm get manifest: %v\n%s", err, out)
	}
	r := parse(t, out)
	var d appsv1.Deployment
	r.decode(t, "Deployment", "tenant-a", "tenant-a-shopkeeper", &d)
	if args := d.Spec.Template.Spec.Containers[0].Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--watch-namespaces") }) {
		t.Errorf("after %q the manager still watches only some namespaces: %q", strings.Join(upgrade, " "), args)
	}
	if r.count("RoleBinding") != 1 || r.count("ClusterRoleBinding") != 2 {
		t.Errorf("after the upgrade: %d RoleBindings (want the leader election's alone), %d ClusterRoleBindings (want the manager's and the metrics'):\n%s",
			r.count("RoleBinding"), r.count("ClusterRoleBinding"), out)
	}
}

// shellWords splits a command line as a shell does the README's: words apart by spaces,
// single quotes taken off; a comment ends it.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, c := range line {
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			word.WriteRune(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == '#' && !inWord:
			return words
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unclosed quote in %q", line)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}
