//go:build e2e

package e2e

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// objectKind names a kind and makes an empty list of it.
type objectKind struct {
	name string
	list func() client.ObjectList
}

// childKinds are the kinds of the objects a Shop makes itself. ConfigMap is among
// them though a Shop makes none today: deleting a Shop must leave none of its own.
var childKinds = []objectKind{
	{"Deployment", func() client.ObjectList { return &appsv1.DeploymentList{} }},
	{"StatefulSet", func() client.ObjectList { return &appsv1.StatefulSetList{} }},
	{"Service", func() client.ObjectList { return &corev1.ServiceList{} }},
	{"Secret", func() client.ObjectList { return &corev1.SecretList{} }},
	{"PersistentVolumeClaim", func() client.ObjectList { return &corev1.PersistentVolumeClaimList{} }},
	{"ConfigMap", func() client.ObjectList { return &corev1.ConfigMapList{} }},
	{"NetworkPolicy", func() client.ObjectList { return &networkingv1.NetworkPolicyList{} }},
	{"PodDisruptionBudget", func() client.ObjectList { return &policyv1.PodDisruptionBudgetList{} }},
}

// descendantKinds are what the children make in turn: the Deployments' ReplicaSets,
// the StatefulSets' ControllerRevisions, and pods.
var descendantKinds = []objectKind{
	{"ReplicaSet", func() client.ObjectList { return &appsv1.ReplicaSetList{} }},
	{"ControllerRevision", func() client.ObjectList { return &appsv1.ControllerRevisionList{} }},
	{"Pod", func() client.ObjectList { return &corev1.PodList{} }},
}

// child is an object of a Shop's namespace that belongs to the Shop.
type child struct {
	ref        string // Kind/name
	controller *metav1.OwnerReference
	labels     map[string]string
}

// shopObjects lists the objects of kinds in the Shop's namespace that belong to the
// Shop whose UID is uid: labelled with its name (the shop or instance label), or with
// an owner reference to it. Both, so that a child that lost its labels still counts.
func shopObjects(ctx context.Context, shop *shopv1.Shop, uid types.UID, kinds ...objectKind) ([]child, error) {
	var found []child
	for _, k := range kinds {
		list := k.list()
		if err := k8sClient.List(ctx, list, client.InNamespace(shop.Namespace)); err != nil {
			return nil, fmt.Errorf("list %s: %w", k.name, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			o, err := meta.Accessor(item)
			if err != nil {
				return nil, err
			}
			l := o.GetLabels()
			owned := false
			for _, ref := range o.GetOwnerReferences() {
				owned = owned || ref.UID == uid
			}
			if owned || l[resources.LabelShop] == shop.Name || l[resources.LabelInstance] == shop.Name {
				found = append(found, child{ref: k.name + "/" + o.GetName(), controller: metav1.GetControllerOf(o), labels: l})
			}
		}
	}
	return found, nil
}

// refs are the Kind/name of objects.
func refs(objects []child) []string {
	out := make([]string, 0, len(objects))
	for _, o := range objects {
		out = append(out, o.ref)
	}
	return out
}

// expectedChildren are the Kind/name of the children every Shop with in-cluster
// stores has (ARCHITECTURE.md, "What the controller makes").
func expectedChildren(shop *shopv1.Shop) []string {
	var want []string
	add := func(kind string, names ...string) {
		for _, n := range names {
			want = append(want, kind+"/"+n)
		}
	}
	for _, c := range append(resources.InClusterStores(shop), resources.Apps...) {
		if resources.OneProcess(shop, c) {
			add("StatefulSet", resources.Name(shop, c))
		} else {
			add("Deployment", resources.Name(shop, c))
		}
		add("Service", resources.Name(shop, c))
		add("NetworkPolicy", resources.Name(shop, c))
	}
	for _, s := range resources.InClusterStores(shop) {
		add("PersistentVolumeClaim", resources.Name(shop, s))
		add("Secret", resources.CredentialsSecretName(shop, s))
	}
	add("Secret", resources.ConnectionsSecretName(shop))
	for _, a := range resources.Apps {
		add("PodDisruptionBudget", resources.Name(shop, a))
	}
	return want
}
