package resources

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
)

// NetworkPolicy admits traffic to component's pods: to the gateway's HTTP port from
// anywhere, to a service only from the components that call it, to a store only from the
// services that use it; and to the services' metrics (their HTTP port, the gateway's metrics
// port) from the Shop's monitoring.scrapers. Only ingress is restricted; the shop's pods may
// still reach DNS and an external store.
func NetworkPolicy(shop *shopv1.Shop, component string) *networkingv1.NetworkPolicy {
	var callers []string
	var scrapers []networkingv1.NetworkPolicyPeer
	var metricsPort int32
	port := intstr.FromInt32(HTTPPort)
	switch component {
	case MongoDB, RabbitMQ:
		s := storeFor(shop, component)
		callers, port = s.callers, intstr.FromInt32(s.port)
	default:
		a := appFor(shop, component)
		callers, metricsPort = a.callers, a.metricsPort
		scrapers = shop.Spec.Monitoring.Scrapers
	}
	rule := networkingv1.NetworkPolicyIngressRule{
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: &port}},
	}
	if len(callers) > 0 {
		rule.From = []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{LabelInstance: shop.Name, LabelManagedBy: ManagedBy},
			MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: LabelName, Operator: metav1.LabelSelectorOpIn, Values: callers,
			}},
		}}}
		if metricsPort == 0 {
			rule.From = append(rule.From, copyPeers(scrapers)...)
		}
	}
	ingress := []networkingv1.NetworkPolicyIngressRule{rule}
	if metricsPort != 0 && len(scrapers) > 0 {
		// No scrapers, no rule: an empty From would admit anyone.
		metrics := intstr.FromInt32(metricsPort)
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: &metrics}},
			From:  maskedPeers(copyPeers(scrapers)),
		})
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: objectMeta(shop, Name(shop, component), component),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *selector(shop, component),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     ingress,
		},
	}
}

// copyPeers returns deep copies of peers.
func copyPeers(peers []networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer {
	out := make([]networkingv1.NetworkPolicyPeer, 0, len(peers))
	for _, p := range peers {
		out = append(out, *p.DeepCopy())
	}
	return out
}

// maskedPeers clears, in place, the bits past the prefix of peers' CIDRs (10.1.2.3/16 is
// 10.1.0.0/16, the range a NetworkPolicy admits either way). The gateway's metrics rule was
// added after Kubernetes 1.36 began to refuse such a CIDR in a value a NetworkPolicy did not
// hold before: a scraper the services' policies keep (the API server ratchets it) would
// otherwise have the gateway's refused once the operator is upgraded. A CIDR that does not
// parse is left for the API server to name.
func maskedPeers(peers []networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer {
	mask := func(cidr string) string {
		if p, err := netip.ParsePrefix(cidr); err == nil {
			return p.Masked().String()
		}
		return cidr
	}
	for _, p := range peers {
		if p.IPBlock == nil {
			continue
		}
		p.IPBlock.CIDR = mask(p.IPBlock.CIDR)
		for i, e := range p.IPBlock.Except {
			p.IPBlock.Except[i] = mask(e)
		}
	}
	return peers
}
