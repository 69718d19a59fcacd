//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Where config/default installs the operator: its namespace and namePrefix.
const (
	operatorNamespace = "shopkeeper-system"
	managerDeployment = "shopkeeper-controller-manager"
	shopCRD           = "shops.commerce.shopkeeper.dev"
)

// operatorInstall is the operator as the suite installed it.
type operatorInstall struct {
	// overlay is a kustomization: config/default with the manager's image replaced
	// and a short stall deadline (writeOperatorOverlay).
	overlay string
	// preexisting: the CRD was in the cluster before the suite, so the operator is
	// someone else's and stays.
	preexisting bool
}

// newOperatorInstall notes whether the operator is there already and writes the
// kustomization that installs it with the image under test.
func newOperatorInstall(ctx context.Context) (*operatorInstall, error) {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdGVK)
	err := k8sClient.Get(ctx, types.NamespacedName{Name: shopCRD}, crd)
	if client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	preexisting := err == nil
	dir, err := os.MkdirTemp("", "shopkeeper-e2e-operator-")
	if err != nil {
		return nil, err
	}
	op := &operatorInstall{overlay: dir, preexisting: preexisting}
	return op, writeOperatorOverlay(dir, env.managerImage)
}

// install installs the CRD, RBAC and the manager from config/default, with kubectl's
// own kustomize (no file of the repository is edited), and waits until the manager's
// Deployment has rolled out and is Available.
func (op *operatorInstall) install(ctx context.Context) {
	GinkgoHelper()
	dir := op.overlay
	// --force-conflicts: an earlier install by another field manager (helm, a
	// client-side apply) must not stop the suite from taking the fields over.
	Expect(kubectl(ctx, "apply", "--server-side", "--force-conflicts", "-k", dir)).Error().NotTo(HaveOccurred())
	Expect(kubectl(ctx, "wait", "--for=condition=Established", "crd/"+shopCRD, "--timeout=1m")).Error().NotTo(HaveOccurred())
	Expect(kubectl(ctx, "rollout", "status", "deployment/"+managerDeployment, "-n", operatorNamespace, "--timeout=5m")).Error().NotTo(HaveOccurred())
	Expect(kubectl(ctx, "wait", "--for=condition=Available", "deployment/"+managerDeployment, "-n", operatorNamespace, "--timeout=1m")).Error().NotTo(HaveOccurred())

	// The patch selects the manager by label: check that it took.
	manager := &appsv1.Deployment{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: managerDeployment}, manager)).To(Succeed())
	Expect(manager.Spec.Template.Spec.Containers).To(HaveLen(1))
	Expect(manager.Spec.Template.Spec.Containers[0].Image).To(Equal(env.managerImage))
	AddReportEntry("operator", fmt.Sprintf("%s/%s runs %s (CRD there before the suite: %v)",
		operatorNamespace, managerDeployment, env.managerImage, op.preexisting))
}

// uninstall removes what installOperator installed, unless E2E_KEEP is set or the
// operator was there before the suite.
func (op *operatorInstall) uninstall(ctx context.Context) {
	defer os.RemoveAll(op.overlay)
	switch {
	case env.keepOperator:
		AddReportEntry("operator", "left installed: E2E_KEEP is set")
		return
	case op.preexisting:
		AddReportEntry("operator", "left installed: its CRD was in the cluster before the suite")
		return
	}
	out, err := kubectl(ctx, "delete", "-k", op.overlay, "--ignore-not-found", "--wait", "--timeout=3m")
	Expect(err).NotTo(HaveOccurred(), out)
}

// writeOperatorOverlay writes into dir a kustomization of config/default whose manager
// runs image, with --stall-deadline set to stallDeadline. The manager is found by its
// component label, as config/manager sets it, so the overlay does not depend on the
// names config/default gives.
func writeOperatorOverlay(dir, image string) error {
	base, err := filepath.Rel(dir, filepath.Join(repoRoot, "config", "default"))
	if err != nil {
		return err
	}
	patch, err := json.Marshal([]map[string]string{
		{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image},
		// A short stall deadline, so that a spec can see a stalled rollout reported.
		{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--stall-deadline=" + stallDeadline.String()},
	})
	if err != nil {
		return err
	}
	kustomization, err := yaml.Marshal(map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{base},
		"patches": []map[string]any{{
			"target": map[string]string{"kind": "Deployment", "labelSelector": "app.kubernetes.io/component=controller-manager"},
			"patch":  string(patch),
		}},
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), kustomization, 0o644)
}

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
