package controllers

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// Condition types of a Shop, the ones kubectl wait and GitOps health checks know.
const (
	ConditionReady       = "Ready"
	ConditionProgressing = "Progressing"
	ConditionDegraded    = "Degraded"
)

// Condition reasons.
const (
	// ReasonAvailable (Ready=True): every component runs its desired replicas.
	ReasonAvailable = "Available"
	// ReasonComponentsNotReady (Ready=False): some component is not rolled out yet.
	ReasonComponentsNotReady = "ComponentsNotReady"
	// ReasonRollingOut (Progressing=True): a component is being created or rolled out.
	ReasonRollingOut = "RollingOut"
	// ReasonRolloutComplete (Progressing=False): every component runs its current revision.
	ReasonRolloutComplete = "RolloutComplete"
	// ReasonBlocked (Progressing=False): a problem stops the controller from making the
	// shop or a workload, or, when it is with a child no pod needs, nothing else is left
	// to roll out.
	ReasonBlocked = "Blocked"
	// ReasonAsExpected (Degraded=False): nothing is wrong.
	ReasonAsExpected = "AsExpected"
	// ReasonRolloutStalled (Degraded=True): a Deployment exceeded its progress deadline,
	// or a StatefulSet's pod has not been ready for as long (stuckPod).
	ReasonRolloutStalled = "RolloutStalled"
	// ReasonExternalSecretNotFound (Degraded=True): the Secret of an external store is missing.
	ReasonExternalSecretNotFound = "ExternalSecretNotFound"
	// ReasonExternalSecretNotLabelled (Degraded=True): it exists but lacks the label that
	// lets the controller see it, or the label names another Shop.
	ReasonExternalSecretNotLabelled = "ExternalSecretNotLabelled"
	// ReasonExternalSecretInvalid (Degraded=True): the key is missing or holds no URI of the store.
	ReasonExternalSecretInvalid = "ExternalSecretInvalid"
	// ReasonChildRejected (Degraded=True): the API server refused a child as invalid:
	// a value the Shop's own validation lets through but the child's does not.
	ReasonChildRejected = "ChildRejected"
	// ReasonChildConflict (Degraded=True): an object with a child's name belongs to
	// someone else, or is a store's claim made for other storage (claimMismatch). The
	// controller looks again every ConflictRetry.
	ReasonChildConflict = "ChildConflict"
	// ReasonChildForbidden (Degraded=True): the API server forbade writing a child: a
	// ResourceQuota, an admission webhook or policy, a storage class that cannot grow a
	// volume. The controller looks again every ConflictRetry, since lifting the limit may
	// bring no event, and makes the other children meanwhile.
	ReasonChildForbidden = "ChildForbidden"
	// ReasonCredentialsInvalid (Degraded=True): a store's credentials Secret holds a value
	// the store's configuration cannot carry.
	ReasonCredentialsInvalid = "CredentialsInvalid"
	// ReasonVolumeResizeFailed (Degraded=True): a store's claim asks more than its volume
	// holds, and the cluster's resizer says it failed to grow it (the claim's
	// ControllerResizeError or NodeResizeError condition, or a growth it finds infeasible).
	ReasonVolumeResizeFailed = "VolumeResizeFailed"
	// ReasonReconcileFailed (Degraded=True): the controller could not write or read the
	// children for an error it retries with backoff (an API server or a webhook failing,
	// say); the message is the error.
	ReasonReconcileFailed = "ReconcileFailed"
)

// ReasonStorageNotShrunk is the reason of the Normal Event that tells, at a change of the
// Shop, that a store's claim keeps a size larger than its storage.size asks: a claim
// never shrinks. It is no Problem: the store runs, on its larger volume.
const ReasonStorageNotShrunk = "StorageNotShrunk"

// Problem is something the controller cannot fix by retrying: it waits for the user
// (or for the object it waits on) to change, and says so in the Degraded condition.
// It is not retried with backoff; those whose end brings no event are looked at again
// every ConflictRetry (lookAgain).
type Problem struct {
	Reason  string
	Message string

	// contained: the Problem is with children no pod needs (podsNeedNot), and the
	// reconcile went on to apply every other child (applyChildren), so the workloads
	// still roll out.
	contained bool
}

func (p *Problem) Error() string { return p.Reason + ": " + p.Message }

// lookAgain reports whether the end of the Problem may come with no event the controller
// watches: the deletion of an object it does not own (ChildConflict), a quota raised or a
// policy changed (ChildForbidden), a Secret made without the label that lets the
// controller see it (ExternalSecretNotFound, which then becomes ExternalSecretNotLabelled).
func (p *Problem) lookAgain() bool {
	switch p.Reason {
	case ReasonChildConflict, ReasonChildForbidden, ReasonExternalSecretNotFound:
		return true
	}
	return false
}

// ComponentState is what the controller read of one component's workload.
type ComponentState struct {
	Name string
	// Desired replicas, from the Shop.
	Desired int32
	// Workload is the component's Deployment or StatefulSet (resources.OneProcess),
	// nil when it does not exist (yet).
	Workload client.Object
	// Stuck says which pod of the workload has not been ready for its deadline, and
	// why (stuckPod), or that the workload has failed to make a pod as long
	// (failingCreate, replicaFailure); empty when neither.
	Stuck string
	// Volume, for a store, says that its claim asks more than its volume holds
	// (claimGrowth): growing, or, with VolumeFailed, failed to grow. Empty when the volume
	// holds what the claim asks, or the claim is not bound yet.
	Volume       string
	VolumeFailed bool
}

// workloadStatus is what a Deployment and a StatefulSet both report of their pods.
type workloadStatus struct {
	generation, observedGeneration      int64
	replicas, updated, ready, available int32
	revisionsDiffer                     bool
	stalled                             string
}

// status reads c's workload; ok is false when there is none.
func (c ComponentState) status() (s workloadStatus, ok bool) {
	switch w := c.Workload.(type) {
	case *appsv1.Deployment:
		st := w.Status
		s = workloadStatus{generation: w.Generation, observedGeneration: st.ObservedGeneration,
			replicas: st.Replicas, updated: st.UpdatedReplicas, ready: st.ReadyReplicas, available: st.AvailableReplicas}
		for _, cond := range st.Conditions {
			if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded" {
				s.stalled = cond.Message
			}
		}
		return s, true
	case *appsv1.StatefulSet:
		// A StatefulSet has no progress deadline: its pods are looked at instead (Stuck).
		st := w.Status
		return workloadStatus{generation: w.Generation, observedGeneration: st.ObservedGeneration,
			replicas: st.Replicas, updated: st.UpdatedReplicas, ready: st.ReadyReplicas, available: st.AvailableReplicas,
			revisionsDiffer: st.CurrentRevision != st.UpdateRevision}, true
	}
	return workloadStatus{}, false
}

// ready is the number of c's pods of the current revision that are ready. The
// workload's status counts the ready pods of every revision together, so during a
// rollout the old revision's pods, which stay ready until they are replaced (no pod
// less: maxUnavailable 0), are taken off: an old pod that is not ready makes the count
// low by one for a moment, never a new pod counted ready before it is.
func (c ComponentState) ready() int32 {
	s, _ := c.status()
	old := max(s.replicas-s.updated, 0)
	return max(min(s.ready-old, s.updated), 0)
}

// rolledOut tells whether the workload runs desired replicas of its current revision,
// all available, with no old pod left (kubectl rollout status's rule), and, for a store,
// its volume holds what its claim asks: a raised storage.size changes the claim alone, and
// is not done until the cluster's resizer has grown the volume.
func (c ComponentState) rolledOut() bool {
	s, ok := c.status()
	if !ok || s.observedGeneration < s.generation || s.revisionsDiffer || c.Volume != "" {
		return false
	}
	return s.updated == c.Desired && s.replicas == s.updated && s.available == s.updated
}

// stalled returns the Deployment controller's message when it gave up progressing,
// or what has kept a StatefulSet's pod unready, or missing, past its deadline.
func (c ComponentState) stalled() (string, bool) {
	if c.Stuck != "" {
		return c.Stuck, true
	}
	s, _ := c.status()
	return s.stalled, s.stalled != ""
}

// stuckPod names the first of pods that has not been ready for deadline, with the
// reason the kubelet or the scheduler gives: a container waiting (CrashLoopBackOff,
// ImagePullBackOff...), or the pod unscheduled. The clock starts when the pod's Ready
// condition last turned false (when it was created, if it has none yet), so a pod that
// ran for days and was restarted a moment ago is not judged by its age. wait, when not
// zero, is how long until the first pod not yet past the deadline reaches it.
//
// A pod on its way out is judged from the end of its grace period (its
// deletionTimestamp): one still there a deadline later is held by a node that does not
// answer, or by a finalizer, and a StatefulSet does not replace a pod before it is gone.
func stuckPod(pods []corev1.Pod, deadline time.Duration, now time.Time) (stuck string, wait time.Duration) {
	for i := range pods {
		p := &pods[i]
		since, why := unreadySince(p), ""
		switch {
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			// Terminated (evicted, say): the workload's controller has replaced it, and it
			// lingers only until the pod garbage collector comes.
			continue
		case p.DeletionTimestamp != nil:
			since = p.DeletionTimestamp.Time
			why = fmt.Sprintf("pod %s still there %s after its grace period ended: is its node down? Once the node is known "+
				"to be off, kubectl delete pod %s --force lets it be replaced", p.Name, deadline, p.Name)
		case podReady(p):
			continue
		}
		if left := deadline - now.Sub(since); left > 0 {
			wait = sooner(wait, left)
			continue
		}
		if stuck == "" {
			if why == "" {
				why = fmt.Sprintf("pod %s not ready for %s: %s", p.Name, deadline, unreadyReason(p))
			}
			stuck = why
		}
	}
	return stuck, wait
}

// failureEnded is how long after its last FailedCreate event a StatefulSet's failure to
// make its pod is taken to be over: while it lasts, the StatefulSet controller tries again,
// and records the event again, at least every 1000 s (its longest back-off).
const failureEnded = 20 * time.Minute

// failingCreate reports a StatefulSet named name that has failed to make a pod for
// deadline, as its FailedCreate events (a quota, an admission webhook refusing the
// pod...) tell; wait, when not zero, is how long until a younger failure reaches the
// deadline. An event last seen more than failureEnded ago tells of a failure that is
// over (a quota since raised), not of this one. The message points to the events rather
// than quoting them, so that it stays the same while the failure lasts.
func failingCreate(name string, events []corev1.Event, deadline time.Duration, now time.Time) (stuck string, wait time.Duration) {
	for i := range events {
		e := &events[i]
		first := e.FirstTimestamp.Time
		if first.IsZero() {
			first = e.EventTime.Time
		}
		if first.IsZero() {
			first = e.CreationTimestamp.Time
		}
		last := first
		if t := e.LastTimestamp.Time; t.After(last) {
			last = t
		}
		if e.Series != nil && e.Series.LastObservedTime.After(last) {
			last = e.Series.LastObservedTime.Time
		}
		if now.Sub(last) > failureEnded {
			continue
		}
		if left := deadline - now.Sub(first); left > 0 {
			wait = sooner(wait, left)
			continue
		}
		return fmt.Sprintf("StatefulSet %s has failed to make its pod for %s (kubectl describe statefulset %s)", name, deadline, name), 0
	}
	return "", wait
}

// replicaFailure reports a Deployment d that has failed to make a pod for deadline, as
// its ReplicaFailure condition tells (a quota, an admission webhook refusing the pod...);
// wait, when not zero, is how long until a younger failure reaches the deadline. The
// Deployment controller's own progress deadline does not see such a failure once every
// pod there is is of the current revision (a scale-up, a pod evicted and not made again):
// the Deployment counts as complete. The controller removes the condition once a pod is
// made. The message points to the Deployment, as failingCreate's, so that it stays the
// same while the failure lasts.
func replicaFailure(d *appsv1.Deployment, deadline time.Duration, now time.Time) (stuck string, wait time.Duration) {
	for _, c := range d.Status.Conditions {
		if c.Type != appsv1.DeploymentReplicaFailure || c.Status != corev1.ConditionTrue {
			continue
		}
		if left := deadline - now.Sub(c.LastTransitionTime.Time); left > 0 {
			return "", left
		}
		return fmt.Sprintf("Deployment %s has failed to make its pods for %s (kubectl describe deployment %s)", d.Name, deadline, d.Name), 0
	}
	return "", 0
}

// sooner is the shorter of two waits, a zero wait meaning none.
func sooner(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// podReady tells whether p's Ready condition is true.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// unreadySince is when p's Ready condition last turned false, or when p was created if
// it has no such condition yet.
func unreadySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return p.CreationTimestamp.Time
}

// unreadyReason says why p is not ready, in words that stay the same while the cause
// does: no restart count, nor the kubelet's back-off message, both of which change at
// every look and would rewrite the Shop's status each time (kubectl describe pod has
// them). A crash loop shows now as a waiting container, now as a running one, and an
// image pull as ErrImagePull or ImagePullBackOff: each is named one way.
func unreadyReason(p *corev1.Pod) string {
	statuses := append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, c := range statuses {
		if w := c.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff":
				return fmt.Sprintf("container %s: its image cannot be pulled", c.Name)
			case "InvalidImageName":
				return fmt.Sprintf("container %s: its image name is invalid: %s", c.Name, w.Message)
			case "", "PodInitializing", "ContainerCreating", "CrashLoopBackOff":
			default:
				return fmt.Sprintf("container %s: %s", c.Name, w.Reason)
			}
		}
	}
	for _, c := range statuses {
		if c.RestartCount > 0 && !c.Ready {
			return fmt.Sprintf("container %s keeps restarting", c.Name)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return "not scheduled: " + c.Reason
		}
	}
	for _, c := range statuses {
		if !c.Ready {
			return fmt.Sprintf("container %s not ready", c.Name)
		}
	}
	return "phase " + string(p.Status.Phase)
}

// maxConditionMessage bounds a condition's message. The API refuses more than 32 KiB, and
// a child's refusal quotes what it refused: a value the Shop let through (a pod label of
// 40 KB) would otherwise make the whole status unwritable, the problem unsaid.
const maxConditionMessage = 4 << 10

// maxEventNote bounds an Event's note: events.k8s.io refuses one over 1 KiB, and the
// recorder drops it then, unsaid.
const maxEventNote = 1 << 10

// clip returns s, or its start cut at a character's boundary and marked so, at most limit
// bytes long.
func clip(s string, limit int) string {
	const mark = " … (cut short)"
	if len(s) <= limit {
		return s
	}
	cut := limit - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// ComputeStatus is the Shop's status given its components and the problem met while
// applying (nil if none). It starts from the current status so that a condition whose
// status does not change keeps its lastTransitionTime, and it reads no clock but now.
func ComputeStatus(shop *shopv1.Shop, components []ComponentState, problem *Problem, now metav1.Time) shopv1.ShopStatus {
	status := shopv1.ShopStatus{
		ObservedGeneration: shop.Generation,
		Conditions:         append([]metav1.Condition(nil), shop.Status.Conditions...),
		Components:         map[string]shopv1.ComponentStatus{},
	}
	var waiting, stalled, resizeFailed []string
	for _, c := range components {
		ready := c.ready()
		if c.Workload != nil && c.Name == resources.Gateway {
			status.Endpoint = resources.Endpoint(shop)
		}
		status.Components[c.Name] = shopv1.ComponentStatus{Ready: ready, Desired: c.Desired, Replicas: fmt.Sprintf("%d/%d", ready, c.Desired)}
		if msg, ok := c.stalled(); ok {
			stalled = append(stalled, c.Name+": "+msg)
		}
		if c.VolumeFailed {
			resizeFailed = append(resizeFailed, c.Name+": "+c.Volume)
		}
		if !c.rolledOut() {
			if c.Volume != "" {
				waiting = append(waiting, fmt.Sprintf("%s (%d/%d, %s)", c.Name, ready, c.Desired, c.Volume))
			} else {
				waiting = append(waiting, fmt.Sprintf("%s (%d/%d)", c.Name, ready, c.Desired))
			}
		}
	}

	set := func(typ string, ok bool, reason, message string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: clip(message, maxConditionMessage),
			ObservedGeneration: shop.Generation, LastTransitionTime: now,
		})
	}
	switch {
	case problem != nil:
		set(ConditionDegraded, true, problem.Reason, problem.Message)
	case len(stalled) > 0:
		// A growth failed beside it is named too: its reason waits for the stall to clear.
		set(ConditionDegraded, true, ReasonRolloutStalled, strings.Join(append(stalled, resizeFailed...), "; "))
	case len(resizeFailed) > 0:
		set(ConditionDegraded, true, ReasonVolumeResizeFailed, strings.Join(resizeFailed, "; "))
	default:
		set(ConditionDegraded, false, ReasonAsExpected, "no problem found")
	}
	switch {
	// A problem with a child no pod needs leaves the workloads rolling out: progress.
	case len(waiting) > 0 && (problem == nil || problem.contained):
		set(ConditionProgressing, true, ReasonRollingOut, "waiting for "+strings.Join(waiting, ", "))
	case problem != nil:
		set(ConditionProgressing, false, ReasonBlocked, "waiting for the problem to be fixed: "+problem.Message)
	default:
		set(ConditionProgressing, false, ReasonRolloutComplete, "every component runs its desired replicas")
	}
	switch {
	case problem != nil:
		set(ConditionReady, false, problem.Reason, problem.Message)
	case len(waiting) > 0:
		set(ConditionReady, false, ReasonComponentsNotReady, "not ready: "+strings.Join(waiting, ", "))
	default:
		set(ConditionReady, true, ReasonAvailable, "every component runs its desired replicas")
	}
	if len(status.Components) == 0 {
		status.Components = nil
	}
	return status
}
