package controllers

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// apply makes the cluster hold desired: it creates the object when missing, and
// updates it only when a field the controller sets differs, so that a reconcile that
// finds everything in place sends no write at all. Fields the API server or other
// controllers fill (defaults, a Service's clusterIP, a claim's volume) are left alone.
//
// It returns a *Problem when the API server refuses the object as invalid or the name
// belongs to someone else: retrying would not help, the user must act.
func (r *ShopReconciler) apply(ctx context.Context, shop *shopv1.Shop, desired client.Object) error {
	kind := kindOf(desired)
	existing := desired.DeepCopyObject().(client.Object)
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err):
		err = r.Create(ctx, desired)
		if err == nil {
			r.event(shop, desired, corev1.EventTypeNormal, "Created", "Create", "created %s %s", kind, desired.GetName())
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return r.applyFailed(shop, desired, "create", err)
		}
		// The cache holds only objects with our labels: one that lost them is out of
		// sight. Read it from the API server and take it back if it is ours.
		existing = desired.DeepCopyObject().(client.Object)
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), existing); err != nil {
			return fmt.Errorf("get %s %s: %w", kind, desired.GetName(), err)
		}
	case err != nil:
		return fmt.Errorf("get %s %s: %w", kind, desired.GetName(), err)
	}

	if !metav1.IsControlledBy(existing, shop) {
		return conflict(kind, desired.GetName())
	}
	metaChanged := mergeLabels(desired, existing)
	if !syncSpec(desired, existing) && !metaChanged {
		return nil
	}
	if err := r.Update(ctx, existing); err != nil {
		return r.applyFailed(shop, desired, "update", err)
	}
	r.event(shop, existing, corev1.EventTypeNormal, "Updated", "Update", "updated %s %s", kind, desired.GetName())
	return nil
}

// conflict is the Problem of a child whose name is taken by an object the Shop does
// not control.
func conflict(kind, name string) *Problem {
	return &Problem{Reason: ReasonChildConflict, Message: fmt.Sprintf(
		"%s %s already exists and does not belong to this Shop; delete or rename it", kind, name)}
}

// applyFailed turns a refused write into a Problem when the object itself is invalid
// (no retry helps) and into a returned error otherwise (controller-runtime backs off).
func (r *ShopReconciler) applyFailed(shop *shopv1.Shop, obj client.Object, verb string, err error) error {
	kind := kindOf(obj)
	r.event(shop, obj, corev1.EventTypeWarning, "ApplyFailed", verb, "cannot %s %s %s: %v", verb, kind, obj.GetName(), err)
	if apierrors.IsInvalid(err) {
		return &Problem{Reason: ReasonChildRejected, Message: fmt.Sprintf("the API server refused %s %s: %v", kind, obj.GetName(), err)}
	}
	return fmt.Errorf("%s %s %s: %w", verb, kind, obj.GetName(), err)
}

// mergeLabels adds or corrects the labels of desired on existing and keeps the rest.
func mergeLabels(desired, existing client.Object) bool {
	labels := existing.GetLabels()
	changed := false
	for k, v := range desired.GetLabels() {
		if labels[k] != v {
			changed = true
		}
	}
	if changed {
		merged := maps.Clone(labels)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, desired.GetLabels())
		existing.SetLabels(merged)
	}
	return changed
}

// syncSpec copies into existing the fields the controller owns when they differ
// from desired, and tells whether it changed anything.
//
// Specs are compared with equality.Semantic.DeepDerivative: a field desired leaves
// empty is not compared, so the API server's defaults never look like drift. Where
// an empty value is meaningful (an environment variable set to "", a command the
// image default replaces) the comparison is exact.
func syncSpec(desired, existing client.Object) bool {
	switch d := desired.(type) {
	case *appsv1.Deployment:
		e := existing.(*appsv1.Deployment)
		if equality.Semantic.DeepDerivative(d.Spec, e.Spec) && containersMatch(d.Spec.Template.Spec.Containers, e.Spec.Template.Spec.Containers) {
			return false
		}
		e.Spec = d.Spec
	case *corev1.Service:
		e := existing.(*corev1.Service)
		if equality.Semantic.DeepDerivative(d.Spec, e.Spec) && len(d.Spec.Ports) == len(e.Spec.Ports) {
			return false
		}
		ports := d.DeepCopy().Spec.Ports
		if d.Spec.Type != corev1.ServiceTypeClusterIP {
			// Keep the node ports the API server allocated, or every update would move them.
			for i := range ports {
				for _, old := range e.Spec.Ports {
					if old.Name == ports[i].Name && ports[i].NodePort == 0 {
						ports[i].NodePort = old.NodePort
					}
				}
			}
		}
		e.Spec.Type, e.Spec.Selector, e.Spec.Ports = d.Spec.Type, d.Spec.Selector, ports
	case *corev1.PersistentVolumeClaim:
		// Everything but the requested size is immutable once bound.
		e := existing.(*corev1.PersistentVolumeClaim)
		want := d.Spec.Resources.Requests[corev1.ResourceStorage]
		if have, ok := e.Spec.Resources.Requests[corev1.ResourceStorage]; ok && have.Cmp(want) == 0 {
			return false
		}
		if e.Spec.Resources.Requests == nil {
			e.Spec.Resources.Requests = corev1.ResourceList{}
		}
		e.Spec.Resources.Requests[corev1.ResourceStorage] = want
	case *corev1.Secret:
		e := existing.(*corev1.Secret)
		if equality.Semantic.DeepEqual(d.Data, e.Data) && d.Type == e.Type {
			return false
		}
		e.Data, e.StringData = d.Data, nil
	case *networkingv1.NetworkPolicy:
		return syncDerived(d.Spec, &existing.(*networkingv1.NetworkPolicy).Spec)
	case *policyv1.PodDisruptionBudget:
		return syncDerived(d.Spec, &existing.(*policyv1.PodDisruptionBudget).Spec)
	default:
		panic(fmt.Sprintf("controllers: no spec sync for %T", desired))
	}
	return true
}

// syncDerived replaces existing with desired unless existing already derives from it.
func syncDerived[S any](desired S, existing *S) bool {
	if equality.Semantic.DeepDerivative(desired, *existing) {
		return false
	}
	*existing = desired
	return true
}

// containersMatch compares exactly what DeepDerivative would let slip: the number of
// containers, and each one's image, command, arguments and environment.
func containersMatch(desired, existing []corev1.Container) bool {
	if len(desired) != len(existing) {
		return false
	}
	for i := range desired {
		d, e := desired[i], existing[i]
		if d.Image != e.Image || !equality.Semantic.DeepEqual(d.Command, e.Command) ||
			!equality.Semantic.DeepEqual(d.Args, e.Args) || !equality.Semantic.DeepEqual(d.Env, e.Env) {
			return false
		}
	}
	return true
}

// kindOf names an object's kind for messages; the builders leave TypeMeta empty.
func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *corev1.Service:
		return "Service"
	case *corev1.PersistentVolumeClaim:
		return "PersistentVolumeClaim"
	case *corev1.Secret:
		return "Secret"
	case *networkingv1.NetworkPolicy:
		return "NetworkPolicy"
	case *policyv1.PodDisruptionBudget:
		return "PodDisruptionBudget"
	}
	return fmt.Sprintf("%T", obj)
}
