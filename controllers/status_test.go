package controllers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// rolledSet is a StatefulSet of generation 2 whose status reports replicas as given
// (ready and available alike) and its current and update revisions.
func rolledSet(observedGen, replicas, updated, ready int32, current, update string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Status: appsv1.StatefulSetStatus{
			ObservedGeneration: int64(observedGen), Replicas: replicas, UpdatedReplicas: updated,
			ReadyReplicas: ready, AvailableReplicas: ready, CurrentRevision: current, UpdateRevision: update,
		},
	}
}

// rolled is a Deployment of generation 2 whose status reports replicas as given.
func rolled(desired, observedGen, replicas, updated, available int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(desired)},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: int64(observedGen), Replicas: replicas, UpdatedReplicas: updated,
			ReadyReplicas: available, AvailableReplicas: available, Conditions: conds,
		},
	}
}

func TestComputeStatus(t *testing.T) {
	stalled := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "too slow"}
	tests := []struct {
		name        string
		gateway     client.Object
		problem     *Problem
		ready       string
		progressing string
		degraded    string
		replicas    string
		endpoint    bool
	}{
		{name: "nothing made yet", ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "False/AsExpected", replicas: "0/2"},
		{name: "rolled out", gateway: rolled(2, 2, 2, 2, 2), ready: "True/Available", progressing: "False/RolloutComplete", degraded: "False/AsExpected", replicas: "2/2", endpoint: true},
		{name: "new generation not observed", gateway: rolled(2, 1, 2, 2, 2), ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "False/AsExpected", replicas: "2/2", endpoint: true},
		// Two of the new revision made, one old pod left: the old pod is one of the two ready.
		{name: "old pods still running", gateway: rolled(2, 2, 3, 2, 2), ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "False/AsExpected", replicas: "1/2", endpoint: true},
		{name: "rollout begun, no new pod ready", gateway: rolled(2, 2, 3, 1, 2), ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "False/AsExpected", replicas: "0/2", endpoint: true},
		{name: "one replica unavailable", gateway: rolled(2, 2, 2, 2, 1), ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "False/AsExpected", replicas: "1/2", endpoint: true},
		{name: "rollout stalled", gateway: rolled(2, 2, 2, 1, 1, stalled), ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "True/RolloutStalled", replicas: "0/2", endpoint: true},
		{name: "StatefulSet rolled out", gateway: rolledSet(2, 2, 2, 2, "r2", "r2"), ready: "True/Available", progressing: "False/RolloutComplete", degraded: "False/AsExpected", replicas: "2/2", endpoint: true},
		{name: "StatefulSet still on its old revision", gateway: rolledSet(2, 2, 2, 2, "r1", "r2"), ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "False/AsExpected", replicas: "2/2", endpoint: true},
		{name: "StatefulSet pod not ready", gateway: rolledSet(2, 2, 2, 1, "r2", "r2"), ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "False/AsExpected", replicas: "1/2", endpoint: true},
		{name: "StatefulSet new generation not observed", gateway: rolledSet(1, 2, 2, 2, "r2", "r2"), ready: "False/ComponentsNotReady", progressing: "True/RollingOut", degraded: "False/AsExpected", replicas: "2/2", endpoint: true},
		{
			name: "problem", gateway: rolled(2, 2, 2, 2, 2), problem: &Problem{Reason: ReasonExternalSecretNotFound, Message: "gone"},
			ready: "False/ExternalSecretNotFound", progressing: "False/Blocked", degraded: "True/ExternalSecretNotFound", replicas: "2/2", endpoint: true,
		},
		{
			name: "problem stopping everything, a rollout under way", gateway: rolled(2, 2, 2, 2, 1), problem: &Problem{Reason: ReasonExternalSecretNotFound, Message: "gone"},
			ready: "False/ExternalSecretNotFound", progressing: "False/Blocked", degraded: "True/ExternalSecretNotFound", replicas: "1/2", endpoint: true,
		},
		{
			name: "one child's problem, the rest rolling out", gateway: rolled(2, 2, 2, 2, 1), problem: &Problem{Reason: ReasonChildForbidden, Message: "quota", contained: true},
			ready: "False/ChildForbidden", progressing: "True/RollingOut", degraded: "True/ChildForbidden", replicas: "1/2", endpoint: true,
		},
		{
			name: "one child's problem, the rest rolled out", gateway: rolled(2, 2, 2, 2, 2), problem: &Problem{Reason: ReasonChildForbidden, Message: "quota", contained: true},
			ready: "False/ChildForbidden", progressing: "False/Blocked", degraded: "True/ChildForbidden", replicas: "2/2", endpoint: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop := &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "ns", Generation: 5}}
			s := ComputeStatus(shop, []ComponentState{{Name: "gateway", Desired: 2, Workload: tt.gateway}}, tt.problem, metav1.Now())
			for typ, want := range map[string]string{ConditionReady: tt.ready, ConditionProgressing: tt.progressing, ConditionDegraded: tt.degraded} {
				c := meta.FindStatusCondition(s.Conditions, typ)
				if c == nil || string(c.Status)+"/"+c.Reason != want || c.ObservedGeneration != 5 || c.Message == "" {
					t.Errorf("%s = %+v, want %s", typ, c, want)
				}
			}
			if got := s.Components["gateway"].Replicas; got != tt.replicas {
				t.Errorf("gateway replicas %q, want %q", got, tt.replicas)
			}
			if (s.Endpoint == "http://demo-gateway.ns.svc:80") != tt.endpoint || s.ObservedGeneration != 5 {
				t.Errorf("endpoint %q observedGeneration %d", s.Endpoint, s.ObservedGeneration)
			}
		})
	}
}

// TestConditionMessagesAreCutAt4KiB: a problem's message, which may quote the API server at
// length (every refused field), is cut short at 4 KiB in the conditions, as the README says.
func TestConditionMessagesAreCutAt4KiB(t *testing.T) {
	shop := &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "ns"}}
	long := strings.Repeat("refused; ", 2000) // 18000 bytes
	s := ComputeStatus(shop, nil, &Problem{Reason: ReasonChildRejected, Message: long}, metav1.Now())
	for _, typ := range []string{ConditionReady, ConditionDegraded} {
		c := meta.FindStatusCondition(s.Conditions, typ)
		if c == nil || len(c.Message) != 4096 || !strings.HasSuffix(c.Message, "(cut short)") {
			t.Errorf("%s message of %d bytes, want 4096 cut short", typ, len(c.Message))
		}
	}
}

func TestComputeStatusKeepsTransitionTimes(t *testing.T) {
	shop := &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Name: "demo", Generation: 1}}
	gateway := rolled(2, 2, 2, 2, 2)
	components := []ComponentState{{Name: "gateway", Desired: 2, Workload: gateway}}
	first := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	shop.Status = ComputeStatus(shop, components, nil, first)

	again := ComputeStatus(shop, components, nil, metav1.Now())
	if !meta.FindStatusCondition(again.Conditions, ConditionReady).LastTransitionTime.Equal(&first) {
		t.Errorf("an unchanged condition moved its lastTransitionTime")
	}
	gateway.Status.AvailableReplicas = 1
	later := metav1.NewTime(first.Add(time.Minute))
	changed := ComputeStatus(shop, components, nil, later)
	if c := meta.FindStatusCondition(changed.Conditions, ConditionReady); c.Status != metav1.ConditionFalse || !c.LastTransitionTime.Equal(&later) {
		t.Errorf("Ready = %+v, want False since %v", c, later)
	}
}

func TestStuckPod(t *testing.T) {
	now := time.Now()
	const deadline = 10 * time.Minute
	// pod makes a pod unready for unready, created a day before.
	pod := func(name string, unready time.Duration, edit func(*corev1.Pod)) corev1.Pod {
		p := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-24 * time.Hour))},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning,
				Conditions: []corev1.PodCondition{{
					Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(now.Add(-unready)),
				}},
			},
		}
		if edit != nil {
			edit(&p)
		}
		return p
	}
	crashing := func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "product", RestartCount: 7, State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container"},
		}}}
	}
	tests := []struct {
		name      string
		pods      []corev1.Pod
		wantStuck string
		wantWait  time.Duration
	}{
		{name: "no pod"},
		{name: "ready", pods: []corev1.Pod{pod("p-0", time.Hour, func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionTrue })}},
		{name: "crashing for a short while, in a pod a day old", pods: []corev1.Pod{pod("p-0", 4*time.Minute, crashing)}, wantWait: 6 * time.Minute},
		{
			name: "not scheduled, no Ready condition yet: the clock starts at creation", pods: []corev1.Pod{pod("p-0", 0, func(p *corev1.Pod) {
				p.CreationTimestamp = metav1.NewTime(now.Add(-3 * time.Minute))
				p.Status = corev1.PodStatus{Phase: corev1.PodPending}
			})},
			wantWait: 7 * time.Minute,
		},
		{
			name: "crashing past the deadline", pods: []corev1.Pod{pod("p-0", 11*time.Minute, crashing)},
			wantStuck: "pod p-0 not ready for 10m0s: container product keeps restarting",
		},
		{
			name: "crashing, seen between two back-offs", pods: []corev1.Pod{pod("p-0", 11*time.Minute, func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "product", RestartCount: 8, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			})},
			wantStuck: "pod p-0 not ready for 10m0s: container product keeps restarting",
		},
		{
			// From its first restart: the words do not change at the second.
			name: "restarted once, running and not ready", pods: []corev1.Pod{pod("p-0", 11*time.Minute, func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "product", RestartCount: 1, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			})},
			wantStuck: "pod p-0 not ready for 10m0s: container product keeps restarting",
		},
		{
			name: "image not pulled", pods: []corev1.Pod{pod("p-0", time.Hour, func(p *corev1.Pod) {
				p.Status.Phase = corev1.PodPending
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "rabbitmq", State: corev1.ContainerState{
					Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"},
				}}}
			})},
			wantStuck: "pod p-0 not ready for 10m0s: container rabbitmq: its image cannot be pulled",
		},
		{
			name: "image name the kubelet cannot parse", pods: []corev1.Pod{pod("p-0", time.Hour, func(p *corev1.Pod) {
				p.Status.Phase = corev1.PodPending
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "gateway", State: corev1.ContainerState{
					Waiting: &corev1.ContainerStateWaiting{Reason: "InvalidImageName", Message: `couldn't parse image name "Foo/Bar:v1": invalid reference format`},
				}}}
			})},
			wantStuck: `pod p-0 not ready for 10m0s: container gateway: its image name is invalid: couldn't parse image name "Foo/Bar:v1": invalid reference format`,
		},
		{
			name: "not scheduled", pods: []corev1.Pod{pod("p-0", time.Hour, func(p *corev1.Pod) {
				p.Status.Phase = corev1.PodPending
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
					Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available",
				})
			})},
			wantStuck: "pod p-0 not ready for 10m0s: not scheduled: Unschedulable",
		},
		{
			name: "a Secret it needs missing", pods: []corev1.Pod{pod("p-0", time.Hour, func(p *corev1.Pod) {
				p.Status.Phase = corev1.PodPending
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "user", State: corev1.ContainerState{
					Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "demo-connections" not found`},
				}}}
			})},
			wantStuck: "pod p-0 not ready for 10m0s: container user: CreateContainerConfigError",
		},
		{
			name: "running, failing its readiness probe", pods: []corev1.Pod{pod("p-0", time.Hour, func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "mongodb", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			})},
			wantStuck: "pod p-0 not ready for 10m0s: container mongodb not ready",
		},
		{
			name: "terminating, within its grace period", pods: []corev1.Pod{pod("p-0", time.Hour, func(p *corev1.Pod) {
				crashing(p)
				p.DeletionTimestamp = &metav1.Time{Time: now.Add(30 * time.Second)}
			})},
			wantWait: 10*time.Minute + 30*time.Second,
		},
		{
			name: "still there long after its grace period, as on a node that does not answer", pods: []corev1.Pod{pod("p-0", time.Hour, func(p *corev1.Pod) {
				p.DeletionTimestamp = &metav1.Time{Time: now.Add(-11 * time.Minute)}
			})},
			wantStuck: "pod p-0 still there 10m0s after its grace period ended: is its node down? Once the node is known to be off, " +
				"kubectl delete pod p-0 --force lets it be replaced",
		},
		{
			// Left by a node-pressure eviction until the pod garbage collector comes; its
			// ReplicaSet has made another.
			name: "evicted long ago", pods: []corev1.Pod{pod("p-x", 72*time.Hour, func(p *corev1.Pod) {
				p.Status.Phase, p.Status.Reason = corev1.PodFailed, "Evicted"
			})},
		},
		{
			name: "completed", pods: []corev1.Pod{pod("p-x", 72*time.Hour, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })},
		},
		{
			name: "the oldest stuck, a younger one rechecked", pods: []corev1.Pod{pod("p-1", 9*time.Minute, crashing), pod("p-0", time.Hour, crashing)},
			wantStuck: "pod p-0 not ready for 10m0s: container product keeps restarting",
			wantWait:  time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stuck, wait := stuckPod(tt.pods, deadline, now)
			if stuck != tt.wantStuck || wait != tt.wantWait {
				t.Errorf("stuckPod = %q, %s; want %q, %s", stuck, wait, tt.wantStuck, tt.wantWait)
			}
		})
	}

	// A stuck pod makes the Shop Degraded, as a Deployment past its progress deadline does.
	shop := &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "ns", Generation: 1}}
	set := rolledSet(2, 1, 1, 0, "r1", "r1")
	s := ComputeStatus(shop, []ComponentState{{Name: "product", Desired: 1, Workload: set, Stuck: "pod demo-product-0 not ready"}}, nil, metav1.Now())
	if c := meta.FindStatusCondition(s.Conditions, ConditionDegraded); c.Reason != ReasonRolloutStalled || c.Message != "product: pod demo-product-0 not ready" {
		t.Errorf("Degraded = %+v", c)
	}

	// A store's volume that failed to grow beside it is named in the same message.
	resize := "PersistentVolumeClaim demo-rabbitmq failed to grow to 2Gi from 1Gi: kubectl describe pvc demo-rabbitmq"
	s = ComputeStatus(shop, []ComponentState{
		{Name: "product", Desired: 1, Workload: set, Stuck: "pod demo-product-0 not ready"},
		{Name: "rabbitmq", Desired: 1, Workload: rolledSet(1, 1, 1, 1, "r1", "r1"), Volume: resize, VolumeFailed: true},
	}, nil, metav1.Now())
	if c := meta.FindStatusCondition(s.Conditions, ConditionDegraded); c.Reason != ReasonRolloutStalled ||
		c.Message != "product: pod demo-product-0 not ready; rabbitmq: "+resize {
		t.Errorf("Degraded with a stall and a failed growth = %+v", c)
	}
}

func TestReplicaFailure(t *testing.T) {
	now := time.Now()
	const deadline = 10 * time.Minute
	deployment := func(conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "demo-gateway"}, Status: appsv1.DeploymentStatus{Conditions: conds}}
	}
	failure := func(status corev1.ConditionStatus, since time.Duration) appsv1.DeploymentCondition {
		return appsv1.DeploymentCondition{
			Type: appsv1.DeploymentReplicaFailure, Status: status, Reason: "FailedCreate",
			LastTransitionTime: metav1.NewTime(now.Add(-since)), LastUpdateTime: metav1.NewTime(now),
			Message: `pods "demo-gateway-5d8f-x" is forbidden: exceeded quota: pods`,
		}
	}
	complete := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}
	tests := []struct {
		name      string
		d         *appsv1.Deployment
		wantStuck string
		wantWait  time.Duration
	}{
		{name: "no failure", d: deployment(complete)},
		{name: "failing within the deadline", d: deployment(complete, failure(corev1.ConditionTrue, 4*time.Minute)), wantWait: 6 * time.Minute},
		{
			name: "failing past the deadline", d: deployment(complete, failure(corev1.ConditionTrue, time.Hour)),
			wantStuck: "Deployment demo-gateway has failed to make its pods for 10m0s (kubectl describe deployment demo-gateway)",
		},
		{name: "a failure that is over", d: deployment(complete, failure(corev1.ConditionFalse, time.Hour))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stuck, wait := replicaFailure(tt.d, deadline, now)
			if stuck != tt.wantStuck || wait != tt.wantWait {
				t.Errorf("replicaFailure = %q, %s; want %q, %s", stuck, wait, tt.wantStuck, tt.wantWait)
			}
		})
	}
}

func TestFailingCreate(t *testing.T) {
	now := time.Now()
	const deadline = 10 * time.Minute
	event := func(first time.Duration) corev1.Event {
		return corev1.Event{
			Reason: "FailedCreate", Count: 12,
			FirstTimestamp: metav1.NewTime(now.Add(-first)), LastTimestamp: metav1.NewTime(now.Add(-time.Second)),
			Message: `create Pod demo-product-0 in StatefulSet demo-product failed error: pods "demo-product-0" is forbidden: exceeded quota`,
		}
	}
	tests := []struct {
		name      string
		events    []corev1.Event
		wantStuck string
		wantWait  time.Duration
	}{
		{name: "no failure"},
		{name: "failing for a while", events: []corev1.Event{event(3 * time.Minute)}, wantWait: 7 * time.Minute},
		{
			name: "failing past the deadline", events: []corev1.Event{event(3 * time.Minute), event(12 * time.Minute)},
			wantStuck: "StatefulSet demo-product has failed to make its pod for 10m0s (kubectl describe statefulset demo-product)",
		},
		{
			name: "an event with only an event time and a series, as the events.k8s.io API writes", events: []corev1.Event{{
				Reason: "FailedCreate", EventTime: metav1.NewMicroTime(now.Add(-time.Hour)),
				Series: &corev1.EventSeries{Count: 30, LastObservedTime: metav1.NewMicroTime(now.Add(-time.Minute))},
			}},
			wantStuck: "StatefulSet demo-product has failed to make its pod for 10m0s (kubectl describe statefulset demo-product)",
		},
		{
			// A quota raised half an hour ago: the failure is over, though its event stays
			// for an hour.
			name: "failed long ago, and no more", events: []corev1.Event{func() corev1.Event {
				e := event(45 * time.Minute)
				e.LastTimestamp = metav1.NewTime(now.Add(-30 * time.Minute))
				return e
			}()},
		},
		{
			// Past the StatefulSet controller's longest back-off (1000 s) since it was last
			// seen, and not yet failureEnded: the failure may last, its event not yet seen again.
			name: "last seen a back-off ago", events: []corev1.Event{func() corev1.Event {
				e := event(45 * time.Minute)
				e.LastTimestamp = metav1.NewTime(now.Add(-17 * time.Minute))
				return e
			}()},
			wantStuck: "StatefulSet demo-product has failed to make its pod for 10m0s (kubectl describe statefulset demo-product)",
		},
		{
			name: "an event time alone, long ago", events: []corev1.Event{{
				Reason: "FailedCreate", EventTime: metav1.NewMicroTime(now.Add(-time.Hour)),
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stuck, wait := failingCreate("demo-product", tt.events, deadline, now)
			if stuck != tt.wantStuck || wait != tt.wantWait {
				t.Errorf("failingCreate = %q, %s; want %q, %s", stuck, wait, tt.wantStuck, tt.wantWait)
			}
		})
	}
	for _, c := range []struct{ a, b, want time.Duration }{{0, 0, 0}, {0, 5, 5}, {5, 0, 5}, {3, 5, 3}, {5, 3, 3}} {
		if got := sooner(c.a, c.b); got != c.want {
			t.Errorf("sooner(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestDegradedEvent: a Warning when the Shop becomes degraded, or stays degraded with
// another reason or message (a second component stalled beside the first); nothing while
// the condition says the same; a Normal Event when it recovers.
func TestDegradedEvent(t *testing.T) {
	cond := func(status metav1.ConditionStatus, reason, message string) *metav1.Condition {
		return &metav1.Condition{Type: ConditionDegraded, Status: status, Reason: reason, Message: message}
	}
	stalled := cond(metav1.ConditionTrue, ReasonRolloutStalled, "gateway: pod g not ready for 10m0s")
	twoStalled := cond(metav1.ConditionTrue, ReasonRolloutStalled, "user: pod u not ready for 10m0s; gateway: pod g not ready for 10m0s")
	fine := cond(metav1.ConditionFalse, ReasonAsExpected, "no problem found")
	tests := []struct {
		name          string
		before, after *metav1.Condition
		want          string // type/reason, or "" for none
	}{
		{"first status, fine", nil, fine, ""},
		{"first status, degraded", nil, stalled, "Warning/RolloutStalled"},
		{"becomes degraded", fine, stalled, "Warning/RolloutStalled"},
		{"stays degraded, the same", stalled, stalled, ""},
		{"a second component stalls", stalled, twoStalled, "Warning/RolloutStalled"},
		{"another reason", stalled, cond(metav1.ConditionTrue, ReasonChildConflict, "x"), "Warning/ChildConflict"},
		{"recovers", twoStalled, fine, "Normal/Recovered"},
		{"stays fine", fine, fine, ""},
	}
	for _, tt := range tests {
		eventType, reason, note, ok := degradedEvent(tt.before, tt.after)
		got := ""
		if ok {
			got = eventType + "/" + reason
		}
		if got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
		if ok && eventType == "Warning" && note != tt.after.Message {
			t.Errorf("%s: note %q, want the condition's message", tt.name, note)
		}
	}
}
