package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// probeResourcesPath is where a probe's container resources are, in the API server's
// field paths.
const probeResourcesPath = "spec.template.spec.containers[0].resources"

// resourcesRefused asks the API server whether each component's container may have the
// resources the Shop sets for it, before any child is applied: a change whose resources
// one component's container cannot have would otherwise reach the other components, child
// by child, and stop at that one. The Shop's schema cannot say it (a CEL rule over a
// resource list exceeds the API server's cost budget), and the rules are the API server's
// (a limit for what cannot be overcommitted, huge pages in whole pages with cpu or
// memory, names, claims): so it is asked, with a server-side dry run of a Deployment
// whose one container has those resources. Only its refusal of the resources counts: any
// other refusal of the probe (a policy on Deployments, a quota) is the real children's to
// meet. A verdict is kept per namespace and resources, so a reconcile that changes
// nothing asks nothing.
func (r *ShopReconciler) resourcesRefused(ctx context.Context, shop *shopv1.Shop) (*Problem, error) {
	for _, f := range resources.ResourceSettings(shop) {
		key := shop.Namespace + "/" + digest(shop, f.Resources)
		if v, ok := r.resourceVerdicts.get(key); ok {
			if v != "" {
				return resourcesProblem(f.Path, v), nil
			}
			continue
		}
		labels := map[string]string{resources.LabelShop: shop.Name, resources.LabelComponent: f.Component}
		probe := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: shop.Namespace, GenerateName: shop.Name + "-resources-"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: f.Component, Image: "resources-probe", Resources: f.Resources,
					}}},
				},
			},
		}
		verdict, err := r.dryRunVerdict(ctx, probe, false, func(field string) (string, bool) {
			field, ok := strings.CutPrefix(field, probeResourcesPath)
			return strings.TrimPrefix(field, "."), ok
		})
		if err != nil {
			return nil, fmt.Errorf("dry-run the resources of %s: %w", f.Path, err)
		}
		r.resourceVerdicts.add(key, verdict)
		if verdict != "" {
			return resourcesProblem(f.Path, verdict), nil
		}
	}
	return nil, nil
}

// probeScrapersPath is where the first of the Shop's monitoring.scrapers is in a service's
// NetworkPolicy, in the API server's field paths: after the peer of its callers.
const probeScrapersPath = "spec.ingress[0].from["

// scrapersRefused asks the API server whether the services' NetworkPolicies may admit the
// Shop's monitoring.scrapers, before any child is applied, as resourcesRefused asks of the
// resources. The Shop's schema cannot check a peer's label selectors (a CEL rule over them
// exceeds the API server's cost budget) nor, fully, its CIDRs; and a NetworkPolicy refused
// only once the workloads run would leave the services' pods admitting every peer. So the
// user service's NetworkPolicy is dry-run (every service's admits the same scrapers), and
// only a refusal of a scraper counts. It is dry-run as it will be written: an update of the
// one the Shop has, which the API server lets keep a value its rules have since tightened
// (a CIDR with bits past its prefix, refused since Kubernetes 1.36), else a create. A
// verdict is kept per namespace and scrapers, and for an update per version of the
// NetworkPolicy updated.
func (r *ShopReconciler) scrapersRefused(ctx context.Context, shop *shopv1.Shop) (*Problem, error) {
	scrapers := shop.Spec.Monitoring.Scrapers
	if len(scrapers) == 0 {
		return nil, nil
	}
	probe := resources.NetworkPolicy(shop, resources.User)
	key := shop.Namespace + "/scrapers/" + digest(shop, scrapers)
	existing := &networkingv1.NetworkPolicy{}
	update := false
	err := r.Get(ctx, client.ObjectKeyFromObject(probe), existing)
	if apierrors.IsNotFound(err) {
		// The cache holds only NetworkPolicies with our labels: one of the Shop's that lost
		// them is out of its sight, and apply takes it back with an update (not a create).
		err = r.APIReader.Get(ctx, client.ObjectKeyFromObject(probe), existing)
	}
	switch {
	case err == nil && (metav1.IsControlledBy(existing, shop) || adoptable(existing, shop)):
		update = true
		key += "/" + string(existing.UID) + "/" + existing.ResourceVersion
		desired := probe.Spec
		probe = existing
		probe.Spec = desired
		probe.ResourceVersion = "" // unconditional: a cache behind by a write is no verdict
	case err == nil, apierrors.IsNotFound(err):
		probe.Name, probe.GenerateName = "", shop.Name+"-scrapers-"
	default:
		return nil, fmt.Errorf("get NetworkPolicy %s: %w", probe.Name, err)
	}
	if v, ok := r.resourceVerdicts.get(key); ok {
		return scrapersProblem(v), nil
	}
	verdict, err := r.dryRunVerdict(ctx, probe, update, func(field string) (string, bool) {
		rest, ok := strings.CutPrefix(field, probeScrapersPath)
		index, field, found := strings.Cut(rest, "]")
		i, err := strconv.Atoi(index)
		if !ok || !found || err != nil || i < 1 {
			return "", false // not a scraper's: the callers' peer is the controller's own
		}
		return fmt.Sprintf("spec.monitoring.scrapers[%d]%s", i-1, field), true
	})
	if err != nil {
		return nil, fmt.Errorf("dry-run the NetworkPolicy of spec.monitoring.scrapers: %w", err)
	}
	r.resourceVerdicts.add(key, verdict)
	return scrapersProblem(verdict), nil
}

// scrapersProblem is the Problem of scrapers the API server refuses, nil for none.
func scrapersProblem(said string) *Problem {
	if said == "" {
		return nil
	}
	return &Problem{Reason: ReasonChildRejected, Message: fmt.Sprintf(
		"spec.monitoring.scrapers: the API server refuses them in a NetworkPolicy (%s); no child is changed until they are fixed", said)}
}

// dryRunVerdict creates probe (or, with update, updates it) in a server-side dry run and
// returns what the API server's own rules say of the fields of the Shop's it carries: the
// causes of its refusal whose field ours names (ours gives the Shop's field, and whether
// the cause is on one), joined; "" when it takes them. Any other refusal of the probe is no verdict: one that names
// none of those fields, a webhook's or a policy's (whatever causes it names: a webhook
// refusing with a field's cause, as apierrors.NewInvalid gives, has the API server pass it
// on), a quota's. Those are the cluster's, which may be lifted; the children meet them
// themselves (ChildForbidden, looked at again).
func (r *ShopReconciler) dryRunVerdict(ctx context.Context, probe client.Object, update bool, ours func(field string) (string, bool)) (string, error) {
	var err error
	if update {
		err = r.Update(ctx, probe, client.DryRunAll)
	} else {
		err = r.Create(ctx, probe, client.DryRunAll)
	}
	var status apierrors.APIStatus
	switch {
	case err == nil, admissionDenied(err):
	case apierrors.IsInvalid(err) && errors.As(err, &status) && status.Status().Details != nil:
		var said []string
		for _, c := range status.Status().Details.Causes {
			if field, ok := ours(c.Field); ok {
				said = append(said, field+": "+c.Message)
			}
		}
		return strings.Join(said, "; "), nil
	case apierrors.IsInvalid(err), apierrors.IsForbidden(err), apierrors.IsBadRequest(err):
	default:
		return "", err
	}
	return "", nil
}

// resourcesProblem is the Problem of resources the API server refuses, naming the Shop's
// field and what it said.
func resourcesProblem(path, said string) *Problem {
	return &Problem{Reason: ReasonChildRejected, Message: fmt.Sprintf(
		"%s: the API server refuses them on a container (%s); no child is changed until they are fixed", path, said)}
}

// verdictCacheSize bounds the verdicts kept: a few per Shop (one per component whose
// resources differ), and one more per edit of them; a verdict dropped is asked again.
const verdictCacheSize = 1024

// verdictCache keeps the latest verdicts of resourcesRefused, the least recently used
// dropped first. Its zero value is ready to use.
type verdictCache struct {
	once  sync.Once
	cache *lru.Cache // safe for concurrent use
}

func (v *verdictCache) entries() *lru.Cache {
	v.once.Do(func() { v.cache = lru.New(verdictCacheSize) })
	return v.cache
}

func (v *verdictCache) get(key string) (string, bool) {
	verdict, ok := v.entries().Get(key)
	if !ok {
		return "", false
	}
	return verdict.(string), true
}

func (v *verdictCache) add(key, verdict string) { v.entries().Add(key, verdict) }
