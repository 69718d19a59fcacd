package controllers

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	webhookerrors "k8s.io/apiserver/pkg/admission/plugin/webhook/errors"
	"k8s.io/utils/ptr"
)

// TestSyncSecretImmutable: the controller makes its credentials immutable, and leaves
// alone the immutability of a Secret where it sets none (it cannot be undone, so
// writing it away would only be refused at every reconcile).
func TestSyncSecretImmutable(t *testing.T) {
	data := map[string][]byte{"k": []byte("v")}
	tests := []struct {
		name               string
		desired, existing  *bool
		wantChange         bool
		wantImmutableAfter *bool
	}{
		{"credentials made immutable", ptr.To(true), nil, true, ptr.To(true)},
		{"credentials already immutable", ptr.To(true), ptr.To(true), false, ptr.To(true)},
		{"someone made connections immutable", nil, ptr.To(true), false, ptr.To(true)},
		{"connections as made", nil, nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desired := &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: data, Immutable: tt.desired}
			existing := &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: data, Immutable: tt.existing}
			if got := syncSpec(desired, existing); got != tt.wantChange {
				t.Errorf("changed %v, want %v", got, tt.wantChange)
			}
			if !ptr.Equal(existing.Immutable, tt.wantImmutableAfter) {
				t.Errorf("immutable %v, want %v", ptr.Deref(existing.Immutable, false), ptr.Deref(tt.wantImmutableAfter, false))
			}
		})
	}
}

// TestSyncServiceKeepsAllocatedPorts: the node ports and health-check node port the
// API server allocates, which the builders leave at zero, are not drift; a change the
// Shop asks for is written, keeping the node ports so that clients keep reaching it.
func TestSyncServiceKeepsAllocatedPorts(t *testing.T) {
	const nodePort, healthCheck = 30080, 31999
	service := func(typ corev1.ServiceType, nodePort, healthCheck int32) *corev1.Service {
		svc := &corev1.Service{Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": "gateway"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, NodePort: nodePort}},
		}}
		if typ != corev1.ServiceTypeClusterIP {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		svc.Spec.HealthCheckNodePort = healthCheck
		return svc
	}
	tests := []struct {
		name              string
		desired, existing *corev1.Service
		wantChange        bool
		wantNodePort      int32
	}{
		{"NodePort as allocated", service(corev1.ServiceTypeNodePort, 0, 0), service(corev1.ServiceTypeNodePort, nodePort, 0), false, nodePort},
		{"LoadBalancer as allocated", service(corev1.ServiceTypeLoadBalancer, 0, 0), service(corev1.ServiceTypeLoadBalancer, nodePort, healthCheck), false, nodePort},
		{"NodePort to LoadBalancer", service(corev1.ServiceTypeLoadBalancer, 0, 0), service(corev1.ServiceTypeNodePort, nodePort, 0), true, nodePort},
		{"LoadBalancer to NodePort", service(corev1.ServiceTypeNodePort, 0, 0), service(corev1.ServiceTypeLoadBalancer, nodePort, healthCheck), true, nodePort},
		{"NodePort to ClusterIP", service(corev1.ServiceTypeClusterIP, 0, 0), service(corev1.ServiceTypeNodePort, nodePort, 0), true, 0},
		{"ClusterIP as made", service(corev1.ServiceTypeClusterIP, 0, 0), service(corev1.ServiceTypeClusterIP, 0, 0), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := syncSpec(tt.desired, tt.existing); got != tt.wantChange {
				t.Errorf("changed %v, want %v", got, tt.wantChange)
			}
			if got := tt.existing.Spec; got.Type != tt.desired.Spec.Type || got.Ports[0].NodePort != tt.wantNodePort {
				t.Errorf("type %s node port %d, want %s %d", got.Type, got.Ports[0].NodePort, tt.desired.Spec.Type, tt.wantNodePort)
			}
		})
	}
}

// TestSyncServiceKeepsUserSettings: what the Shop cannot express on a Service and a
// user or the cloud sets (a LoadBalancer's source ranges and IP, session affinity)
// stays, while external IPs are undone; the source ranges and IP go with a change to a
// type that cannot have them.
func TestSyncServiceKeepsUserSettings(t *testing.T) {
	service := func(typ corev1.ServiceType) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{
			Type:                  typ,
			Selector:              map[string]string{"app": "gateway"},
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, NodePort: 30080}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			HealthCheckNodePort:   31999,
		}}
	}
	edited := func(typ corev1.ServiceType) *corev1.Service {
		svc := service(typ)
		svc.Spec.LoadBalancerSourceRanges = []string{"192.0.2.0/24"}
		svc.Spec.LoadBalancerIP = "192.0.2.1"
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
		return svc
	}

	existing := edited(corev1.ServiceTypeLoadBalancer)
	if syncSpec(service(corev1.ServiceTypeLoadBalancer), existing) {
		t.Errorf("a LoadBalancer whose user set source ranges, an IP and session affinity was changed: %+v", existing.Spec)
	}

	existing = edited(corev1.ServiceTypeLoadBalancer)
	existing.Spec.ExternalIPs = []string{"203.0.113.8"}
	if !syncSpec(service(corev1.ServiceTypeLoadBalancer), existing) || existing.Spec.ExternalIPs != nil {
		t.Errorf("external IPs not undone: %v", existing.Spec.ExternalIPs)
	}
	if got := existing.Spec; len(got.LoadBalancerSourceRanges) != 1 || got.LoadBalancerIP == "" || got.SessionAffinity != corev1.ServiceAffinityClientIP {
		t.Errorf("the user's settings went with the external IPs: %+v", got)
	}

	existing = edited(corev1.ServiceTypeLoadBalancer)
	if !syncSpec(service(corev1.ServiceTypeNodePort), existing) {
		t.Fatal("LoadBalancer to NodePort: no change")
	}
	if got := existing.Spec; got.LoadBalancerSourceRanges != nil || got.LoadBalancerIP != "" || got.SessionAffinity != corev1.ServiceAffinityClientIP {
		t.Errorf("a NodePort keeps a LoadBalancer's settings, or loses session affinity: %+v", got)
	}
}

// TestAdmissionDenied: a denial by an admission webhook or policy is told from the API
// server's words, whatever status it came with, as the API server writes them; a refusal
// of the object itself is not one.
func TestAdmissionDenied(t *testing.T) {
	deployment := schema.GroupResource{Group: "apps", Resource: "deployments"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		// Kyverno's denials: a status with no code, which the API server makes 400.
		{"a webhook's, with no code", webhookerrors.ToStatusErr("validate.kyverno.svc", &metav1.Status{Status: metav1.StatusFailure, Message: "blocked"}), true},
		{"a webhook's, 422", webhookerrors.ToStatusErr("check.example.com", &metav1.Status{Code: 422, Reason: metav1.StatusReasonInvalid, Message: "no"}), true},
		{"a webhook's, without explanation", webhookerrors.ToStatusErr("check.example.com", nil), true},
		{"a ValidatingAdmissionPolicy's", policyDenial(deployment, metav1.StatusReasonInvalid), true},
		{"a ValidatingAdmissionPolicy's, 413", policyDenial(deployment, metav1.StatusReasonRequestEntityTooLarge), true},
		{"the object invalid", apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "shop-user",
			field.ErrorList{field.Invalid(field.NewPath("metadata", "labels"), "x", "must be no more than 63 characters")}), false},
		// A pod label the Shop set, quoted by the refusal of the object.
		{"the object invalid, quoting a policy's words", apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, "shop-mongodb",
			field.ErrorList{field.Invalid(field.NewPath("spec", "template", "labels"), "ValidatingAdmissionPolicy 'y' denied request: x", "must be no more than 63 characters")}), false},
		{"a message quoting a webhook's words", apierrors.NewBadRequest(`the value "admission webhook \"x\" denied the request" is wrong`), false},
		{"a bad request", apierrors.NewBadRequest("the object could not be decoded"), false},
		{"a quota", apierrors.NewForbidden(deployment, "shop-user", errors.New("exceeded quota: q")), false},
		{"not from the API server", errors.New(`admission webhook "x" denied the request`), false},
	}
	for _, tt := range tests {
		if got := admissionDenied(tt.err); got != tt.want {
			t.Errorf("%s: admissionDenied(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// policyDenial is the error the API server makes of a ValidatingAdmissionPolicy's denial
// with reason (k8s.io/apiserver's validating dispatcher).
func policyDenial(gr schema.GroupResource, reason metav1.StatusReason) error {
	msg := "ValidatingAdmissionPolicy 'deny' with binding 'deny' denied request: no"
	err := apierrors.NewForbidden(gr, "shop-user", errors.New(msg))
	err.ErrStatus.Reason = reason
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Message: msg})
	return err
}

// TestClip: a message is cut at a character's boundary, marked, within its limit.
func TestClip(t *testing.T) {
	if got := clip("short", 10); got != "short" {
		t.Errorf("clip of a short message = %q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes
	got := clip(long, 101)
	if len(got) > 101 || !utf8.ValidString(got) || !strings.HasSuffix(got, " … (cut short)") {
		t.Errorf("clip(%d bytes, 101) = %q (%d bytes)", len(long), got, len(got))
	}
}
