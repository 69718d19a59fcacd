//go:build tools

// Package kubemin pins the kube-apiserver of the oldest Kubernetes the operator supports,
// built by hack/kube-binaries.sh for `make test-kube-min`.
package kubemin

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
