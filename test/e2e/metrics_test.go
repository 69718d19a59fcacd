//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The manager's metrics endpoint as config/default deploys it: HTTPS on the container
// port named metrics, readable by a bearer token whose user the ClusterRole
// metricsReaderRole lets get /metrics.
const (
	managerMetricsPort = 8443
	metricsReaderRole  = "shopkeeper-metrics-reader"
)

var _ = Describe("The operator's metrics", func() {
	It("are served over HTTPS only to a token allowed to read them", func(ctx SpecContext) {
		if operator.preexisting {
			Skip("the operator in the cluster was installed by someone else: its metrics are not this suite's to read")
		}
		ns := ownNamespace(ctx, "shopkeeper-e2e-metrics-", nil)

		By("a ServiceAccount bound to the metrics reader role, and one that is not")
		for _, name := range []string{"scraper", "stranger"} {
			Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}})).To(Succeed())
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ns.Name + "-scraper"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: metricsReaderRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns.Name, Name: "scraper"}},
		}
		Expect(k8sClient.Create(ctx, binding)).To(Succeed())
		// Cluster-wide: the namespace's deletion does not take it.
		DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, binding))).To(Succeed()) })
		token := func(sa string) string {
			tr, err := clientset.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, sa,
				&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return tr.Status.Token
		}
		scraper, stranger := token("scraper"), token("stranger")

		fwd := newPodForward(operatorNamespace, map[string]string{
			"app.kubernetes.io/name": "shopkeeper", "app.kubernetes.io/component": "controller-manager",
		}, managerMetricsPort)
		DeferCleanup(fwd.Close)
		base, err := fwd.URL(ctx)
		Expect(err).NotTo(HaveOccurred())
		url := strings.Replace(base, "http://", "https://", 1) + "/metrics"
		// The manager serves a certificate it made itself (no --metrics-cert-path here):
		// the client cannot verify it, and what is tested is who may read, not the chain.
		httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the manager's self-signed certificate
		}}
		get := func(ctx context.Context, token string) (int, string, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return 0, "", err
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body), err
		}

		By("refusing a request without a token (401) and a token without the role (403)")
		status, _, err := get(ctx, "")
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(http.StatusUnauthorized))
		status, _, err = get(ctx, stranger)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(http.StatusForbidden))

		By("serving the controller's metrics to the scraper's token")
		// The API server's authorizer and the manager's decision cache may take a moment
		// to see the new binding.
		Eventually(ctx, func(g Gomega) {
			status, body, err := get(ctx, scraper)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(status).To(Equal(http.StatusOK))
			g.Expect(body).To(ContainSubstring(`controller_runtime_reconcile_total{controller="shop"`))
		}).WithTimeout(time.Minute).Should(Succeed())
	})
})
