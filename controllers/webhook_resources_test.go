package controllers

import (
	"context"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// A webhook written with controller-runtime that refuses a Deployment with apierrors.NewInvalid
// answers with the field's cause, which the API server passes on behind its own words
// (k8s.io/apiserver's webhook ToStatusErr): a cluster policy, which may be lifted, not the API
// server's rule on a container's resources.
var _ = It("A webhook refusing the resources of every Deployment is a policy, looked at again, not a verdict kept", func() {
	shop := minimalShop(unwatchedNamespace, "hooked")
	shop.Spec.Gateway.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}
	r, _, reconcileShop := drivenByHand(shop)
	var policy atomic.Bool
	policy.Store(true)
	deny := func(obj client.Object) error {
		d, ok := obj.(*appsv1.Deployment)
		if !ok || !policy.Load() {
			return nil
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if m, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && m.Cmp(resource.MustParse("1Gi")) > 0 {
				field := "spec.template.spec.containers[0].resources.limits[memory]"
				return &apierrors.StatusError{ErrStatus: metav1.Status{
					Status: metav1.StatusFailure, Code: 422, Reason: metav1.StatusReasonInvalid,
					Message: `admission webhook "limits.example.com" denied the request: Deployment.apps "x" is invalid: ` +
						field + `: Invalid value: "2Gi": at most 1Gi in this cluster`,
					Details: &metav1.StatusDetails{Group: "apps", Kind: "Deployment", Causes: []metav1.StatusCause{{
						Type: metav1.CauseTypeFieldValueInvalid, Field: field, Message: `Invalid value: "2Gi": at most 1Gi in this cluster`,
					}}},
				}}
			}
		}
		return nil
	}
	r.Client = interceptor.NewClient(r.Client.(client.WithWatch), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := deny(obj); err != nil {
				return err
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := deny(obj); err != nil {
				return err
			}
			return c.Update(ctx, obj, opts...)
		},
	})

	res, err := reconcileShop()
	Expect(err).NotTo(HaveOccurred())
	Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("True/ChildForbidden"))
	Expect(meta.FindStatusCondition(getShop(shop).Status.Conditions, ConditionDegraded).Message).To(ContainSubstring("limits.example.com"))
	Expect(res.RequeueAfter).To(Equal(ConflictRetry), "a policy lifted brings no event: the retry is the only way back")

	By("the policy lifted: the next look makes the gateway")
	policy.Store(false)
	_, err = reconcileShop()
	Expect(err).NotTo(HaveOccurred())
	Expect(conditionOf(shop, ConditionDegraded)()).To(Equal("False/AsExpected"))
})
