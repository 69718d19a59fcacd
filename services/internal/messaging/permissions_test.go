package messaging_test

import (
	"regexp"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
)

// TestTheOperatorGrantsTheTopology holds the permissions the operator gives the services'
// users of an in-cluster broker (resources.RabbitMQServiceUsers) to this package's
// topology, which each service declares whole: configure and write on both exchanges and
// every queue, dead-letter queues included; read on both exchanges and the work queues,
// not the dead-letter queues. That each name is needed, and that they suffice, is tested
// against a broker (controllers/resources' TestRabbitMQConfigRunsABroker,
// services/order/order's TestServicesWithTheOperatorsBrokerUsers).
func TestTheOperatorGrantsTheTopology(t *testing.T) {
	exchanges := []string{messaging.Exchange, messaging.DeadLetterExchange}
	var work, dead []string
	for _, q := range messaging.ShopTopology.Queues {
		work, dead = append(work, q.Name), append(dead, q.DeadLetterQueue())
	}
	for _, service := range []string{"order", "payment"} {
		p, ok := resources.RabbitMQServiceUsers[service]
		if !ok {
			t.Fatalf("no broker user for %s", service)
		}
		check := func(kind, pattern string, names []string, want bool) {
			re := regexp.MustCompile(pattern)
			for _, n := range names {
				if re.MatchString(n) != want {
					t.Errorf("%s: %s %s matches %s: %v, want %v", service, kind, pattern, n, !want, want)
				}
			}
		}
		all := append(append(append([]string{}, exchanges...), work...), dead...)
		check("configure", p.Configure, all, true)
		check("write", p.Write, all, true)
		check("read", p.Read, append(append([]string{}, exchanges...), work...), true)
		check("read", p.Read, dead, false)
		for _, pattern := range []string{p.Configure, p.Write, p.Read} {
			check("permission", pattern, []string{"", "amq.topic", "other", messaging.Exchange + "x", "x" + work[0]}, false)
		}
	}
}
