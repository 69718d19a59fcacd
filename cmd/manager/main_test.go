package main

// These tests run the manager binary against a real kube-apiserver (envtest), as the
// ServiceAccount config/rbac creates and with exactly the permissions config/rbac grants
// it, and scrape its metrics endpoint as a Prometheus would: with a ServiceAccount's
// bearer token.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
)

// managerNamespace and managerServiceAccount are where config/rbac, before
// config/default's namespace and prefix, puts the manager's ServiceAccount and binds it.
const (
	managerNamespace      = "system"
	managerServiceAccount = "controller-manager"
)

// cluster is the envtest API server with config/rbac applied, and the tokens of the
// ServiceAccounts the tests act as.
type cluster struct {
	host         string
	caData       []byte
	admin        client.Client // acts as the cluster's administrator
	managerToken string
	// readerToken's ServiceAccount is bound to config/rbac's metrics-reader;
	// strangerToken's to nothing.
	readerToken, strangerToken string
}

func TestMetricsEndpoint(t *testing.T) {
	c := startCluster(t)
	manager := buildManager(t)

	certDir := t.TempDir()
	servedCert := writeCertificate(t, certDir)

	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T, addr string)
	}{
		{
			name: "default: HTTPS with a self-signed certificate, a token allowed to get /metrics",
			check: func(t *testing.T, addr string) {
				url := "https://" + addr + "/metrics"
				for _, want := range []struct {
					who   string
					token string
					// status is the one expected; 0 is any refusal (controller-runtime's
					// filter answers 500 to a token the API server rejects as malformed).
					status int
				}{
					{"no token", "", http.StatusUnauthorized},
					{"a token the API server did not issue", "not-a-token", 0},
					{"a ServiceAccount not bound to metrics-reader", c.strangerToken, http.StatusForbidden},
					{"a ServiceAccount bound to metrics-reader", c.readerToken, http.StatusOK},
				} {
					status, body, _ := get(t, url, want.token)
					if want.status != 0 && status != want.status || want.status == 0 && status < 400 {
						t.Errorf("%s: status %d, want %d: %s", want.who, status, want.status, body)
					}
					if served := strings.Contains(body, "controller_runtime_"); served != (want.status == http.StatusOK) {
						t.Errorf("%s: metrics served = %v with status %d", want.who, served, status)
					}
				}
				_, _, state := get(t, url, c.readerToken)
				if state == nil || len(state.PeerCertificates) == 0 {
					t.Fatal("no certificate served")
				}
				// HTTP/2 is off unless --enable-http2 (stream reset attacks).
				if state.NegotiatedProtocol == "h2" {
					t.Error("HTTP/2 negotiated although --enable-http2 is not set")
				}
				if status, _, _ := get(t, "http://"+addr+"/metrics", ""); status == http.StatusOK {
					t.Error("plain HTTP served the metrics")
				}
			},
		},
		{
			name: "--metrics-cert-path: the given certificate",
			args: []string{"--metrics-cert-path=" + certDir},
			check: func(t *testing.T, addr string) {
				status, body, state := get(t, "https://"+addr+"/metrics", c.readerToken)
				if status != http.StatusOK {
					t.Errorf("status %d: %s", status, body)
				}
				if state == nil || len(state.PeerCertificates) == 0 || !state.PeerCertificates[0].Equal(servedCert) {
					t.Errorf("served certificate is not the one in %s", certDir)
				}
			},
		},
		{
			name: "--metrics-secure=false: plain HTTP, open",
			args: []string{"--metrics-secure=false"},
			check: func(t *testing.T, addr string) {
				status, body, _ := get(t, "http://"+addr+"/metrics", "")
				if status != http.StatusOK || !strings.Contains(body, "controller_runtime_") {
					t.Errorf("status %d, want the metrics: %.200s", status, body)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddress(t)
			p := startManager(t, manager, c, append([]string{"--metrics-bind-address=" + addr}, tc.args...)...)
			p.waitListening(t, addr)
			tc.check(t, addr)
		})
	}

	// A --metrics-cert-path without the certificate stops the manager, rather than
	// leaving it on a self-signed certificate that a scraper set to verify would refuse.
	t.Run("--metrics-cert-path without the certificate: the manager stops", func(t *testing.T) {
		p := startManager(t, manager, c, "--metrics-bind-address="+freeAddress(t), "--metrics-cert-path="+t.TempDir())
		p.waitFailure(t, "cannot load the metrics certificate")
	})
}

// TestLeaderElectionID: with config/rbac alone, the manager leads on the Lease of its
// default --leader-election-id, the one Lease that Role names. Managers with ids of their
// own, each granted its Lease as the chart's per-release Role does, hold a Lease each, so
// two installations in one namespace both reconcile; an id that is no Lease name stops the
// manager at start.
func TestLeaderElectionID(t *testing.T) {
	const defaultID = "shopkeeper.commerce.shopkeeper.dev"
	for _, obj := range configRBAC(t) {
		if obj.GetObjectKind().GroupVersionKind().Kind != "Role" {
			continue
		}
		var role rbacv1.Role
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.(*unstructured.Unstructured).Object, &role); err != nil {
			t.Fatal(err)
		}
		for _, rule := range role.Rules {
			if slices.Contains(rule.Resources, "leases") && !slices.Equal(rule.ResourceNames, []string{defaultID}) &&
				!slices.Equal(rule.Verbs, []string{"create"}) {
				t.Errorf("Role %s: rule %+v reaches other Leases than %s", role.Name, rule, defaultID)
			}
		}
	}

	c := startCluster(t)
	manager := buildManager(t)
	startManager(t, manager, c, "--metrics-bind-address=0", "--leader-elect", "--leader-election-namespace="+managerNamespace)
	c.waitLeader(t, defaultID)

	ids := []string{"a.commerce.shopkeeper.dev", "b.commerce.shopkeeper.dev"}
	c.grantLeases(t, ids...)
	for _, id := range ids {
		startManager(t, manager, c, "--metrics-bind-address=0", "--leader-elect",
			"--leader-election-namespace="+managerNamespace, "--leader-election-id="+id)
	}
	for _, id := range ids {
		c.waitLeader(t, id)
	}

	p := startManager(t, manager, c, "--metrics-bind-address=0", "--leader-elect", "--leader-election-id=Shopkeeper_Lease")
	p.waitFailure(t, "is no Lease name")
}

// waitLeader waits up to a minute until the Lease id in managerNamespace has a holder.
func (c *cluster) waitLeader(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		lease := &coordinationv1.Lease{}
		err := c.admin.Get(t.Context(), client.ObjectKey{Namespace: managerNamespace, Name: id}, lease)
		if err == nil && ptr.Deref(lease.Spec.HolderIdentity, "") != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lease %s has no holder after a minute (%v)", id, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// grantLeases lets the manager's ServiceAccount lead on the Leases named ids, beside the
// one config/rbac grants.
func (c *cluster) grantLeases(t *testing.T, ids ...string) {
	t.Helper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "more-leases", Namespace: managerNamespace},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{coordinationv1.GroupName}, Resources: []string{"leases"},
			ResourceNames: ids, Verbs: []string{"get", "update", "patch"},
		}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "more-leases", Namespace: managerNamespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: managerServiceAccount, Namespace: managerNamespace}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := c.admin.Create(t.Context(), obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
	}
}

// TestShutdownWhileCachesCannotSync: a manager that cannot read what it watches (here it
// acts as a ServiceAccount bound to nothing) never syncs its caches; stopped then, it
// still exits once --shutdown-timeout has passed, rather than spin until it is killed.
func TestShutdownWhileCachesCannotSync(t *testing.T) {
	c := startCluster(t)
	manager := buildManager(t)
	p := startManagerAs(t, manager, c, c.strangerToken, "--metrics-bind-address=0", "--shutdown-timeout=2s")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.log.String(), "starting the manager") {
		if time.Now().After(deadline) {
			t.Fatalf("the manager did not start:\n%s", p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // its informers are failing by now
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitFailure(t, "did not stop within --shutdown-timeout")
}

// waitFailure waits until the manager exits with a failure and a log that says why.
func (p *managerProcess) waitFailure(t *testing.T, why string) {
	t.Helper()
	select {
	case <-p.exited:
		var exit *exec.ExitError
		if !errors.As(p.err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("manager exited with %v, want a failure", p.err)
		}
		if log := p.log.String(); !strings.Contains(log, why) {
			t.Errorf("log does not say why:\n%s", log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the manager still runs, want it stopped: %s", why)
	}
}

// startCluster starts envtest with the Shop CRD and applies config/rbac as its
// kustomization lists it, in namespace system, and makes the ServiceAccounts' tokens.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: export KUBEBUILDER_ASSETS=$(hack/kube-binaries.sh)")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	ctx := t.Context()
	k8s, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	create := func(obj client.Object) {
		t.Helper()
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
	}
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}})
	for _, obj := range configRBAC(t) {
		create(obj)
	}
	for _, name := range []string{"metrics-scraper", "stranger"} {
		create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: managerNamespace}})
	}
	create(&rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "metrics-scraper", Namespace: managerNamespace}},
	})

	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	token := func(name string) string {
		t.Helper()
		tr, err := clientset.CoreV1().ServiceAccounts(managerNamespace).CreateToken(ctx, name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}},
			metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token of %s: %v", name, err)
		}
		return tr.Status.Token
	}
	return &cluster{
		host: cfg.Host, caData: cfg.CAData, admin: k8s,
		managerToken: token(managerServiceAccount), readerToken: token("metrics-scraper"), strangerToken: token("stranger"),
	}
}

// configRBAC reads the objects of every file config/rbac/kustomization.yaml lists, so
// that a file left out of it is left out here too.
func configRBAC(t *testing.T) []client.Object {
	t.Helper()
	dir := filepath.Join("..", "..", "config", "rbac")
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kustomization struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &kustomization); err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for _, file := range kustomization.Resources {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("decode %s: %v", file, err)
			}
			if obj != nil {
				objs = append(objs, &unstructured.Unstructured{Object: obj})
			}
		}
	}
	return objs
}

// buildManager builds this package's binary once per test.
func buildManager(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "manager")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	if out, err := testproc.GoBuild(ctx, bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// managerProcess is the manager running as a child process.
type managerProcess struct {
	cmd *exec.Cmd
	log *testproc.Buffer
	// exited is closed once the process has ended, with its result in err.
	exited chan struct{}
	err    error
}

// startManager runs the manager as the controller-manager ServiceAccount, and stops it
// (SIGTERM) when the test ends, logging its output if the test failed.
func startManager(t *testing.T, bin string, c *cluster, args ...string) *managerProcess {
	t.Helper()
	return startManagerAs(t, bin, c, c.managerToken, args...)
}

// startManagerAs is startManager acting with token.
func startManagerAs(t *testing.T, bin string, c *cluster, token string, args ...string) *managerProcess {
	t.Helper()
	host := c.host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	err := clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"envtest": {Server: host, CertificateAuthorityData: c.caData}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"manager": {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{"manager": {Cluster: "envtest", AuthInfo: "manager"}},
		CurrentContext: "manager",
	}, kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig=" + kubeconfig, "--health-probe-bind-address=0"}, args...)...)
	p := &managerProcess{cmd: cmd, log: &testproc.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("manager %s log:\n%s", strings.Join(args, " "), p.log.String())
		}
	})
	return p
}

// waitListening waits until the manager accepts connections on addr.
func (p *managerProcess) waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("the manager exited: %v\n%s", p.err, p.log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
	}
}

// get fetches url with the bearer token, if any, trusting any certificate as a scraper
// of a self-signed endpoint must; state is nil over plain HTTP.
func get(t *testing.T, url, token string) (status int, body string, state *tls.ConnectionState) {
	t.Helper()
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the endpoint's certificate is checked by the tests themselves
		ForceAttemptHTTP2: true,
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: transport, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b), resp.TLS
}

// writeCertificate writes a self-signed certificate and key as tls.crt and tls.key
// into dir, as a kubernetes.io/tls Secret mounts them, and returns the certificate.
func writeCertificate(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("shopkeeper-metrics-test", []net.IP{{127, 0, 0, 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// freeAddress returns a loopback address no one listens on now.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
