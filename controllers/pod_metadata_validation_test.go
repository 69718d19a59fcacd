package controllers

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// The API server refuses a pod whose label values are not label values, or whose
// annotations hold over 256 KiB: the Shop's schema refuses them first, naming the field,
// rather than admitting a Shop whose every workload is then refused (ChildRejected).
var _ = Describe("A Shop's podLabels values and podAnnotations size", func() {
	const (
		labelMessage      = "podLabels values must be label values"
		annotationMessage = "podAnnotations must hold at most 261888 bytes, keys and values together"
	)

	// annotationsOf is podAnnotations of n keys whose keys and values hold size bytes in
	// all, the values made of fill (a character of one or more bytes) and, to make up the
	// size, 'a'.
	annotationsOf := func(n, size int, fill string) map[string]shopv1.AnnotationValue {
		m := map[string]shopv1.AnnotationValue{}
		for i := range n {
			key := fmt.Sprintf("example.com/note-%02d", i)
			share := size/n - len(key)
			if i == n-1 {
				share = size - (n-1)*(size/n) - len(key)
			}
			m[key] = shopv1.AnnotationValue(strings.Repeat(fill, share/len(fill)) + strings.Repeat("a", share%len(fill)))
		}
		return m
	}

	DescribeTable("are refused when the API server would refuse them on a pod, naming the field",
		func(edit func(*shopv1.Shop), field, message string) {
			shop := minimalShop(unwatchedNamespace, "podmeta")
			edit(shop)
			err := k8sClient.Create(ctx, shop, client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(And(ContainSubstring(field), ContainSubstring(message)))
		},
		Entry("a label value of 64 characters", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": shopv1.LabelValue(strings.Repeat("a", 64))}
		}, "spec.podLabels.team", "Too long: may not be more than 63"),
		Entry("a label value of 40 KB", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": shopv1.LabelValue(strings.Repeat("a", 40_000))}
		}, "spec.podLabels.team", "Too long: may not be more than 63"),
		Entry("a label value with a space", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "shop a"}
		}, "spec.podLabels[team]", labelMessage),
		Entry("a label value with a slash", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "a/b"}
		}, "spec.podLabels[team]", labelMessage),
		Entry("a label value that is not ASCII", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "équipe"}
		}, "spec.podLabels[team]", labelMessage),
		Entry("a label value starting with '-'", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "-x"}
		}, "spec.podLabels[team]", labelMessage),
		Entry("a label value ending with '.'", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "x."}
		}, "spec.podLabels[team]", labelMessage),
		Entry("one annotation one byte over", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = annotationsOf(1, shopv1.MaxPodAnnotationsSize+1, "a")
		}, "spec.podAnnotations", annotationMessage),
		Entry("32 annotations one byte over together", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = annotationsOf(32, shopv1.MaxPodAnnotationsSize+1, "a")
		}, "spec.podAnnotations", annotationMessage),
		// Counted in bytes, as the API server counts them, not in characters.
		Entry("annotations over in bytes, not in characters", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = annotationsOf(2, shopv1.MaxPodAnnotationsSize+2, "é")
		}, "spec.podAnnotations", annotationMessage),
		Entry("annotations of 256 KiB, which leave the controller no room", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = annotationsOf(4, 256<<10, "a")
		}, "spec.podAnnotations", annotationMessage),
	)

	It("are refused when an update brings them", func() {
		shop := minimalShop(unwatchedNamespace, "podmeta-update")
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, shop)).To(Succeed()) })
		shop.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "-x"}
		err := k8sClient.Update(ctx, shop)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(labelMessage))
		shop.Spec.PodLabels = nil
		shop.Spec.PodAnnotations = annotationsOf(8, shopv1.MaxPodAnnotationsSize+1, "a")
		err = k8sClient.Update(ctx, shop)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(annotationMessage))
	})

	DescribeTable("are accepted when a pod takes them",
		func(edit func(*shopv1.Shop)) {
			shop := minimalShop(unwatchedNamespace, "podmeta")
			edit(shop)
			Expect(k8sClient.Create(ctx, shop, client.DryRunAll)).To(Succeed())
		},
		Entry("an empty label value", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": ""}
		}),
		Entry("a label value of 63 characters", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": shopv1.LabelValue(strings.Repeat("a", 63))}
		}),
		Entry("a label value of one character", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "x"}
		}),
		Entry("a label value with every separator", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "A-b_c.9"}
		}),
		Entry("32 labels", func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{}
			for i := range 32 {
				s.Spec.PodLabels[fmt.Sprintf("example.com/l%02d", i)] = shopv1.LabelValue(strings.Repeat("v", 63))
			}
		}),
		Entry("an empty annotation value", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = map[string]shopv1.AnnotationValue{"example.com/note": ""}
		}),
		Entry("one annotation of the most bytes", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = annotationsOf(1, shopv1.MaxPodAnnotationsSize, "a")
		}),
		Entry("32 annotations of the most bytes together", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = annotationsOf(32, shopv1.MaxPodAnnotationsSize, "a")
		}),
		Entry("annotations of the most bytes in characters of two bytes", func(s *shopv1.Shop) {
			s.Spec.PodAnnotations = annotationsOf(2, shopv1.MaxPodAnnotationsSize, "é")
		}),
	)

	// The room kept for the controller's own annotations is enough: a Shop whose
	// podAnnotations hold the most bytes gets every workload, restarted with kubectl too.
	It("of the most bytes leave room for the controller's own annotations", func() {
		shop := minimalShop(unwatchedNamespace, "podmeta-most")
		shop.Spec.PodAnnotations = annotationsOf(3, shopv1.MaxPodAnnotationsSize, "a")
		_, _, reconcileShop := drivenByHand(shop)
		_, err := reconcileShop()
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
		Expect(missingChildren(shop)).To(BeEmpty())
		restart := resources.EmptyWorkload(shop, resources.Gateway)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(restart), restart)).To(Succeed())
		// As `kubectl rollout restart` writes it, with the longest RFC 3339 time.
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`,
			restartedAtAnnotation, time.Date(2026, 11, 28, 6, 1, 28, 0, time.FixedZone("", -9*3600)).Format(time.RFC3339))
		Expect(k8sClient.Patch(ctx, restart, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
	})

	// A Shop stored before the rules (by an earlier version of the CRD) is not refused every
	// write for the values it holds: the API server ratchets the rules of a field the write
	// leaves as it is. Its workloads are still refused, and the Shop says so.
	It("stored before the rules existed do not block status writes or unrelated spec edits", func() {
		badLabels := map[string]shopv1.LabelValue{"team": "-x", "tier": shopv1.LabelValue(strings.Repeat("a", 64))}
		badAnnotations := annotationsOf(2, 256<<10+1, "a")
		shop := minimalShop(unwatchedNamespace, "podmeta-before")
		shop.Spec.PodLabels = badLabels
		shop.Spec.PodAnnotations = badAnnotations
		withoutPodMetadataRules(func() { Expect(k8sClient.Create(ctx, shop)).To(Succeed()) })
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, shop)).To(Succeed()) })

		By("writing the status")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s := getShop(shop)
			meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{
				Type: ConditionReady, Status: metav1.ConditionFalse, Reason: "Test", Message: "written by the test"})
			return k8sClient.Status().Update(ctx, s)
		})).To(Succeed())
		Expect(conditionOf(shop, ConditionReady)()).To(Equal("False/Test"))

		By("editing other fields of the spec")
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.Version = "v0.2.0" })
		Expect(getShop(shop).Spec.Version).To(Equal("v0.2.0"))
		Expect(getShop(shop).Spec.PodLabels).To(Equal(badLabels))
		Expect(getShop(shop).Spec.PodAnnotations).To(Equal(badAnnotations))

		By("adding a good label beside the bad ones")
		updateShop(shop, func(s *shopv1.Shop) { s.Spec.PodLabels["owner"] = "team-a" })

		By("refusing a bad value changed for another bad one, and more annotations")
		s := getShop(shop)
		s.Spec.PodLabels["team"] = "-y"
		err := k8sClient.Update(ctx, s)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(And(ContainSubstring("spec.podLabels[team]"), ContainSubstring(labelMessage)))
		s = getShop(shop)
		s.Spec.PodAnnotations["example.com/more"] = "1"
		err = k8sClient.Update(ctx, s)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(annotationMessage))

		By("reporting the workloads the API server refuses")
		r, _, _ := countingReconciler()
		_, err = r.Reconcile(ctx, reconcileRequest(shop))
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("True/ChildRejected"))

		By("taking the fix")
		updateShop(shop, func(s *shopv1.Shop) {
			s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "x", "tier": "a"}
			s.Spec.PodAnnotations = map[string]shopv1.AnnotationValue{"example.com/note": "1"}
		})
		_, err = r.Reconcile(ctx, reconcileRequest(shop))
		Expect(err).NotTo(HaveOccurred())
		Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
	})
})

// reconcileRequest is the request that reconciles shop.
func reconcileRequest(shop *shopv1.Shop) reconcile.Request {
	return reconcile.Request{NamespacedName: client.ObjectKeyFromObject(shop)}
}

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// withoutPodMetadataRules runs write while the Shop CRD lacks the rules on podLabels'
// values and podAnnotations' size, as an earlier version of it did, and puts them back.
func withoutPodMetadataRules(write func()) {
	GinkgoHelper()
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(crdGVK)
	key := types.NamespacedName{Name: "shops." + shopv1.GroupVersion.Group}
	Expect(k8sClient.Get(ctx, key, crd)).To(Succeed())
	versions, _, err := unstructured.NestedSlice(crd.Object, "spec", "versions")
	Expect(err).NotTo(HaveOccurred())
	Expect(versions).To(HaveLen(1))
	saved := runtime.DeepCopyJSONValue(versions).([]any)
	props := []string{"schema", "openAPIV3Schema", "properties", "spec", "properties"}
	version := versions[0].(map[string]any)
	unstructured.RemoveNestedField(version, append(props, "podLabels", "additionalProperties", "maxLength")...)
	unstructured.RemoveNestedField(version, append(props, "podLabels", "additionalProperties", "x-kubernetes-validations")...)
	unstructured.RemoveNestedField(version, append(props, "podAnnotations", "additionalProperties", "maxLength")...)
	rules, found, err := unstructured.NestedSlice(version, append(props, "podAnnotations", "x-kubernetes-validations")...)
	Expect(err).NotTo(HaveOccurred())
	Expect(found).To(BeTrue())
	kept := []any{}
	for _, rule := range rules {
		if !strings.Contains(rule.(map[string]any)["rule"].(string), "sum()") {
			kept = append(kept, rule)
		}
	}
	Expect(kept).To(HaveLen(len(rules)-1), "the size rule of podAnnotations")
	Expect(unstructured.SetNestedSlice(version, kept, append(props, "podAnnotations", "x-kubernetes-validations")...)).To(Succeed())

	setVersions := func(v []any) {
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			Expect(k8sClient.Get(ctx, key, crd)).To(Succeed())
			Expect(unstructured.SetNestedSlice(crd.Object, v, "spec", "versions")).To(Succeed())
			return k8sClient.Update(ctx, crd)
		})).To(Succeed())
	}
	// A Shop the rules refuse, to tell when the API server serves a schema.
	probe := func() error {
		s := minimalShop(unwatchedNamespace, "podmeta-probe")
		s.Spec.PodLabels = map[string]shopv1.LabelValue{"team": "-x"}
		return k8sClient.Create(ctx, s, client.DryRunAll)
	}
	restore := func() {
		setVersions(saved)
		Eventually(probe).WithTimeout(timeout).Should(MatchError(ContainSubstring("podLabels values must be label values")))
	}
	setVersions(versions)
	DeferCleanup(restore) // should write fail
	Eventually(probe).WithTimeout(timeout).Should(Succeed(), "the CRD without the rules is never served")
	write()
	restore()
}
