// Package controllers holds the Shop controller: it reads a Shop, builds the objects
// the shop is made of (package resources), applies them in order, and reports what it
// sees in the Shop's status.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// ShopReconciler makes and keeps the objects of each Shop.
type ShopReconciler struct {
	// Client reads from the manager's cache (only objects with our labels) and writes
	// to the API server.
	client.Client
	// APIReader reads from the API server directly, for the rare object out of the
	// cache's sight: a child that lost its labels, an external Secret that lacks one.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// PodReadyDeadline is how long a StatefulSet's pod may stay unready before its
	// rollout is reported stalled; zero means DefaultPodReadyDeadline.
	PodReadyDeadline time.Duration

	// resourceVerdicts holds what the API server said of a component's resources
	// (resourcesRefused), by namespace and resources, and of the Shop's scrapers
	// (scrapersRefused): "" when it takes them.
	resourceVerdicts verdictCache
	// failures counts each Shop's reconciles failed in a row (reportFailure).
	failures failureCount
}

// failureCount counts each Shop's reconciles failed in a row, by the Shop's UID. The zero
// failureCount is ready for use; a Shop's count goes at its next reconcile that gets through,
// or finds it deleted.
type failureCount struct {
	mu sync.Mutex
	n  map[types.UID]int
}

// add counts one more failure of uid's reconcile and returns how many in a row.
func (f *failureCount) add(uid types.UID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[types.UID]int{}
	}
	f.n[uid]++
	return f.n[uid]
}

// clear forgets uid's failures.
func (f *failureCount) clear(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.n, uid)
}

// reportAfterFailures is how many reconciles of a Shop must fail in a row before the status
// says so: one error alone (an API server's hiccup) is retried at once with nothing said, so
// that it does not flap a healthy Shop's Ready; a write a webhook that is down keeps refusing
// fails again within milliseconds (the backoff starts at 5 ms).
const reportAfterFailures = 2

// DefaultPodReadyDeadline is the Deployment controller's default progress deadline
// (progressDeadlineSeconds 600), so that every component is judged alike.
const DefaultPodReadyDeadline = 10 * time.Minute

// +kubebuilder:rbac:groups=commerce.shopkeeper.dev,resources=shops,verbs=get;list;watch
// The status is written by patch alone. Every child kind has delete although only
// workloads are deleted: to set an owner reference (taking a child back) the
// OwnerReferencesPermissionEnforcement admission plugin, on in OpenShift, asks for it.
// +kubebuilder:rbac:groups=commerce.shopkeeper.dev,resources=shops/status,verbs=patch
// +kubebuilder:rbac:groups=commerce.shopkeeper.dev,resources=shops/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=services;secrets;persistentvolumeclaims,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=pods;events,verbs=list

// ConflictRetry is how often a Shop is reconciled again while a Problem whose end brings
// no event is reported (Problem.lookAgain): a ChildConflict's object lies outside the
// cache (it lacks our labels), so its deletion brings no event, nor does a quota raised
// for a ChildForbidden: only a timed retry notices.
const ConflictRetry = time.Minute

// Reconcile brings one Shop's children to what its spec asks and records the result.
// Children are applied in dependency order (credentials, stores, connections,
// services, gateway). A Problem (a spec the cluster cannot satisfy, a missing external
// Secret) is reported in the Degraded condition and not retried with backoff: a change
// of the Shop or of the object it waits on triggers the next reconcile, and a Problem
// whose end the controller cannot watch (a ChildConflict, a ChildForbidden) is looked at
// again after ConflictRetry. Other errors are returned and retried with backoff.
func (r *ShopReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	shop := &shopv1.Shop{}
	if err := r.Get(ctx, req.NamespacedName, shop); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !shop.DeletionTimestamp.IsZero() {
		r.failures.clear(shop.UID)
		return ctrl.Result{}, nil // the garbage collector removes the children
	}

	problem, err := r.applyChildren(ctx, shop)
	if errors.Is(err, errShopDeleted) {
		r.failures.clear(shop.UID)
		return ctrl.Result{}, nil // as above: nothing more to do for it
	}
	var components []ComponentState
	var recheck time.Duration
	if err == nil {
		components, recheck, err = r.observe(ctx, shop)
	}
	if err != nil {
		if r.failures.add(shop.UID) >= reportAfterFailures {
			r.reportFailure(ctx, shop, err)
		}
		return ctrl.Result{}, err
	}
	r.failures.clear(shop.UID)
	if err := r.writeStatus(ctx, shop, ComputeStatus(shop, components, problem, metav1.NewTime(time.Now()))); err != nil {
		return ctrl.Result{}, err
	}
	if problem != nil {
		log.Info("shop degraded", "reason", problem.Reason, "message", problem.Message)
		if problem.lookAgain() {
			recheck = sooner(recheck, ConflictRetry)
		}
	}
	// A pod that stays unready changes nothing the controller watches: look again
	// when it reaches its deadline.
	return ctrl.Result{RequeueAfter: recheck}, nil
}

// applyChildren applies every child in order. It stops at the first Problem that
// later children depend on and returns it; a Problem with one child does not stop
// the others that do not depend on it.
func (r *ShopReconciler) applyChildren(ctx context.Context, shop *shopv1.Shop) (*Problem, error) {
	if p, err := r.resourcesRefused(ctx, shop); p != nil || err != nil {
		return p, err
	}
	if p, err := r.scrapersRefused(ctx, shop); p != nil || err != nil {
		return p, err
	}
	if p := externalInOwnSecret(shop); p != nil {
		return p, nil
	}
	var first *Problem
	// podsUnaffected: every Problem met is with a child no pod needs (podsNeedNot).
	podsUnaffected := true
	// record keeps the first Problem and tells whether err, met applying o, was one.
	record := func(o client.Object, err error) bool {
		p, ok := errors.AsType[*Problem](err)
		if ok && first == nil {
			first = p
		}
		if ok && !podsNeedNot(o) {
			podsUnaffected = false
		}
		return ok
	}
	// withheld holds the children (childKey) whose name someone else holds (a
	// ChildConflict), and those left as they are, made or not, because a child they
	// depend on (dependsOn) is withheld: applied in the order below, a child comes after
	// what it depends on.
	withheld := map[string]bool{}
	// waiting names, in order, the children withheld for what they depend on: the
	// conflict's message says which wait on it.
	var waiting []string
	// refused holds the children the API server did not take (a Problem).
	refused := map[string]bool{}
	// heldBack reports whether o depends on a withheld child, and then withholds it too.
	heldBack := func(o client.Object) bool {
		if !slices.ContainsFunc(dependsOn(shop, o), func(d client.Object) bool { return withheld[childKey(d)] }) {
			return false
		}
		withheld[childKey(o)] = true
		waiting = append(waiting, childKey(o))
		return true
	}
	// applyOne applies o, which nothing it depends on holds back.
	applyOne := func(o client.Object) error {
		err := r.apply(ctx, shop, o)
		if p, ok := errors.AsType[*Problem](err); ok && p.Reason == ReasonChildConflict {
			withheld[childKey(o)] = true
		}
		if err != nil && !record(o, err) {
			return err
		}
		if err != nil {
			refused[childKey(o)] = true
		}
		return nil
	}
	apply := func(objs ...client.Object) error {
		for _, o := range objs {
			if heldBack(o) {
				continue
			}
			if err := applyOne(o); err != nil {
				return err
			}
		}
		return nil
	}
	// A workload is made only once no workload of the other kind holds its name.
	applyWorkload := func(w client.Object) error {
		if heldBack(w) {
			return nil // nor is a workload of the other kind under its name replaced
		}
		if waiting, err := r.replaceOtherKind(ctx, shop, w); err != nil || waiting {
			return err
		}
		return applyOne(w)
	}

	creds := map[string]*corev1.Secret{}
	for _, store := range resources.InClusterStores(shop) {
		existing, problem, err := r.existingCredentials(ctx, shop, store)
		if err != nil {
			return nil, err
		}
		if problem != nil {
			// Everything after this point is built from the credentials: a password
			// made up here would change at every reconcile and roll the pods each time.
			return problem, nil
		}
		var recovery *eventNote
		if existing == nil {
			if existing, recovery, err = r.recoverCredentials(ctx, shop, store); err != nil {
				return nil, err
			}
		}
		creds[store] = resources.CredentialsSecret(shop, store, existing)
		err = r.apply(ctx, shop, creds[store])
		if p, ok := errors.AsType[*Problem](err); ok {
			// Not stored (forbidden by a quota, say): nothing may be built from a password
			// the next reconcile would make up again, rolling every pod each time.
			return p, nil
		}
		if err != nil {
			return nil, err
		}
		if recovery != nil { // said once the Secret is made
			r.event(shop, creds[store], corev1.EventTypeWarning, recovery.reason, "Reconcile", "%s", recovery.message)
		}
	}
	// The passwords of the in-cluster broker's service users, made once and kept, as the
	// credentials are: the broker's files and the services' URLs are built from them.
	var rabbitMQUsers *corev1.Secret
	if creds[resources.RabbitMQ] != nil {
		existing, problem, err := r.existingSecret(ctx, shop, resources.RabbitMQUsersSecretName(shop))
		if err != nil || problem != nil {
			return problem, err
		}
		rabbitMQUsers = resources.RabbitMQUsersSecret(shop, existing)
		err = r.apply(ctx, shop, rabbitMQUsers)
		if p, ok := errors.AsType[*Problem](err); ok {
			return p, nil // as for the credentials: nothing is built from passwords not stored
		}
		if err != nil {
			return nil, err
		}
	}
	for _, store := range resources.InClusterStores(shop) {
		// What the store's pods read at start: MongoDB its credentials, RabbitMQ the
		// files made from them, FerretDB nothing.
		read := creds[store]
		switch {
		case store == resources.RabbitMQ:
			config, err := resources.RabbitMQConfigSecret(shop, creds[store], rabbitMQUsers)
			if err != nil {
				// Without its files the broker would start with other users; the
				// services, whose URLs name their own users, are made all the same.
				if first == nil {
					first = &Problem{Reason: ReasonCredentialsInvalid, Message: "rabbitmq: " + err.Error() +
						"; set it back to the broker's password where the Secret is editable, or delete it: a new one is made, " +
						"whose password the broker takes from its definitions at its next boot"}
				}
				podsUnaffected = false // the broker is not made
				continue
			}
			if err := apply(config); err != nil {
				return nil, err
			}
			read = config
			if refused[childKey(config)] {
				// Not written (forbidden, or refused): the broker reads its files at start
				// only, so its checksum is of the files as stored. Of the files asked for, it
				// would restart now onto the old ones, and not again once they are written.
				if read, err = r.storedSecret(ctx, shop, config.Name); err != nil {
					return nil, err
				}
			}
		case store == resources.MongoDB && shop.Spec.MongoDB.Engine == shopv1.EngineFerretDB:
			read = nil
		}
		if err := apply(resources.StorePersistentVolumeClaim(shop, store)); err != nil {
			return nil, err
		}
		rest := []client.Object{resources.StoreService(shop, store), resources.NetworkPolicy(shop, store)}
		if store == resources.MongoDB && shop.Spec.MongoDB.Engine == shopv1.EngineFerretDB {
			// FerretDB checks no credentials: its NetworkPolicy is all that keeps the other
			// pods of the cluster from its data. It is applied first, and the store is made or
			// changed only while the policy is the Shop's and stored.
			policy := rest[1]
			if err := apply(policy); err != nil {
				return nil, err
			}
			rest = rest[:1]
			if key := childKey(policy); refused[key] || withheld[key] {
				podsUnaffected = false // the store waits for it
				// A store already running keeps running only while the Shop's policy, as
				// it was, is stored (an update refused): gone and not made again, or
				// someone else's, nothing guards it, and it is stopped (scaled to none,
				// its volume kept) until the policy is stored.
				guarded, err := r.policyStored(ctx, shop, policy)
				if err != nil {
					return nil, err
				}
				sts := resources.StoreStatefulSet(shop, store, read)
				if !guarded {
					if err := r.stopStore(ctx, shop, sts, applyWorkload); err != nil {
						return nil, err
					}
				}
				if withheld[key] && !withheld[childKey(sts)] {
					// Held for a name someone else holds, as a store on a foreign claim is:
					// the conflict's message names it, and what uses it waits too.
					withheld[childKey(sts)] = true
					waiting = append(waiting, childKey(sts))
				}
				if err := apply(rest...); err != nil {
					return nil, err
				}
				continue
			}
		}
		if err := applyWorkload(resources.StoreStatefulSet(shop, store, read)); err != nil {
			return nil, err
		}
		if err := apply(rest...); err != nil {
			return nil, err
		}
	}

	uris, problem, err := r.storeURIs(ctx, shop, creds, rabbitMQUsers)
	if err != nil || problem != nil {
		return problem, err
	}
	checksumKey, stored, err := r.checksumKey(ctx, shop)
	if err != nil {
		return nil, err
	}
	connections, err := resources.ConnectionsSecret(shop, uris, checksumKey)
	if err != nil {
		return &Problem{Reason: ReasonExternalSecretInvalid, Message: fmt.Sprintf(
			"mongodb.external: Secret %s key %s: %v", shop.Spec.MongoDB.External.SecretRef.Name, shop.Spec.MongoDB.External.SecretRef.Key, err)}, nil
	}
	if err := apply(connections); err != nil {
		return nil, err
	}
	// What the pods' checksums are made of: what they read, the connections Secret as it
	// is stored. When this one was not (the Secret's name is someone else's, its write was
	// refused, or it waits for a store Service), that is the Shop's Secret as it was, and
	// the pods roll once it is written; with none of the Shop's, the checksums are of
	// nothing (a key made here and not stored would be another at the next reconcile, and
	// every write of a workload brings one: the pods would roll for ever).
	podsRead := connections
	if key := childKey(connections); refused[key] || withheld[key] {
		podsRead = stored
	}
	// The Services of the apps others call before any app's workload: a workload waits while
	// the Service of a peer it calls is someone else's (dependsOn), which is known once that
	// Service is applied. A Service no app calls (the gateway's, which no pod needs:
	// podsNeedNot) comes after its workload, so that a problem with it (a quota on
	// LoadBalancers) is not the one reported when a workload has one too.
	called := func(app string) bool { return len(resources.Callers(app)) > 0 }
	for _, app := range resources.Apps {
		if called(app) {
			if err := apply(resources.AppService(shop, app)); err != nil {
				return nil, err
			}
		}
	}
	for _, app := range resources.Apps {
		if err := applyWorkload(resources.AppWorkload(shop, app, podsRead)); err != nil {
			return nil, err
		}
		rest := []client.Object{resources.AppPodDisruptionBudget(shop, app), resources.NetworkPolicy(shop, app)}
		if !called(app) {
			rest = append([]client.Object{resources.AppService(shop, app)}, rest...)
		}
		if err := apply(rest...); err != nil {
			return nil, err
		}
	}
	if first != nil && podsUnaffected {
		first.contained = true
	}
	if first != nil && first.Reason == ReasonChildConflict && len(waiting) > 0 {
		first.Message += "; left as they are meanwhile: " + strings.Join(waiting, ", ")
	}
	return first, nil
}

// policyStored reports whether the NetworkPolicy named as policy is stored and the Shop's.
func (r *ShopReconciler) policyStored(ctx context.Context, shop *shopv1.Shop, policy client.Object) (bool, error) {
	return r.storedAndOwned(ctx, shop, policy, &networkingv1.NetworkPolicy{})
}

// stopStore scales the store's StatefulSet sts, when it exists and is the Shop's, to no
// replica, through applyWorkload; one not made yet is left so.
func (r *ShopReconciler) stopStore(ctx context.Context, shop *shopv1.Shop, sts *appsv1.StatefulSet, applyWorkload func(client.Object) error) error {
	owned, err := r.storedAndOwned(ctx, shop, sts, &appsv1.StatefulSet{})
	if err != nil || !owned {
		return err
	}
	sts.Spec.Replicas = ptr.To[int32](0)
	return applyWorkload(sts)
}

// storedAndOwned reports whether the object named as desired is stored now (read from the
// API server into stored, an empty object of its kind) and controlled by the Shop.
func (r *ShopReconciler) storedAndOwned(ctx context.Context, shop *shopv1.Shop, desired, stored client.Object) (bool, error) {
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), stored)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("get %s: %w", childKey(desired), err)
	}
	return metav1.IsControlledBy(stored, shop), nil
}

// podsNeedNot tells whether no pod of the Shop needs o to start and be ready: the
// gateway's Service (which a quota on LoadBalancers may forbid), a PodDisruptionBudget or
// a NetworkPolicy. The other Services are how the services reach their stores and peers.
// A Problem with such a child alone leaves every workload to roll out, but for an in-cluster
// FerretDB, held back while its NetworkPolicy is not stored (applyChildren).
func podsNeedNot(o client.Object) bool {
	switch o.(type) {
	case *corev1.Service:
		return o.GetLabels()[resources.LabelComponent] == resources.Gateway
	case *policyv1.PodDisruptionBudget, *networkingv1.NetworkPolicy:
		return true
	}
	return false
}

// dependsOn lists, empty but named, the children of shop whose names o is built to use:
// the claim of a store's StatefulSet, and RabbitMQ's the Secret of its files; the stores'
// Services, to which the connections Secret addresses their passwords; for an app's
// workload, the connections Secret it reads, the StatefulSets and Services of the stores
// it uses and the Services of the peers it sends to. The credentials Secrets are not
// listed: nothing is built from one the Shop does not control (existingCredentials).
//
// applyChildren neither makes nor updates a child while one of these is someone else's,
// or is left alone itself for that reason: its pods would mount that claim, read those
// files or URIs, or send the store's password, or the clients' requests, to whatever
// that Service reaches. An existing child is left as it is, and the Problem that names
// the object in the way stands for it.
func dependsOn(shop *shopv1.Shop, o client.Object) []client.Object {
	named := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: shop.Namespace, Name: name} }
	service := func(component string) client.Object {
		return &corev1.Service{ObjectMeta: named(resources.Name(shop, component))}
	}
	var deps []client.Object
	uses := func(stores ...string) {
		for _, s := range stores {
			if slices.Contains(resources.InClusterStores(shop), s) {
				deps = append(deps, &appsv1.StatefulSet{ObjectMeta: named(resources.Name(shop, s))}, service(s))
			}
		}
	}
	connections := &corev1.Secret{ObjectMeta: named(resources.ConnectionsSecretName(shop))}
	switch o.(type) {
	case *corev1.Secret:
		if o.GetName() == connections.Name {
			for _, s := range resources.InClusterStores(shop) {
				deps = append(deps, service(s))
				if s == resources.MongoDB {
					// Its URI is for the engine the Shop asks, which a claim held back may
					// not hold the data of (claimMismatch).
					deps = append(deps, &corev1.PersistentVolumeClaim{ObjectMeta: named(resources.Name(shop, s))})
				}
			}
		}
	case *appsv1.StatefulSet, *appsv1.Deployment:
		c := o.GetLabels()[resources.LabelComponent]
		switch c {
		case resources.MongoDB, resources.RabbitMQ:
			deps = append(deps, &corev1.PersistentVolumeClaim{ObjectMeta: named(resources.Name(shop, c))})
			if c == resources.RabbitMQ {
				deps = append(deps, &corev1.Secret{ObjectMeta: named(resources.RabbitMQConfigSecretName(shop))})
			}
		case resources.User, resources.Product:
			deps = append(deps, connections)
			uses(resources.MongoDB)
		case resources.Order, resources.Payment:
			deps = append(deps, connections)
			uses(resources.MongoDB, resources.RabbitMQ)
		}
		// The Services of the peers it calls: a foreign one would get its requests.
		for _, p := range resources.Peers(c) {
			deps = append(deps, service(p))
		}
	}
	return deps
}

// childKey names a child by kind and name.
func childKey(o client.Object) string { return kindOf(o) + " " + o.GetName() }

// replaceOtherKind deletes the workload of the other kind (Deployment or StatefulSet)
// that the Shop owns under the name of desired: one an earlier version of the
// controller made, before the component ran as a StatefulSet (resources.OneProcess).
// It reports whether that workload is still there, and desired must wait: it is
// deleted in the foreground, so that it goes only once its pods are gone and the two
// never run pods at once. Its deletion, which the controller watches, brings the next
// reconcile. One that lost its owner but keeps the Shop's labels (adoptable), as a
// Shop deleted with --cascade=orphan leaves it, is the Shop's as well; any other
// workload of the other kind that the Shop does not own is left alone.
func (r *ShopReconciler) replaceOtherKind(ctx context.Context, shop *shopv1.Shop, desired client.Object) (bool, error) {
	var other client.Object
	switch desired.(type) {
	case *appsv1.StatefulSet:
		other = &appsv1.Deployment{}
	case *appsv1.Deployment:
		other = &appsv1.StatefulSet{}
	default:
		panic(fmt.Sprintf("controllers: %T is no workload", desired))
	}
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), other)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("get %s %s: %w", kindOf(other), desired.GetName(), err)
	case !metav1.IsControlledBy(other, shop) && !adoptable(other, shop):
		// Someone else's: left alone.
		return false, nil
	case !other.GetDeletionTimestamp().IsZero():
		return true, nil
	}
	if !metav1.IsControlledBy(other, shop) {
		if err := r.stillThere(ctx, shop); err != nil {
			return false, err
		}
	}
	err = r.Delete(ctx, other, client.PropagationPolicy(metav1.DeletePropagationForeground), client.Preconditions{UID: ptr.To(other.GetUID())})
	if client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("delete %s %s: %w", kindOf(other), other.GetName(), err)
	}
	r.event(shop, other, corev1.EventTypeNormal, "Replacing", "Delete", "deleting %s %s, once its pods are gone, to make it a %s",
		kindOf(other), other.GetName(), kindOf(desired))
	return true, nil
}

// existingCredentials returns the credentials Secret of store as it is in the
// cluster, nil when there is none yet. Credentials are made once and never
// overwritten, since the store set its users up with them on first start, so a
// miss in the cache, which holds only labelled Secrets and may lag behind a Secret
// just created, is confirmed with the API server before a new password is made.
// A Secret of that name the Shop does not control, and cannot take back (adoptable),
// is a ChildConflict: nothing may be built from it, nor from a password generated in
// its place.
func (r *ShopReconciler) existingCredentials(ctx context.Context, shop *shopv1.Shop, store string) (*corev1.Secret, *Problem, error) {
	existing, problem, err := r.existingSecret(ctx, shop, resources.CredentialsSecretName(shop, store))
	if err != nil {
		return nil, nil, fmt.Errorf("get credentials of %s: %w", store, err)
	}
	return existing, problem, nil
}

// existingSecret returns the Secret name of shop's namespace, read as existingCredentials
// reads a credentials Secret: nil when there is none yet, a ChildConflict when it is not
// the Shop's.
func (r *ShopReconciler) existingSecret(ctx context.Context, shop *shopv1.Shop, name string) (*corev1.Secret, *Problem, error) {
	existing := &corev1.Secret{}
	err := r.getConfirmed(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: name}, existing)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("get Secret %s: %w", name, err)
	case !metav1.IsControlledBy(existing, shop) && !adoptable(existing, shop):
		return nil, conflict("Secret", existing, shop), nil
	}
	return existing, nil, nil // one that lost its owner is taken back when applied
}

// storedSecret returns the Secret name of shop's namespace as it is stored, nil when there
// is none, read as getConfirmed reads.
func (r *ShopReconciler) storedSecret(ctx context.Context, shop *shopv1.Shop, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := r.getConfirmed(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get Secret %s: %w", name, err)
	}
	return s, nil
}

// eventNote is an Event to record once what it tells of has been done.
type eventNote struct{ reason, message string }

// recoverCredentials returns the credentials of store that its credentials Secret, now
// gone, held: the ones the services were given, which the connections Secret still
// carries (resources.CredentialsFromConnections). The store keeps the users it was set
// up with whatever its Secret says, so a deleted Secret is made again with them rather
// than with a new password that would lock every service out. It returns nil when the
// connections Secret holds none (a new Shop, FerretDB, or that Secret deleted too), and
// then new credentials are made; with MongoDB's volume already there, that is worth a
// Warning, since it may have been set up with the lost ones (FerretDB checks none, and the
// broker imports its default user's new password at its next boot). The note is the
// Event to record once the Secret is made.
func (r *ShopReconciler) recoverCredentials(ctx context.Context, shop *shopv1.Shop, store string) (*corev1.Secret, *eventNote, error) {
	name := resources.CredentialsSecretName(shop, store)
	conn := &corev1.Secret{}
	err := r.getConfirmed(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: resources.ConnectionsSecretName(shop)}, conn)
	switch {
	case apierrors.IsNotFound(err):
		conn = nil
	case err != nil:
		return nil, nil, fmt.Errorf("get connections to recover the credentials of %s: %w", store, err)
	case !metav1.IsControlledBy(conn, shop) && !adoptable(conn, shop):
		conn = nil // not ours: nothing in it was given to the services by this Shop
	}
	if data := resources.CredentialsFromConnections(shop, store, conn); data != nil {
		return &corev1.Secret{Data: data}, &eventNote{"CredentialsRestored", fmt.Sprintf(
			"Secret %s was missing: made again with the credentials the services were given, which %s was set up with", name, store)}, nil
	}
	if store == resources.MongoDB && shop.Spec.MongoDB.Engine == shopv1.EngineFerretDB {
		return nil, nil, nil // FerretDB checks no credentials: new ones lock nobody out
	}
	if store == resources.RabbitMQ {
		// Nor do they lock anyone out of the broker: its default user's password is in its
		// definitions, imported at the boot that follows their change (RabbitMQConfigSecret).
		return nil, nil, nil
	}
	claim := &corev1.PersistentVolumeClaim{}
	err = r.getConfirmed(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, store)}, claim)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("get the volume of %s: %w", store, err)
	case !metav1.IsControlledBy(claim, shop) && !adoptable(claim, shop):
		// Someone else's, which the store never ran on (dependsOn): nothing was lost, and
		// the user is not told to delete it.
		return nil, nil, nil
	}
	return nil, &eventNote{"CredentialsLost", fmt.Sprintf(
		"Secret %s and the credentials in Secret %s are gone: new ones were made, which %s refuses if it has started, since it keeps "+
			"the users of its first start on its volume; restore the Secret from a backup, or delete the volume claim %s to start %s afresh",
		name, resources.ConnectionsSecretName(shop), store, claim.Name, store)}, nil
}

// checksumKey returns the key of the services' pod checksums that the Shop's connections
// Secret holds, and that Secret (stored), or a new key and nil when it holds none (a new
// Shop, a Secret deleted or made by an earlier version: the services' pods roll once). Read
// as getConfirmed reads, so that a cache behind a Secret just made does not replace its key,
// which would roll the pods again.
func (r *ShopReconciler) checksumKey(ctx context.Context, shop *shopv1.Shop) (key []byte, stored *corev1.Secret, err error) {
	conn := &corev1.Secret{}
	err = r.getConfirmed(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: resources.ConnectionsSecretName(shop)}, conn)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, nil, fmt.Errorf("get the connections Secret for its checksum key: %w", err)
	case len(conn.Data[resources.ChecksumKeyKey]) > 0 && (metav1.IsControlledBy(conn, shop) || adoptable(conn, shop)):
		return conn.Data[resources.ChecksumKeyKey], conn, nil
	}
	return resources.NewChecksumKey(), nil, nil
}

// getConfirmed reads key through the cache and, when the cache has no such object,
// from the API server: the cache holds only labelled objects, and may lag behind one
// just created.
func (r *ShopReconciler) getConfirmed(ctx context.Context, key types.NamespacedName, obj client.Object) error {
	err := r.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, obj)
	}
	return err
}

// storeURIs resolves the base URI of each store: built from the credentials for an
// in-cluster store, read from the referenced Secret for an external one.
func (r *ShopReconciler) storeURIs(ctx context.Context, shop *shopv1.Shop, creds map[string]*corev1.Secret, rabbitMQUsers *corev1.Secret) (resources.StoreURIs, *Problem, error) {
	var uris resources.StoreURIs
	var problem *Problem
	var err error
	if ext := shop.Spec.MongoDB.External; ext != nil {
		uris.MongoDB, problem, err = r.externalURI(ctx, shop, "mongodb", ext.SecretRef)
	} else {
		uris.MongoDB = resources.InClusterMongoDBURI(shop, creds[resources.MongoDB])
	}
	if problem != nil || err != nil {
		return uris, problem, err
	}
	if ext := shop.Spec.RabbitMQ.External; ext != nil {
		uris.RabbitMQ, problem, err = r.externalURI(ctx, shop, "rabbitmq", ext.SecretRef)
		if problem == nil && err == nil {
			// The services refuse to start with a URL their client cannot dial: one given
			// to them would replace every running pod with one that cannot start.
			if cerr := storeuri.CheckAMQP(uris.RabbitMQ); cerr != nil {
				problem = &Problem{Reason: ReasonExternalSecretInvalid, Message: fmt.Sprintf(
					"rabbitmq.external: Secret %s key %s: not a usable AMQP URL: %v", ext.SecretRef.Name, ext.SecretRef.Key, cerr)}
			}
		}
	} else {
		uris.RabbitMQ = resources.InClusterRabbitMQURL(shop, creds[resources.RabbitMQ])
		uris.RabbitMQServices = resources.InClusterRabbitMQServiceURLs(shop, rabbitMQUsers)
	}
	return uris, problem, err
}

// externalInOwnSecret is the Problem of an external store's Secret named as one the
// controller makes for shop (nil if none): that name is the controller's, whose Secret would
// conflict with the user's, and whose advice (delete or rename it) would take the URI away.
// It is checked before any child is read or made, and here rather than at admission: a rule
// added to the CRD would refuse every later write of a Shop an earlier version admitted with
// such a name, its status included.
func externalInOwnSecret(shop *shopv1.Shop) *Problem {
	own := resources.OwnSecretNames(shop)
	for _, ext := range []struct {
		field string
		spec  *shopv1.ExternalSpec
	}{{"mongodb", shop.Spec.MongoDB.External}, {"rabbitmq", shop.Spec.RabbitMQ.External}} {
		if ext.spec != nil && slices.Contains(own, ext.spec.SecretRef.Name) {
			return &Problem{Reason: ReasonExternalSecretInvalid, Message: fmt.Sprintf(
				"%s.external: Secret %s is one the operator makes for this Shop (%s): give the URI a Secret of its own name",
				ext.field, ext.spec.SecretRef.Name, strings.Join(own, ", "))}
		}
	}
	return nil
}

// externalURI reads the URI of an external store. The Secret is looked up in the
// cache, which holds only Secrets labelled commerce.shopkeeper.dev/shop: that keeps
// unrelated Secrets out of memory, and the label's watch brings the Shop back to
// reconcile as soon as the Secret appears or changes, so a missing Secret needs no
// periodic retry. When it is not in the cache, one read of the API server tells the
// user whether it is missing or only unlabelled.
func (r *ShopReconciler) externalURI(ctx context.Context, shop *shopv1.Shop, field string, ref shopv1.SecretKeyRef) (string, *Problem, error) {
	key := types.NamespacedName{Namespace: shop.Namespace, Name: ref.Name}
	secret := &corev1.Secret{}
	err := r.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}})
		switch {
		case apierrors.IsNotFound(err):
			return "", &Problem{Reason: ReasonExternalSecretNotFound, Message: fmt.Sprintf(
				"%s.external: Secret %s not found in namespace %s", field, ref.Name, shop.Namespace)}, nil
		case err == nil:
			return "", &Problem{Reason: ReasonExternalSecretNotLabelled, Message: fmt.Sprintf(
				"%s.external: Secret %s lacks the label %s=%s, without which the controller does not see it",
				field, ref.Name, resources.LabelShop, shop.Name)}, nil
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("get Secret %s: %w", ref.Name, err)
	}
	// The label is the Secret's owner saying which Shop may read it: anyone who may write a
	// Shop names the Secret, and its URI goes to pods running the image that Shop names.
	// Without this, a Shop could read another's store password, the operator's own
	// credentials Secrets (labelled for their Shop) included.
	if owner := secret.Labels[resources.LabelShop]; owner != shop.Name {
		return "", &Problem{Reason: ReasonExternalSecretNotLabelled, Message: fmt.Sprintf(
			"%s.external: Secret %s is labelled %s=%s, for another Shop: a Shop reads only a Secret labelled with its own name (%s=%s)",
			field, ref.Name, resources.LabelShop, owner, resources.LabelShop, shop.Name)}, nil
	}
	uri := string(secret.Data[ref.Key])
	if uri == "" {
		return "", &Problem{Reason: ReasonExternalSecretInvalid, Message: fmt.Sprintf(
			"%s.external: Secret %s has no key %q (or it is empty)", field, ref.Name, ref.Key)}, nil
	}
	return uri, nil, nil
}

// observe reads the workload (Deployment or StatefulSet) of every component the Shop
// should run and, for one that has not rolled out, its pods (stuckPod); and, for a store,
// whether its claim has grown to what it asks (claimGrowth).
// recheck, when not zero, is when a pod now unready reaches its deadline.
//
// The workloads are read from the API server, not the cache: the cache may not yet hold
// the update this reconcile has just sent, and its copy from before, with every pod of
// the old template available, would make the Shop Ready at its new generation before the
// change has rolled out (kubectl wait --for=condition=Ready would return at once).
func (r *ShopReconciler) observe(ctx context.Context, shop *shopv1.Shop) (states []ComponentState, recheck time.Duration, err error) {
	deadline := r.PodReadyDeadline
	if deadline == 0 {
		deadline = DefaultPodReadyDeadline
	}
	read := func(name string, desired int32) error {
		w := resources.EmptyWorkload(shop, name)
		err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(w), w)
		switch {
		case apierrors.IsNotFound(err):
			w = nil
		case err != nil:
			return fmt.Errorf("get %s %s: %w", kindOf(w), resources.Name(shop, name), err)
		}
		state := ComponentState{Name: name, Desired: desired, Workload: w}
		if w != nil && !state.rolledOut() {
			// Pods and Events are not cached: they are listed from the API server, and
			// only while a workload is not rolled out. A Deployment's own progress
			// deadline counts only while a rollout is under way: pods that crash after
			// it, or a scale-up whose pods never become ready, are found here.
			pods := &corev1.PodList{}
			if err := r.APIReader.List(ctx, pods, client.InNamespace(shop.Namespace), client.MatchingLabels(resources.SelectorLabels(shop, name))); err != nil {
				return fmt.Errorf("list the pods of %s: %w", w.GetName(), err)
			}
			now := time.Now()
			var wait time.Duration
			state.Stuck, wait = stuckPod(pods.Items, deadline, now)
			var createWait time.Duration
			switch w := w.(type) {
			case *appsv1.StatefulSet:
				if state.Stuck != "" || len(pods.Items) >= int(desired) {
					break
				}
				// A pod missing: the StatefulSet controller records its failures to make
				// one as FailedCreate Events on the StatefulSet.
				events := &corev1.EventList{}
				if err := r.APIReader.List(ctx, events, client.InNamespace(shop.Namespace),
					client.MatchingFields{"involvedObject.uid": string(w.UID), "reason": "FailedCreate"}); err != nil {
					return fmt.Errorf("list the events of %s: %w", w.Name, err)
				}
				state.Stuck, createWait = failingCreate(w.Name, events.Items, deadline, now)
			case *appsv1.Deployment:
				if state.Stuck == "" {
					// The Deployment controller says so in the Deployment's status.
					state.Stuck, createWait = replicaFailure(w, deadline, now)
				}
			}
			wait = sooner(wait, createWait)
			recheck = sooner(recheck, wait)
		}
		states = append(states, state)
		return nil
	}
	for _, store := range resources.InClusterStores(shop) {
		if err := read(store, 1); err != nil {
			return nil, 0, err
		}
		state := &states[len(states)-1]
		if state.Volume, state.VolumeFailed, err = r.claimGrowth(ctx, shop, store); err != nil {
			return nil, 0, err
		}
	}
	for _, app := range resources.Apps {
		if err := read(app, resources.AppReplicas(shop, app)); err != nil {
			return nil, 0, err
		}
	}
	return states, recheck, nil
}

// claimGrowth tells whether the claim of shop's store asks more than its volume holds: a
// growth the cluster's resizer has yet to make (note says so), or one it failed to make
// (failed: the claim's ControllerResizeError or NodeResizeError condition, or a growth it
// found infeasible). note is empty when the volume holds what the claim asks, or what the
// Shop asks when that is less (a growth set back in the Shop), when the claim is not bound
// (a new claim's volume is made at the size it asks), and when the claim is not the Shop's
// (a ChildConflict, reported as such). The claim is read from the API server, as
// the workloads are (observe): the cache may not yet hold the growth this reconcile has just
// written. The note names no message of the resizer's, which may change at every attempt.
func (r *ShopReconciler) claimGrowth(ctx context.Context, shop *shopv1.Shop, store string) (note string, failed bool, err error) {
	claim := &corev1.PersistentVolumeClaim{}
	err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, store)}, claim)
	switch {
	case apierrors.IsNotFound(err):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("get PersistentVolumeClaim %s: %w", resources.Name(shop, store), err)
	case !metav1.IsControlledBy(claim, shop) || claim.Status.Phase != corev1.ClaimBound:
		return "", false, nil
	}
	asked, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	held, bound := claim.Status.Capacity[corev1.ResourceStorage]
	if !ok || !bound || asked.Cmp(held) <= 0 {
		return "", false, nil
	}
	// A claim never shrinks: one asking more than the Shop now does (a growth set back in
	// the Shop, which StorageNotShrunk tells of) is done for the Shop once its volume holds
	// what the Shop asks. The growth left on the claim is no rollout of the Shop's: else a
	// growth the resizer failed, set back, would keep the Shop not Ready and Degraded for
	// good, since no change of the Shop's takes it off the claim.
	if want := resources.StorePersistentVolumeClaim(shop, store).Spec.Resources.Requests[corev1.ResourceStorage]; want.Cmp(held) <= 0 {
		return "", false, nil
	}
	onNode := false
	for _, c := range claim.Status.Conditions {
		switch {
		case c.Status != corev1.ConditionTrue:
		case c.Type == corev1.PersistentVolumeClaimControllerResizeError, c.Type == corev1.PersistentVolumeClaimNodeResizeError:
			failed = true
		case c.Type == corev1.PersistentVolumeClaimFileSystemResizePending:
			onNode = true
		}
	}
	switch claim.Status.AllocatedResourceStatuses[corev1.ResourceStorage] {
	case corev1.PersistentVolumeClaimControllerResizeInfeasible, corev1.PersistentVolumeClaimNodeResizeInfeasible:
		failed = true
	}
	if failed {
		return fmt.Sprintf("PersistentVolumeClaim %s failed to grow to %s from %s: kubectl describe pvc %s",
			claim.Name, asked.String(), held.String(), claim.Name), true, nil
	}
	if onNode {
		// The volume has grown; its file system grows on the node, at once where the driver
		// can grow it in use, else when the store's pod next starts.
		return fmt.Sprintf("PersistentVolumeClaim %s growing to %s from %s: its file system grows on the node, "+
			"at the store's next start if its driver cannot grow it in use", claim.Name, asked.String(), held.String()), false, nil
	}
	return fmt.Sprintf("PersistentVolumeClaim %s growing to %s from %s", claim.Name, asked.String(), held.String()), false, nil
}

// writeStatus patches shop's status to status only when it changed, and records an Event
// when the shop becomes degraded or recovers, so a reconcile that changes nothing writes
// nothing.
func (r *ShopReconciler) writeStatus(ctx context.Context, shop *shopv1.Shop, status shopv1.ShopStatus) error {
	if equality.Semantic.DeepEqual(status, shop.Status) {
		return nil
	}
	before := meta.FindStatusCondition(shop.Status.Conditions, ConditionDegraded)
	after := meta.FindStatusCondition(status.Conditions, ConditionDegraded)
	base := shop.DeepCopy()
	shop.Status = status
	if err := r.Status().Patch(ctx, shop, client.MergeFrom(base)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile: its status is nobody's concern now
		}
		return fmt.Errorf("patch status: %w", err)
	}
	if eventType, reason, note, ok := degradedEvent(before, after); ok {
		r.event(shop, nil, eventType, reason, "Reconcile", "%s", note)
	}
	return nil
}

// reportFailure says in shop's status why its reconcile failed with err again
// (reportAfterFailures), which is retried with backoff: Ready and Degraded name the error at
// the Shop's generation (the components as last read), so that a new Shop does not stay
// without a status, nor a changed one show the Ready of its last generation while its change
// cannot be applied. A conflict (a write raced another's) and a reconcile cut short by the
// manager's stop are left unsaid: the retry reads everything anew.
func (r *ShopReconciler) reportFailure(ctx context.Context, shop *shopv1.Shop, err error) {
	if apierrors.IsConflict(err) || ctx.Err() != nil {
		return
	}
	status := ComputeStatus(shop, nil, &Problem{Reason: ReasonReconcileFailed, Message: "retrying after an error: " + err.Error()},
		metav1.NewTime(time.Now()))
	status.Components, status.Endpoint = shop.Status.Components, shop.Status.Endpoint
	if werr := r.writeStatus(ctx, shop, status); werr != nil {
		logf.FromContext(ctx).Error(werr, "write the status of a failed reconcile")
	}
}

// degradedEvent is the Event a change of the Degraded condition from before (nil: none) to
// after is recorded as, if any: a Warning when the Shop becomes degraded, or stays so with
// another reason or message (a second component's rollout stalled beside the first, another
// child held back), so that the Events name what the condition names; a Normal one when it
// recovers.
func degradedEvent(before, after *metav1.Condition) (eventType, reason, note string, ok bool) {
	wasDegraded := before != nil && before.Status == metav1.ConditionTrue
	switch {
	case after.Status == metav1.ConditionTrue && (!wasDegraded || before.Reason != after.Reason || before.Message != after.Message):
		return corev1.EventTypeWarning, after.Reason, after.Message, true
	case after.Status == metav1.ConditionFalse && wasDegraded:
		return corev1.EventTypeNormal, "Recovered", "no longer degraded", true
	}
	return "", "", "", false
}

// event records an Event about shop, regarding the child related when there is one.
func (r *ShopReconciler) event(shop *shopv1.Shop, related runtime.Object, eventType, reason, action, note string, args ...any) {
	r.Recorder.Eventf(shop, related, eventType, reason, action, "%s", clip(fmt.Sprintf(note, args...), maxEventNote))
}

// externalSecretField indexes Shops by the names of the Secrets their external stores
// name (externalSecrets), so that a change of such a Secret reaches every Shop using it.
const externalSecretField = "spec.external.secretRef.name"

// externalSecrets are the names of the Secrets shop's external stores read.
func externalSecrets(o client.Object) []string {
	shop, ok := o.(*shopv1.Shop)
	if !ok {
		return nil
	}
	var names []string
	for _, ext := range []*shopv1.ExternalSpec{shop.Spec.MongoDB.External, shop.Spec.RabbitMQ.External} {
		if ext != nil && !slices.Contains(names, ext.SecretRef.Name) {
			names = append(names, ext.SecretRef.Name)
		}
	}
	return names
}

// SetupWithManager registers the controller: it reconciles Shops when their spec or status
// changes, and a Shop again whenever one of its children changes or is deleted (so drift is
// repaired), or a Secret it reads changes (so an external store's Secret is followed).
func (r *ShopReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &shopv1.Shop{}, externalSecretField, externalSecrets); err != nil {
		return fmt.Errorf("index Shops by their external Secrets: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&shopv1.Shop{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, statusChanged))).
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.shopsOfSecret)).
		Named("shop").
		Complete(r)
}

// statusChanged passes an update of a Shop whose status changed. writeStatus writes only a
// status that differs from the Shop as read from the cache, which may not yet hold the
// previous reconcile's own patch: a reconcile that then finds the status it computes already
// there writes nothing, though what is stored is that patch. The patch's arrival in the
// cache brings one more reconcile, which sees it and puts it right; it writes nothing when
// the status is as computed. A status written by anyone else is put right the same way.
var statusChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	before, ok1 := e.ObjectOld.(*shopv1.Shop)
	after, ok2 := e.ObjectNew.(*shopv1.Shop)
	return !ok1 || !ok2 || !equality.Semantic.DeepEqual(before.Status, after.Status)
}}

// shopsOfSecret maps a Secret to the Shops that read it or would: the Shop named by its
// label (the Secrets the controller makes carry it, and an external store's Secret must),
// and every Shop of its namespace whose external store names it, which reports a label
// naming another Shop (externalURI).
func (r *ShopReconciler) shopsOfSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	if name := o.GetLabels()[resources.LabelShop]; name != "" {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}})
	}
	shops := &shopv1.ShopList{}
	if err := r.List(ctx, shops, client.InNamespace(o.GetNamespace()), client.MatchingFields{externalSecretField: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "list the Shops that read a Secret", "secret", client.ObjectKeyFromObject(o))
		return reqs
	}
	for i := range shops.Items {
		req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&shops.Items[i])}
		if !slices.Contains(reqs, req) {
			reqs = append(reqs, req)
		}
	}
	return reqs
}

// CacheOptions restricts the manager's cache to the objects the controller makes:
// children by their managed-by label, Secrets by the shop label (ours and external
// stores'). Unrelated objects in the cluster cost no memory. namespaces, when not
// empty, limits the cache (and so the controller) to those namespaces.
func CacheOptions(namespaces ...string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{resources.LabelManagedBy: resources.ManagedBy})
	hasShop, err := labels.NewRequirement(resources.LabelShop, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant key: cannot fail
	}
	opts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}:            {Label: managed},
			&appsv1.StatefulSet{}:           {Label: managed},
			&corev1.Service{}:               {Label: managed},
			&corev1.PersistentVolumeClaim{}: {Label: managed},
			&networkingv1.NetworkPolicy{}:   {Label: managed},
			&policyv1.PodDisruptionBudget{}: {Label: managed},
			&corev1.Secret{}:                {Label: labels.NewSelector().Add(*hasShop)},
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}
