package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
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
