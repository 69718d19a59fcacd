package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// apply makes the cluster hold desired: it creates the object when missing, and
// updates it only when a field the controller sets differs, so that a reconcile that
// finds everything in place sends no write at all. Fields the API server or other
// controllers fill (defaults, a Service's clusterIP, a claim's volume) are left alone.
//
// It returns a *Problem when the API server refuses the object as invalid or the name
// belongs to someone else: retrying at once would not help, the user must act.
func (r *ShopReconciler) apply(ctx context.Context, shop *shopv1.Shop, desired client.Object) error {
	kind := kindOf(desired)
	if isWorkload(desired) {
		setSpecHash(desired, workloadSpec(desired))
	}
	existing := desired.DeepCopyObject().(client.Object)
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err):
		if isWorkload(desired) {
			r.recordStoredSpec(ctx, desired)
		}
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

	controlled := metav1.IsControlledBy(existing, shop)
	if !controlled && !adoptable(existing, shop) {
		return conflict(kind, existing, shop)
	}
	if claim, ok := existing.(*corev1.PersistentVolumeClaim); ok {
		held, err := r.engineOnClaim(ctx, shop, claim, !controlled)
		if err != nil {
			return err
		}
		if p := claimMismatch(desired.(*corev1.PersistentVolumeClaim), claim, held, !controlled); p != nil {
			return p
		}
	}
	adopted := false
	if !controlled {
		if err := r.stillThere(ctx, shop); err != nil {
			return err
		}
		existing.SetOwnerReferences(append(existing.GetOwnerReferences(), desired.GetOwnerReferences()...))
		adopted = true
	}
	resize := resizeOf(desired, existing) // before syncSpec writes the size asked into existing
	if resize.shrinks() && shop.Status.ObservedGeneration != shop.Generation {
		// Said at the change of the Shop that asks less, not again at every reconcile.
		r.event(shop, existing, corev1.EventTypeNormal, ReasonStorageNotShrunk, "Update",
			"PersistentVolumeClaim %s keeps its %s: %s asks %s, and a claim never shrinks",
			desired.GetName(), resize.held.String(), resize.field, resize.asked.String())
	}
	metaChanged := mergeLabels(desired, existing) || adopted
	var specChanged, noted bool
	if isWorkload(desired) {
		if specChanged, noted, err = r.syncWorkload(ctx, desired, existing); err != nil {
			// A conflict (existing changed since it was read) is retried as an update's.
			return r.applyFailed(shop, desired, "update", err)
		}
	} else {
		specChanged = syncSpec(desired, existing)
	}
	if !specChanged && !noted && !metaChanged {
		return nil
	}
	version := existing.GetResourceVersion()
	if err := r.Update(ctx, existing); err != nil {
		return resize.explain(r.applyFailed(shop, desired, "update", err))
	}
	if adopted {
		r.event(shop, existing, corev1.EventTypeNormal, "Adopted", "Update", "took back %s %s, which had lost its owner", kind, desired.GetName())
		return nil
	}
	if existing.GetResourceVersion() == version || (!specChanged && !metaChanged) {
		// The API server stored nothing new (what differed was a default it fills in
		// that syncSpec does not know of), or only the controller's record of a
		// workload found in sync (syncWorkload: after a `kubectl rollout restart`, say).
		// There is no change to tell.
		return nil
	}
	r.event(shop, existing, corev1.EventTypeNormal, "Updated", "Update", "updated %s %s", kind, desired.GetName())
	return nil
}

// claimMismatch is the Problem of a store's claim made for other storage than desired asks
// (nil if none): another storage class, which a claim cannot change, or another engine's
// data (held, from engineOnClaim), which the store would start empty beside. Neither happens
// to a claim the Shop made, whose class and engine the API keeps as they were; both do to one
// a Shop deleted with --cascade=orphan left, taken back (adopting) by a Shop made again with
// other settings. A document store's claim that would be taken back without its engine known
// is one too. It is a ChildConflict: what runs on the claim is left as it is.
func claimMismatch(desired, existing *corev1.PersistentVolumeClaim, held string, adopting bool) *Problem {
	if want, have := ptr.Deref(desired.Spec.StorageClassName, ""), ptr.Deref(existing.Spec.StorageClassName, ""); want != "" && want != have {
		ask := fmt.Sprintf("ask for %q", have)
		if have == "" {
			ask = "leave storageClassName unset"
		}
		return &Problem{Reason: ReasonChildConflict, Message: fmt.Sprintf(
			"PersistentVolumeClaim %s is of storage class %q, where the Shop asks %q, and a claim's class cannot change: "+
				"%s, or delete the claim, and its data with it, to move", existing.Name, have, want, ask)}
	}
	want := desired.Labels[resources.LabelEngine]
	switch {
	case want == "": // no document store's claim
	case held == "" && adopting:
		return &Problem{Reason: ReasonChildConflict, Message: fmt.Sprintf(
			"PersistentVolumeClaim %s lost its owner, and neither its label %s nor a store workload left with it says "+
				"whose data it holds: label it %s=%s or %s=%s to take it back, or delete it, and its data with it",
			existing.Name, resources.LabelEngine, resources.LabelEngine, shopv1.EngineMongoDB, resources.LabelEngine, shopv1.EngineFerretDB)}
	case held != "" && held != want:
		return &Problem{Reason: ReasonChildConflict, Message: fmt.Sprintf(
			"PersistentVolumeClaim %s holds the data of %s, where the Shop asks for %s, which cannot read it: "+
				"make the Shop with engine %s, or delete the claim, and its data with it", existing.Name, held, want, held)}
	}
	return nil
}

// engineOnClaim is the engine whose data claim holds, "" when unknown. A claim the Shop
// controls holds the data of the Shop's engine, which cannot change. One being taken back
// (adopting) holds that of its label (resources.LabelEngine); else, made by an earlier
// version without the label, that of the store's StatefulSet of the same name, left with it.
func (r *ShopReconciler) engineOnClaim(ctx context.Context, shop *shopv1.Shop, claim *corev1.PersistentVolumeClaim, adopting bool) (string, error) {
	if !adopting {
		return string(resources.MongoDBEngine(shop)), nil // whatever its label says: the label is put back
	}
	if e := claim.Labels[resources.LabelEngine]; e != "" {
		return e, nil
	}
	store := &appsv1.StatefulSet{}
	err := r.Get(ctx, client.ObjectKeyFromObject(claim), store)
	switch {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("get StatefulSet %s: %w", claim.Name, err)
	}
	return string(resources.StoreEngine(store)), nil
}

// errShopDeleted stops a reconcile whose Shop was deleted since it was read.
var errShopDeleted = errors.New("the Shop is being deleted")

// stillThere reads shop again from the API server before one of its children is taken back
// (adoptable) or replaced, and returns errShopDeleted when it is gone or being deleted. The
// Shop this reconcile read may since have been deleted with --cascade=orphan, whose garbage
// collector strips its children's owner references to keep them: a child taken back then
// would point at a Shop about to go, and be deleted with it, volumes included. (Kubernetes'
// own controllers check the same before adopting: RecheckDeletionTimestamp.)
func (r *ShopReconciler) stillThere(ctx context.Context, shop *shopv1.Shop) error {
	fresh := &metav1.PartialObjectMetadata{}
	fresh.SetGroupVersionKind(shopv1.GroupVersion.WithKind("Shop"))
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(shop), fresh)
	switch {
	case apierrors.IsNotFound(err):
		return errShopDeleted
	case err != nil:
		return fmt.Errorf("read the Shop again before taking back a child: %w", err)
	case fresh.UID != shop.UID || !fresh.DeletionTimestamp.IsZero():
		return errShopDeleted
	}
	return nil
}

// adoptable tells whether obj, which shop does not control, is a child of shop that
// lost its owner: it has no controller, and the labels the controller gives every
// child of shop (resources.Labels). Such an object is taken back, as a ReplicaSet
// takes back its pods: a Shop deleted with --cascade=orphan and made again, or an
// owner reference removed by hand, leaves exactly these. An object with another
// controller, or without the labels, is someone else's.
func adoptable(obj client.Object, shop *shopv1.Shop) bool {
	labels := obj.GetLabels()
	return metav1.GetControllerOf(obj) == nil &&
		labels[resources.LabelShop] == shop.Name && labels[resources.LabelManagedBy] == resources.ManagedBy
}

// conflict is the Problem of a child whose name is taken by an object the Shop does
// not control.
func conflict(kind string, existing client.Object, shop *shopv1.Shop) *Problem {
	if ref := metav1.GetControllerOf(existing); ref != nil && ref.Kind == "Shop" && ref.Name == shop.Name && ref.UID != shop.UID &&
		strings.HasPrefix(ref.APIVersion, shopv1.GroupVersion.Group+"/") {
		// A Shop of this name that is gone (names are unique): deleted, its children wait for
		// the garbage collector (a claim until its store's pod has stopped). The deletions
		// bring the next reconcile, which makes them again for this Shop: nothing to delete.
		return &Problem{Reason: ReasonChildConflict, Message: fmt.Sprintf(
			"%s %s belongs to the deleted Shop %s of the same name and is being removed by the garbage collector; "+
				"it is made again for this Shop once it is gone", kind, existing.GetName(), shop.Name)}
	}
	if other := existing.GetLabels()[resources.LabelShop]; other != "" && other != shop.Name {
		// Another Shop's (an external store's Secret, say): deleting it would break that one.
		return &Problem{Reason: ReasonChildConflict, Message: fmt.Sprintf(
			"%s %s already exists and is Shop %s's (its label %s): rename one of the two Shops, or that Shop's %s",
			kind, existing.GetName(), other, resources.LabelShop, kind)}
	}
	return &Problem{Reason: ReasonChildConflict, Message: fmt.Sprintf(
		"%s %s already exists and does not belong to this Shop; delete or rename it", kind, existing.GetName())}
}

// applyFailed turns a refused write into a Problem when the object itself is invalid
// (no retry helps) or forbidden (a quota, an admission policy: the user must act), and
// into a returned error otherwise (controller-runtime backs off). A Problem lets the
// other children be made and the status say why; an error would stop both. A conflict
// (the object changed since it was read) is ordinary under concurrent writers and gone
// at the next reconcile: it is retried without a Warning Event.
func (r *ShopReconciler) applyFailed(shop *shopv1.Shop, obj client.Object, verb string, err error) error {
	kind := kindOf(obj)
	if !apierrors.IsConflict(err) {
		r.event(shop, obj, corev1.EventTypeWarning, "ApplyFailed", verb, "cannot %s %s %s: %v", verb, kind, obj.GetName(), err)
	}
	switch {
	case apierrors.IsForbidden(err) || admissionDenied(err):
		return &Problem{Reason: ReasonChildForbidden, Message: fmt.Sprintf("the API server forbade %s %s: %v", kind, obj.GetName(), err)}
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err):
		return &Problem{Reason: ReasonChildRejected, Message: fmt.Sprintf("the API server refused %s %s: %v", kind, obj.GetName(), err)}
	}
	return fmt.Errorf("%s %s %s: %w", verb, kind, obj.GetName(), err)
}

// admissionDenied tells a write an admission webhook or policy denied, whatever status it
// chose: a webhook picks any code from 400 up (Kyverno's denials come with none, which the
// API server makes 400), a ValidatingAdmissionPolicy 422 unless told otherwise. Such a
// denial is the cluster's policy, which may change with no event the controller sees, as a
// quota may: it is ChildForbidden, looked at again, not a child the Shop made wrong. The
// API server's own words tell it (k8s.io/apiserver's webhook ToStatusErr and policy
// dispatchers), as no status field does: a webhook's message starts with them, and a
// ValidatingAdmissionPolicy's is a cause of no field. Words anywhere else may be a value the
// Shop set, quoted by a refusal of the object itself.
func admissionDenied(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	st := status.Status()
	if strings.HasPrefix(st.Message, "admission webhook ") && strings.Contains(st.Message, " denied the request") {
		return true
	}
	if st.Details == nil {
		return false
	}
	for _, c := range st.Details.Causes {
		if c.Field == "" && strings.HasPrefix(c.Message, "ValidatingAdmissionPolicy '") && strings.Contains(c.Message, " denied request: ") {
			return true
		}
	}
	return false
}

// claimResize is what the Shop asks of the size of a store's claim that exists.
type claimResize struct {
	// field is the Shop's field that sets the size: mongodb.storage.size, rabbitmq.storage.size.
	field string
	// asked is the size the Shop asks, held the size the claim asks now.
	asked, held resource.Quantity
}

// resizeOf is what desired, as the builders make it, asks of existing's size, or nil
// when they are no claims. It is read before syncSpec writes desired's size into existing.
func resizeOf(desired, existing client.Object) *claimResize {
	d, ok := desired.(*corev1.PersistentVolumeClaim)
	if !ok {
		return nil
	}
	held, ok := existing.(*corev1.PersistentVolumeClaim).Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return nil
	}
	return &claimResize{
		field: d.Labels[resources.LabelComponent] + ".storage.size",
		asked: d.Spec.Resources.Requests[corev1.ResourceStorage].DeepCopy(),
		held:  held.DeepCopy(),
	}
}

// shrinks tells whether the Shop asks less than the claim holds: syncSpec then leaves
// the claim as it is.
func (c *claimResize) shrinks() bool {
	return c != nil && c.asked.Cmp(c.held) < 0
}

// explain adds, to the Problem of a growth the API server refused (a storage class that
// allows no expansion, a quota on storage, a claim not bound yet), the way out that
// keeps the data: a size up to the claim's is accepted and leaves the claim as it is.
// Any other error is returned as it is.
func (c *claimResize) explain(err error) error {
	p, ok := errors.AsType[*Problem](err)
	if !ok || c == nil || c.asked.Cmp(c.held) <= 0 {
		return err
	}
	p.Message += fmt.Sprintf("; to go on without growing it, set %s back to %s or less: a claim never shrinks, "+
		"so a smaller size leaves it as it is", c.field, c.held.String())
	return p
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

// syncSpec copies into existing, a child other than a Deployment or StatefulSet
// (syncWorkload), the fields the controller owns when they differ from desired, and
// tells whether it changed anything.
//
//   - a Service's spec is existing's with every field the controller owns set from
//     desired, defaults filled in (serviceWant): the addresses, IP families, node
//     ports and load-balancer class the API server or the infrastructure assign stay,
//     and so do the settings the Shop cannot express that a user or the cloud sets
//     (source ranges, load-balancer IP, session affinity);
//   - NetworkPolicies and PodDisruptionBudgets are built with every field the API
//     server would default, so they are compared exactly: an extra rule admitting
//     everyone is drift.
func syncSpec(desired, existing client.Object) bool {
	switch d := desired.(type) {
	case *corev1.Service:
		e := existing.(*corev1.Service)
		want := serviceWant(d.Spec, e.Spec)
		changed := syncEqual(want, &e.Spec)
		// The annotation form of a LoadBalancer's source ranges is a user's as the field
		// is, and goes with it when the Service is no LoadBalancer any more: the API
		// server refuses either on another type.
		if _, ok := e.Annotations[corev1.AnnotationLoadBalancerSourceRangesKey]; ok && want.Type != corev1.ServiceTypeLoadBalancer {
			delete(e.Annotations, corev1.AnnotationLoadBalancerSourceRangesKey)
			changed = true
		}
		return changed
	case *corev1.PersistentVolumeClaim:
		// Everything but the requested size is immutable once bound, and the size only
		// grows: a Shop may ask less than the claim holds (a growth its class refused set
		// back, storage added later below the default the claim was made with), and a
		// volume never shrinks. apply tells the user (StorageNotShrunk).
		e := existing.(*corev1.PersistentVolumeClaim)
		want := d.Spec.Resources.Requests[corev1.ResourceStorage]
		if have, ok := e.Spec.Resources.Requests[corev1.ResourceStorage]; ok && have.Cmp(want) >= 0 {
			return false
		}
		if e.Spec.Resources.Requests == nil {
			e.Spec.Resources.Requests = corev1.ResourceList{}
		}
		e.Spec.Resources.Requests[corev1.ResourceStorage] = want
	case *corev1.Secret:
		e := existing.(*corev1.Secret)
		// Immutable is the controller's only where it sets it (the credentials): an
		// immutable Secret cannot be made mutable again, so elsewhere it is left alone.
		if equality.Semantic.DeepEqual(d.Data, e.Data) && d.Type == e.Type && (d.Immutable == nil || ptr.Equal(d.Immutable, e.Immutable)) {
			return false
		}
		e.Data, e.StringData = d.Data, nil
		if d.Immutable != nil {
			e.Immutable = d.Immutable
		}
	case *networkingv1.NetworkPolicy:
		return syncEqual(d.Spec, &existing.(*networkingv1.NetworkPolicy).Spec)
	case *policyv1.PodDisruptionBudget:
		return syncEqual(d.Spec, &existing.(*policyv1.PodDisruptionBudget).Spec)
	default:
		panic(fmt.Sprintf("controllers: no spec sync for %T", desired))
	}
	return true
}

// withAllocatedPorts is a copy of desired, the spec of a Service as the builders make
// it, holding the ports the API server allocated in existing where desired leaves them
// at zero: the node ports (matched by port name) and the health-check node port of a
// LoadBalancer whose externalTrafficPolicy is Local. Without them a Service open
// outside the cluster would differ at every reconcile; and writing them back keeps its
// clients' ports where they are.
// A ClusterIP Service has none: switching to it lets the API server release them.
func withAllocatedPorts(desired, existing corev1.ServiceSpec) corev1.ServiceSpec {
	want := *desired.DeepCopy()
	if want.Type == corev1.ServiceTypeClusterIP {
		return want
	}
	for i := range want.Ports {
		for _, old := range existing.Ports {
			if old.Name == want.Ports[i].Name && want.Ports[i].NodePort == 0 {
				want.Ports[i].NodePort = old.NodePort
			}
		}
	}
	if want.HealthCheckNodePort == 0 {
		want.HealthCheckNodePort = existing.HealthCheckNodePort
	}
	return want
}

// syncEqual replaces existing with desired unless they are semantically equal.
func syncEqual[S any](desired S, existing *S) bool {
	if equality.Semantic.DeepEqual(desired, *existing) {
		return false
	}
	*existing = desired
	return true
}

// specHashAnnotation on a Deployment or StatefulSet holds a digest of the spec, as the
// builders make it, the controller last wrote or found in place: a change of the Shop
// changes it (syncWorkload).
const specHashAnnotation = "commerce.shopkeeper.dev/spec-hash"

// setSpecHash records in the specHashAnnotation of o, a Deployment or StatefulSet, a
// digest of spec, its spec as the builders made it. encoding/json writes map keys in
// order, so equal specs give equal digests.
func setSpecHash(o client.Object, spec any) {
	o.SetAnnotations(mapWithEntry(o.GetAnnotations(), specHashAnnotation, digest(o, spec)))
}

// digest is a digest of spec, the spec of o. encoding/json writes map keys in order, so
// equal specs give equal digests.
func digest(o client.Object, spec any) string {
	b, err := json.Marshal(spec)
	if err != nil {
		panic(fmt.Sprintf("controllers: marshal a %s spec: %v", kindOf(o), err)) // plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// storedSpecAnnotation on a Deployment or StatefulSet holds a digest of its spec as the
// API server stored it when the controller last wrote it, or found it in sync with the
// spec recorded in specHashAnnotation. While the stored spec has that digest, nobody has
// changed it since. (The generation cannot tell: a Deployment's is raised by a change of
// its annotations too, the controller's own records included.)
const storedSpecAnnotation = "commerce.shopkeeper.dev/stored-spec-hash"

// recordStoredSpec records in storedSpecAnnotation of desired, a Deployment or
// StatefulSet about to be made, what the API server will store of its spec (its
// defaults, and what the cluster's mutating admission adds), asked with a server-side
// dry-run create; so the first reconcile after the create finds it in sync without
// asking. Should the dry run fail, nothing is recorded: the create then says why, or
// the next reconcile asks (syncWorkload).
func (r *ShopReconciler) recordStoredSpec(ctx context.Context, desired client.Object) {
	dry := desired.DeepCopyObject().(client.Object)
	if err := r.Create(ctx, dry, client.DryRunAll); err != nil {
		return
	}
	desired.SetAnnotations(mapWithEntry(desired.GetAnnotations(), storedSpecAnnotation, digest(dry, workloadSpec(dry))))
}

// isWorkload tells whether obj is a Deployment or StatefulSet (syncWorkload).
func isWorkload(obj client.Object) bool {
	switch obj.(type) {
	case *appsv1.Deployment, *appsv1.StatefulSet:
		return true
	}
	return false
}

// syncWorkload makes existing, a Deployment or StatefulSet, hold the spec of desired
// as the API server stores it, and tells whether it changed existing.
//
// What the API server stores for desired is asked of it: a server-side dry-run update
// of existing with desired's spec (at existing's resourceVersion: a Conflict is
// returned, and retried as an update's) returns it with the API server's defaults and
// what the cluster's mutating admission (a MutatingAdmissionPolicy, a webhook) adds on
// an update. Its spec is compared exactly with existing's: an added field the Shop
// does not set (a service account, envFrom, a host volume, a node selector) is not in
// it, and is drift put back; a default or an admission's mutation is in both.
//
// The dry run costs a request, so it is sent only when the spec may have changed: when
// desired's differs from the one recorded in specHashAnnotation, or when the stored spec
// was changed since it was last written or found in sync (its digest is not the one
// recorded in storedSpecAnnotation). A reconcile that finds everything in place sends
// none.
//
// It tells whether it changed the spec, and whether it changed no more than the two
// annotations.
func (r *ShopReconciler) syncWorkload(ctx context.Context, desired, existing client.Object) (specChanged, noted bool, err error) {
	hash := desired.GetAnnotations()[specHashAnnotation]
	annotations := existing.GetAnnotations()
	stored := digest(existing, workloadSpec(existing))
	if annotations[specHashAnnotation] == hash && annotations[storedSpecAnnotation] == stored {
		return false, false, nil
	}
	dryRun := existing.DeepCopyObject().(client.Object)
	setWorkloadSpec(desired, dryRun)
	if err := r.Update(ctx, dryRun, client.DryRunAll); err != nil {
		return false, false, err
	}
	specChanged = !equality.Semantic.DeepEqual(workloadSpec(dryRun), workloadSpec(existing))
	if specChanged {
		setWorkloadSpec(desired, existing)
		stored = digest(dryRun, workloadSpec(dryRun)) // what the update stores
	}
	annotations = mapWithEntry(maps.Clone(annotations), specHashAnnotation, hash)
	annotations[storedSpecAnnotation] = stored
	existing.SetAnnotations(annotations)
	return specChanged, !specChanged, nil
}

// setWorkloadSpec sets the spec of existing, a Deployment or StatefulSet, to desired's,
// keeping a restart asked with `kubectl rollout restart` (keepRestart). The fields a
// StatefulSet cannot change (selector, serviceName, pod management) are the builders'
// constants, so its spec is replaced as a Deployment's is.
func setWorkloadSpec(desired, existing client.Object) {
	switch d := desired.(type) {
	case *appsv1.Deployment:
		e := existing.(*appsv1.Deployment)
		spec := d.Spec.DeepCopy()
		keepRestart(&spec.Template, &e.Spec.Template)
		e.Spec = *spec
	case *appsv1.StatefulSet:
		e := existing.(*appsv1.StatefulSet)
		spec := d.Spec.DeepCopy()
		keepRestart(&spec.Template, &e.Spec.Template)
		e.Spec = *spec
	}
}

// workloadSpec is the spec of a Deployment or StatefulSet.
func workloadSpec(obj client.Object) any {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return w.Spec
	case *appsv1.StatefulSet:
		return w.Spec
	}
	panic(fmt.Sprintf("controllers: %T is no workload", obj))
}

// mapWithEntry is m, or a new map when it is nil, holding v at k.
func mapWithEntry(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// restartedAtAnnotation is the pod template annotation `kubectl rollout restart` sets
// (tools that restart a workload, Argo CD's and Lens's among them, set it too).
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// keepRestart copies into want, the pod template a workload is to hold, the restart
// asked for in existing, its template now, with `kubectl rollout restart`
// (restartedAtAnnotation), unless want asks for one itself. The restart is no drift:
// dropping it would roll every pod a second time, back to the template from before
// the restart, for a change that may be no more than a replica count.
func keepRestart(want, existing *corev1.PodTemplateSpec) {
	restartedAt, restarted := existing.Annotations[restartedAtAnnotation]
	if _, asked := want.Annotations[restartedAtAnnotation]; !restarted || asked {
		return
	}
	if want.Annotations == nil {
		want.Annotations = map[string]string{}
	}
	want.Annotations[restartedAtAnnotation] = restartedAt
}

// unsetOr is what a field the API server defaults to def is to hold: asked, desired's
// value, when set; else have, existing's, when it is unset or def already; else def.
func unsetOr[T ~string](asked, have, def T) T {
	switch {
	case asked != "":
		return asked
	case have == "" || have == def:
		return have
	}
	return def
}

// serviceWant is the spec a Service is to hold: existing's, with every field the
// controller owns set from desired and the API server's defaults for them filled in.
// The fields it leaves as they are belong to the API server, the infrastructure or the
// user: the cluster IPs and IP families (assigned once), the node ports and
// health-check node port (allocated: withAllocatedPorts keeps them), whether a
// LoadBalancer has node ports, and its class (which a cloud's admission may set, and
// which cannot change); a LoadBalancer's source ranges and IP, and session affinity.
func serviceWant(desired, existing corev1.ServiceSpec) corev1.ServiceSpec {
	d := withAllocatedPorts(desired, existing)
	want := *existing.DeepCopy()
	want.Type = d.Type
	if want.Type == "" {
		want.Type = corev1.ServiceTypeClusterIP
	}
	want.Selector, want.Ports, want.HealthCheckNodePort = d.Selector, d.Ports, d.HealthCheckNodePort
	for i := range want.Ports {
		p := &want.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == intstr.FromInt32(0) || p.TargetPort == intstr.FromString("") {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	want.ExternalIPs, want.ExternalName = d.ExternalIPs, d.ExternalName
	want.PublishNotReadyAddresses, want.TrafficDistribution = d.PublishNotReadyAddresses, d.TrafficDistribution
	// The source ranges and address of a LoadBalancer, and session affinity, are
	// existing's: the Shop cannot express them, and a user or the cloud sets them (an
	// LB restricted to some addresses stays so). Only a LoadBalancer may have the
	// first two: the API server refuses them on another type.
	if want.Type != corev1.ServiceTypeLoadBalancer {
		want.LoadBalancerSourceRanges, want.LoadBalancerIP = nil, ""
	}
	want.ExternalTrafficPolicy = d.ExternalTrafficPolicy
	if want.Type == corev1.ServiceTypeNodePort || want.Type == corev1.ServiceTypeLoadBalancer ||
		(want.Type == corev1.ServiceTypeClusterIP && len(want.ExternalIPs) > 0) {
		want.ExternalTrafficPolicy = unsetOr(d.ExternalTrafficPolicy, existing.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicyCluster)
	}
	want.InternalTrafficPolicy = d.InternalTrafficPolicy
	if want.InternalTrafficPolicy == nil && want.Type != corev1.ServiceTypeExternalName {
		if p := unsetOr("", ptr.Deref(existing.InternalTrafficPolicy, ""), corev1.ServiceInternalTrafficPolicyCluster); p != "" {
			want.InternalTrafficPolicy = ptr.To(p)
		}
	}
	return want
}

// kindOf names an object's kind for messages; the builders leave TypeMeta empty.
func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *appsv1.StatefulSet:
		return "StatefulSet"
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
