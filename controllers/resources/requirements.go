package resources

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// InvalidResources tells, naming the Shop's field, the first resources of a component
// that the API server would refuse on the component's container: a resource no container
// can have, a negative quantity, a request above its limit, a huge-page or extended
// resource (which cannot be overcommitted) requested without an equal limit, huge pages
// without cpu or memory, or claims (the Shop's pods have no resource claims). The Shop's schema cannot
// say so itself (a CEL rule over resource lists exceeds the API server's cost budget), and
// the workloads are checked one by one when they are written: without this check, a Shop
// change carrying one component's invalid resources would roll out to the others and stop
// at that one. nil when every component's resources would be accepted.
func InvalidResources(shop *shopv1.Shop) error {
	s := shop.Spec
	fields := []struct {
		path string
		r    *corev1.ResourceRequirements
	}{
		{"spec.gateway.resources", &s.Gateway.Resources},
		{"spec.services.user.resources", &s.Services.User.Resources},
		{"spec.services.product.resources", &s.Services.Product.Resources},
		{"spec.services.order.resources", &s.Services.Order.Resources},
		{"spec.services.payment.resources", &s.Services.Payment.Resources},
		{"spec.mongodb.resources", s.MongoDB.Resources},
		{"spec.rabbitmq.resources", s.RabbitMQ.Resources},
	}
	for _, f := range fields {
		if f.r == nil {
			continue
		}
		for _, list := range []struct {
			name string
			l    corev1.ResourceList
		}{{"requests", f.r.Requests}, {"limits", f.r.Limits}} {
			for _, name := range slices.Sorted(maps.Keys(list.l)) {
				q := list.l[name]
				if !containerResource(name) {
					return fmt.Errorf("%s.%s: %q is no resource a container can have: use cpu, memory, ephemeral-storage, hugepages-<size> or a domain-qualified name such as example.com/gpu", f.path, list.name, name)
				}
				if q.Sign() < 0 {
					return fmt.Errorf("%s.%s.%s: %s is negative", f.path, list.name, name, q.String())
				}
			}
		}
		for _, name := range slices.Sorted(maps.Keys(f.r.Requests)) {
			req := f.r.Requests[name]
			limit, limited := f.r.Limits[name]
			switch {
			case overcommittable(name) && limited && req.Cmp(limit) > 0:
				return fmt.Errorf("%s: requests.%s (%s) is above limits.%s (%s)", f.path, name, req.String(), name, limit.String())
			case !overcommittable(name) && !limited:
				return fmt.Errorf("%s: requests.%s needs a limit, equal to it: %s cannot be overcommitted", f.path, name, name)
			case !overcommittable(name) && req.Cmp(limit) != 0:
				return fmt.Errorf("%s: requests.%s (%s) must equal limits.%s (%s): %s cannot be overcommitted", f.path, name, req.String(), name, limit.String(), name)
			}
		}
		if hugePages(f.r.Requests) || hugePages(f.r.Limits) {
			_, cpu := f.r.Requests[corev1.ResourceCPU]
			_, memory := f.r.Requests[corev1.ResourceMemory]
			_, cpuLimit := f.r.Limits[corev1.ResourceCPU]
			_, memoryLimit := f.r.Limits[corev1.ResourceMemory]
			if !cpu && !memory && !cpuLimit && !memoryLimit {
				return fmt.Errorf("%s: huge pages need cpu or memory too", f.path)
			}
		}
		if len(f.r.Claims) > 0 {
			return fmt.Errorf("%s.claims: the Shop's pods have no resource claims to name", f.path)
		}
	}
	return nil
}

// overcommittable tells whether a container may request less of resource name than its
// limit: cpu, memory and ephemeral storage, not huge pages or extended resources.
func overcommittable(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage
}

// hugePages tells whether l names a huge-page size.
func hugePages(l corev1.ResourceList) bool {
	for n := range l {
		if strings.HasPrefix(string(n), corev1.ResourceHugePagesPrefix) {
			return true
		}
	}
	return false
}

// containerResource tells whether a container may have resource name: a standard one, a
// huge page size, or an extended resource, whose name is domain-qualified outside
// kubernetes.io.
func containerResource(name corev1.ResourceName) bool {
	switch n := string(name); {
	case name == corev1.ResourceCPU, name == corev1.ResourceMemory, name == corev1.ResourceEphemeralStorage:
		return true
	case strings.HasPrefix(n, corev1.ResourceHugePagesPrefix):
		return true
	default:
		domain, _, qualified := strings.Cut(n, "/")
		return qualified && domain != "kubernetes.io" && !strings.HasSuffix(domain, ".kubernetes.io")
	}
}
