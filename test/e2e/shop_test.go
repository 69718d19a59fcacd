//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopkeeper-dev/shopkeeper/api/v1alpha1"
	"github.com/shopkeeper-dev/shopkeeper/controllers"
	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// The Shop under test. Its rate limit is small so that the 429 comes within a burst,
// and its window short so that the quota refills (one request a second at first)
// while the other specs talk to the shop.
const (
	shopName          = "e2e"
	firstRateLimit    = 60
	changedRateLimit  = 120
	rateLimitWindow   = time.Minute
	paymentLimitCents = 100000
)

func init() {
	// Pods start in seconds to a minute, RabbitMQ in about 20 s; a request a second
	// stays well inside the gateway's quota.
	SetDefaultEventuallyTimeout(3 * time.Minute)
	SetDefaultEventuallyPollingInterval(time.Second)
}

// newShop is the Shop the suite applies: one gateway replica, the small rate limit,
// and the stores' engine and images the environment asks for (empty: the operator's
// defaults).
func newShop(namespace string) *shopv1.Shop {
	return &shopv1.Shop{
		ObjectMeta: metav1.ObjectMeta{Name: shopName, Namespace: namespace},
		Spec: shopv1.ShopSpec{
			Version: env.shopVersion,
			Image:   env.servicesImage,
			Gateway: shopv1.GatewaySpec{
				Replicas: ptr.To[int32](1),
				RateLimit: shopv1.RateLimitSpec{
					Requests: ptr.To[int32](firstRateLimit),
					Window:   &metav1.Duration{Duration: rateLimitWindow},
				},
			},
			Services: shopv1.ServicesSpec{Payment: shopv1.PaymentServiceSpec{LimitCents: ptr.To[int64](paymentLimitCents)}},
			MongoDB:  shopv1.MongoDBSpec{Engine: env.engine, StoreSpec: shopv1.StoreSpec{Image: env.mongoDBImage}},
			RabbitMQ: shopv1.RabbitMQSpec{StoreSpec: shopv1.StoreSpec{Image: env.rabbitMQImage}},
		},
	}
}

var _ = Describe("A Shop", Ordered, func() {
	var (
		shop     *shopv1.Shop
		api      *shopAPI
		buyer    user
		notebook product // cheap: an order of two is paid
		espresso product // two cost more than the payment limit
	)

	BeforeAll(func(ctx SpecContext) {
		// The shop's pods claim the restricted Pod Security Standard: hold them to it.
		ns := ownNamespace(ctx, "shopkeeper-e2e-", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
		AddReportEntry("namespace", ns.Name)
		DeferOnFailure(dumpShopState, ns.Name, NodeTimeout(2*time.Minute))

		shop = newShop(ns.Name)
		gateway := newPodForward(ns.Name, resources.SelectorLabels(shop, resources.Gateway), resources.HTTPPort)
		DeferCleanup(gateway.Close)
		api = newShopAPI(gateway)
	})

	It("becomes Ready, as kubectl wait sees it", func(ctx SpecContext) {
		start := time.Now()
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())
		out, err := kubectl(ctx, "wait", "--for=condition=Ready", "shop/"+shop.Name, "-n", shop.Namespace, "--timeout="+env.readyTimeout.String())
		Expect(err).NotTo(HaveOccurred(), out)
		AddReportEntry("created -> Ready", time.Since(start).Round(time.Second).String())

		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), shop)).To(Succeed())
		Expect(shop.Status.ObservedGeneration).To(Equal(shop.Generation))
		Expect(meta.IsStatusConditionFalse(shop.Status.Conditions, controllers.ConditionProgressing)).To(BeTrue(), "%+v", shop.Status.Conditions)
		Expect(meta.IsStatusConditionFalse(shop.Status.Conditions, controllers.ConditionDegraded)).To(BeTrue(), "%+v", shop.Status.Conditions)
		Expect(shop.Status.Endpoint).To(Equal(resources.Endpoint(shop)))
		for _, c := range resources.InClusterStores(shop) {
			Expect(shop.Status.Components).To(HaveKeyWithValue(c, shopv1.ComponentStatus{Ready: 1, Desired: 1, Replicas: "1/1"}))
		}
		for _, a := range resources.Apps {
			n := resources.AppReplicas(shop, a)
			Expect(shop.Status.Components).To(HaveKeyWithValue(a, shopv1.ComponentStatus{Ready: n, Desired: n, Replicas: fmt.Sprintf("%d/%d", n, n)}))
		}
	}, SpecTimeout(30*time.Minute))

	It("shows READY, GATEWAY, ENDPOINT and AGE in kubectl get shop", func(ctx SpecContext) {
		out, err := kubectl(ctx, "get", "shop", shop.Name, "-n", shop.Namespace)
		Expect(err).NotTo(HaveOccurred())
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(2), out)
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "READY", "GATEWAY", "ENDPOINT", "AGE"}))
		row := strings.Fields(lines[1])
		Expect(row).To(HaveLen(5), out)
		Expect(row[:4]).To(Equal([]string{shop.Name, "True", "1/1", resources.Endpoint(shop)}))
		Expect(row[4]).To(MatchRegexp(`^[0-9]+[smhd]`))
	})

	It("makes every child, labelled and controlled by the Shop", func(ctx SpecContext) {
		children, err := shopObjects(ctx, shop, shop.UID, childKinds...)
		Expect(err).NotTo(HaveOccurred())
		Expect(refs(children)).To(ContainElements(expectedChildren(shop)))
		for _, c := range children {
			Expect(c.controller).NotTo(BeNil(), "%s has no controller", c.ref)
			Expect(c.controller.UID).To(Equal(shop.UID), "%s is controlled by %s/%s", c.ref, c.controller.Kind, c.controller.Name)
			Expect(c.labels).To(HaveKeyWithValue(resources.LabelInstance, shop.Name), c.ref)
			Expect(c.labels).To(HaveKeyWithValue(resources.LabelManagedBy, resources.ManagedBy), c.ref)
			Expect(c.labels).To(HaveKeyWithValue(resources.LabelPartOf, resources.PartOf), c.ref)
			Expect(c.labels).To(HaveKey(resources.LabelName), c.ref)
			Expect(c.labels).To(HaveKey(resources.LabelComponent), c.ref)
		}
		AddReportEntry("children", strings.Join(refs(children), "\n"))
	})

	Context("through its gateway, the demo story", func() {
		It("reports every service up on /health", func(ctx SpecContext) {
			// A Service answers a moment after its pods are Ready (kube-proxy), and the
			// gateway caches its report briefly.
			var health suiteHealth
			Eventually(ctx, func(g Gomega) {
				r, err := api.send(ctx, http.MethodGet, "/health", nil, nil)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(r.status).To(Equal(http.StatusOK), r.String())
				g.Expect(r.decode(&health)).To(Succeed())
			}).Should(Succeed())
			Expect(health.Status).To(Equal("healthy"))
			Expect(health.Services).To(HaveLen(4))
			for name, s := range health.Services {
				Expect(s.Status).To(Equal("up"), name)
			}
		})

		It("creates a user and two products", func(ctx SpecContext) {
			email := fmt.Sprintf("Ada-%d@Example.com", time.Now().UnixNano())
			api.expect(ctx, http.MethodPost, "/users", map[string]string{"name": "  Ada Lovelace ", "email": email}, http.StatusCreated, &buyer)
			Expect(buyer.ID).NotTo(BeEmpty())
			Expect(buyer.Name).To(Equal("Ada Lovelace"))
			Expect(buyer.Email).To(Equal(strings.ToLower(email)))
			// The gateway routes the contract's form and the seed's prefix form alike.
			for _, path := range []string{"/users/" + buyer.ID, "/user/users/" + buyer.ID} {
				var got user
				api.expect(ctx, http.MethodGet, path, nil, http.StatusOK, &got)
				Expect(got).To(Equal(buyer))
			}

			api.expect(ctx, http.MethodPost, "/products", product{
				Name: "Notebook", Description: "A5, dotted", PriceCents: 1999, Currency: "USD", Stock: 100,
			}, http.StatusCreated, &notebook)
			api.expect(ctx, http.MethodPost, "/products", product{
				Name: "Espresso machine", Description: "Dual boiler", PriceCents: paymentLimitCents/2 + 1, Currency: "USD", Stock: 10,
			}, http.StatusCreated, &espresso)
			Expect(notebook.ID).NotTo(BeEmpty())
			Expect(espresso.ID).NotTo(BeEmpty())
		})

		It("takes an order within the payment limit to PAID, with one payment", func(ctx SpecContext) {
			var placed order
			api.expect(ctx, http.MethodPost, "/orders", newOrder{UserID: buyer.ID, Items: []orderLine{{ProductID: notebook.ID, Quantity: 2}}},
				http.StatusCreated, &placed)
			Expect(placed.Status).To(Equal(statusPending))
			Expect(placed.TotalCents).To(Equal(2 * notebook.PriceCents))

			paid := eventuallyFinal(ctx, api, placed.ID)
			Expect(paid.Status).To(Equal(statusPaid))
			var stocked product
			api.expect(ctx, http.MethodGet, "/products/"+notebook.ID, nil, http.StatusOK, &stocked)
			Expect(stocked.Stock).To(Equal(notebook.Stock-2), "a paid order's stock is taken for good")
			expectOnePayment(ctx, api, paid)
		})

		It("cancels an order over the payment limit and gives its stock back", func(ctx SpecContext) {
			var placed order
			api.expect(ctx, http.MethodPost, "/orders", newOrder{UserID: buyer.ID, Items: []orderLine{{ProductID: espresso.ID, Quantity: 2}}},
				http.StatusCreated, &placed)
			Expect(placed.Status).To(Equal(statusPending))
			Expect(placed.TotalCents).To(BeNumerically(">", paymentLimitCents))

			cancelled := eventuallyFinal(ctx, api, placed.ID)
			Expect(cancelled.Status).To(Equal(statusCancelled))
			Expect(cancelled.Reason).NotTo(BeEmpty(), "a cancelled order says why")
			Eventually(ctx, func(g Gomega) {
				var stocked product
				g.Expect(api.get(ctx, "/products/"+espresso.ID, &stocked)).To(Succeed())
				g.Expect(stocked.Stock).To(Equal(espresso.Stock))
			}).Should(Succeed())
			expectOnePayment(ctx, api, cancelled)
		})

		It("refuses bad input with 400 and answers 404 for what does not exist", func(ctx SpecContext) {
			var e apiError
			api.expect(ctx, http.MethodPost, "/users", map[string]string{"name": "X", "email": "not-an-address"}, http.StatusBadRequest, &e)
			Expect(e.Error).To(Equal("validation failed"))
			Expect(e.Details).NotTo(BeEmpty())

			api.expect(ctx, http.MethodGet, "/users/000000000000000000000000", nil, http.StatusNotFound, &e)
			Expect(e.Error).To(Equal("User not found"))
			// The services' internal API is not reachable from outside, in either form.
			for _, path := range []string{"/internal/reservations/x", "/product/internal/reservations/x", "/nowhere"} {
				api.expect(ctx, http.MethodGet, path, nil, http.StatusNotFound, nil)
			}
		})

		It("answers 429 with RateLimit headers once the Shop's rate limit is spent", func(ctx SpecContext) {
			expectRateLimit(ctx, api, firstRateLimit, rateLimitWindow)
		})
	})

	It("puts back a deleted child StatefulSet", func(ctx SpecContext) {
		key := types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, resources.Product)}
		before := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(ctx, key, before)).To(Succeed())
		Expect(kubectl(ctx, "delete", "statefulset", key.Name, "-n", key.Namespace)).Error().NotTo(HaveOccurred())

		Eventually(ctx, func(g Gomega) {
			s := &appsv1.StatefulSet{}
			g.Expect(k8sClient.Get(ctx, key, s)).To(Succeed())
			g.Expect(s.UID).NotTo(Equal(before.UID), "still the deleted StatefulSet")
			g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
			g.Expect(s.Status.UpdatedReplicas).To(Equal(*s.Spec.Replicas))
			g.Expect(s.Status.AvailableReplicas).To(Equal(*s.Spec.Replicas))
		}).Should(Succeed())
		expectReady(ctx, shop)
		// The product service is back behind the gateway, with the data it had.
		Eventually(ctx, func(g Gomega) {
			var got product
			g.Expect(api.get(ctx, "/products/"+notebook.ID, &got)).To(Succeed())
			g.Expect(got.Stock).To(Equal(notebook.Stock - 2))
		}).Should(Succeed())
	})

	It("scales back a Deployment scaled by hand", func(ctx SpecContext) {
		// The gateway: a Deployment whatever the engine (user and payment are StatefulSets
		// on FerretDB).
		key := types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, resources.Gateway)}
		before := &appsv1.Deployment{}
		Expect(k8sClient.Get(ctx, key, before)).To(Succeed())
		want := resources.AppReplicas(shop, resources.Gateway)
		Expect(kubectl(ctx, "scale", "deployment/"+key.Name, "-n", key.Namespace, "--replicas="+strconv.Itoa(int(want)+2))).
			Error().NotTo(HaveOccurred())

		Eventually(ctx, func(g Gomega) {
			d := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
			// Two spec changes at least: the scale, and the controller's undoing of it.
			g.Expect(d.Generation).To(BeNumerically(">=", before.Generation+2))
			g.Expect(d.Spec.Replicas).To(HaveValue(Equal(want)))
			g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
			g.Expect(d.Status.Replicas).To(Equal(want))
		}).Should(Succeed())
		expectReady(ctx, shop)
	})

	It("rolls the gateway when the rate limit changes, and the new limit answers", func(ctx SpecContext) {
		key := types.NamespacedName{Namespace: shop.Namespace, Name: resources.Name(shop, resources.Gateway)}
		oldPods, err := readyPods(ctx, shop, resources.Gateway)
		Expect(err).NotTo(HaveOccurred())
		Expect(oldPods).NotTo(BeEmpty())

		patch := fmt.Sprintf(`{"spec":{"gateway":{"rateLimit":{"requests":%d}}}}`, changedRateLimit)
		Expect(kubectl(ctx, "patch", "shop", shop.Name, "-n", shop.Namespace, "--type=merge", "-p", patch)).
			Error().NotTo(HaveOccurred())
		Eventually(ctx, func(g Gomega) {
			d := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
			g.Expect(d.Spec.Template.Spec.Containers[0].Env).To(ContainElement(
				corev1.EnvVar{Name: "RATE_LIMIT_REQUESTS", Value: strconv.Itoa(changedRateLimit)}))
		}).Should(Succeed())
		Expect(kubectl(ctx, "rollout", "status", "deployment/"+key.Name, "-n", key.Namespace, "--timeout=5m")).
			Error().NotTo(HaveOccurred())
		expectReady(ctx, shop)
		Eventually(ctx, func(g Gomega) {
			pods, err := readyPods(ctx, shop, resources.Gateway)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods).NotTo(BeEmpty())
			for _, old := range oldPods {
				g.Expect(pods).NotTo(ContainElement(old), "a pod of before the change still serves")
			}
		}).Should(Succeed())

		expectRateLimit(ctx, api, changedRateLimit, rateLimitWindow)
	})

	It("brings every order placed while RabbitMQ restarts to a final state, with one payment each", func(ctx SpecContext) {
		// A buyer and products of this spec's own, so that the stock adds up here.
		const stock = 1000
		var buyer user
		var cheap, dear product
		api.expect(ctx, http.MethodPost, "/users", map[string]string{
			"name": "Grace Hopper", "email": fmt.Sprintf("grace-%d@example.com", time.Now().UnixNano()),
		}, http.StatusCreated, &buyer)
		api.expect(ctx, http.MethodPost, "/products", product{Name: "Pencil", PriceCents: 250, Currency: "USD", Stock: stock},
			http.StatusCreated, &cheap)
		api.expect(ctx, http.MethodPost, "/products", product{Name: "Grand piano", PriceCents: paymentLimitCents/2 + 1, Currency: "USD", Stock: stock},
			http.StatusCreated, &dear)

		placer := startPlacing(ctx, api, buyer, cheap, dear, 500*time.Millisecond)
		DeferCleanup(placer.stop) // when the spec fails before stopping it
		Eventually(ctx, placer.count).Should(BeNumerically(">=", 3))

		brokerPods, err := readyPods(ctx, shop, resources.RabbitMQ)
		Expect(err).NotTo(HaveOccurred())
		Expect(brokerPods).To(HaveLen(1))
		// The StatefulSet's new pod has the old one's name: they are told apart by UID.
		podUID := func(name string) (types.UID, error) {
			p := &corev1.Pod{}
			err := k8sClient.Get(ctx, types.NamespacedName{Namespace: shop.Namespace, Name: name}, p)
			return p.UID, err
		}
		deletedUID, err := podUID(brokerPods[0])
		Expect(err).NotTo(HaveOccurred())
		Expect(kubectl(ctx, "delete", "pod", brokerPods[0], "-n", shop.Namespace, "--wait=false")).Error().NotTo(HaveOccurred())
		deletedAt, placedBefore := time.Now(), placer.count()

		Eventually(ctx, func(g Gomega) {
			pods, err := readyPods(ctx, shop, resources.RabbitMQ)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods).To(HaveLen(1))
			uid, err := podUID(pods[0])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(uid).NotTo(Equal(deletedUID), "still the deleted pod")
		}).WithTimeout(5 * time.Minute).Should(Succeed())
		backAt, placedDuring := time.Now(), placer.count()-placedBefore
		// Orders go on once the order service has its broker back.
		Eventually(ctx, placer.count).WithTimeout(5 * time.Minute).Should(BeNumerically(">=", placer.count()+3))
		placed, err := placer.stop()
		Expect(err).NotTo(HaveOccurred())

		var orders []order
		Eventually(ctx, func(g Gomega) {
			var err error
			orders, err = listAll[order](ctx, api, "/orders?userId="+buyer.ID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(orders).To(HaveLen(len(placed)), "orders of the buyer: the placer placed %d", len(placed))
			for _, o := range orders {
				g.Expect(o.Status).NotTo(Equal(statusPending), "order %s", o.ID)
			}
		}).WithTimeout(5 * time.Minute).Should(Succeed())
		settledAt := time.Now()

		status := map[string]string{}
		for _, o := range orders {
			status[o.ID] = o.Status
		}
		var pencilsSold int64
		for _, p := range placed {
			Expect(status).To(HaveKeyWithValue(p.ID, p.want), "order %s of %d × %s", p.ID, p.line.Quantity, p.line.ProductID)
			if p.want == statusPaid {
				pencilsSold += p.line.Quantity
			}
		}
		// The order and payment services may still be settling with the new broker
		// (not Ready for a moment: the gateway answers 503): ask until they answer. A
		// second payment or a lost order would not go away by asking again.
		var shopOrders int
		Eventually(ctx, func(g Gomega) {
			shopOrders = oneFinalPaymentPerOrder(ctx, g, api)
		}).Should(Succeed())
		AddReportEntry("payments", fmt.Sprintf("%d orders in the shop, each final with one payment", shopOrders))
		var got product
		api.expect(ctx, http.MethodGet, "/products/"+cheap.ID, nil, http.StatusOK, &got)
		Expect(got.Stock).To(Equal(stock-pencilsSold), "the paid orders' stock is taken once")
		Eventually(ctx, func(g Gomega) {
			g.Expect(api.get(ctx, "/products/"+dear.ID, &got)).To(Succeed())
			g.Expect(got.Stock).To(Equal(int64(stock)), "the cancelled orders' stock is back")
		}).Should(Succeed())

		AddReportEntry("RabbitMQ restart", fmt.Sprintf(
			"%d orders: %d placed before the broker's pod was deleted, %d while it came back (%s), %d after; all final %s after the broker was back",
			len(placed), placedBefore, placedDuring, backAt.Sub(deletedAt).Round(time.Second),
			len(placed)-placedBefore-placedDuring, settledAt.Sub(backAt).Round(time.Second)))
	}, SpecTimeout(20*time.Minute))

	It("removes every child when the Shop is deleted", func(ctx SpecContext) {
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), shop)).To(Succeed())
		uid := shop.UID
		before, err := shopObjects(ctx, shop, uid, append(childKinds, descendantKinds...)...)
		Expect(err).NotTo(HaveOccurred())
		Expect(refs(before)).To(ContainElements(expectedChildren(shop)))

		start := time.Now()
		Expect(kubectl(ctx, "delete", "shop", shop.Name, "-n", shop.Namespace, "--timeout=2m")).Error().NotTo(HaveOccurred())
		Eventually(ctx, func(g Gomega) {
			left, err := shopObjects(ctx, shop, uid, append(childKinds, descendantKinds...)...)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(refs(left)).To(BeEmpty())
		}).WithTimeout(5 * time.Minute).Should(Succeed())
		AddReportEntry("garbage collection", fmt.Sprintf("%d objects gone %s after the Shop was deleted",
			len(before), time.Since(start).Round(time.Second)))
	})
})

// expectReady waits, with the real kubectl, until the Shop is Ready for its current
// generation.
func expectReady(ctx context.Context, shop *shopv1.Shop) {
	GinkgoHelper()
	out, err := kubectl(ctx, "wait", "--for=condition=Ready", "shop/"+shop.Name, "-n", shop.Namespace, "--timeout=5m")
	Expect(err).NotTo(HaveOccurred(), out)
	Eventually(ctx, func(g Gomega) {
		s := &shopv1.Shop{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(shop), s)).To(Succeed())
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
		g.Expect(meta.IsStatusConditionTrue(s.Status.Conditions, controllers.ConditionReady)).To(BeTrue())
	}).Should(Succeed())
}

// eventuallyFinal polls an order until it is PAID or CANCELLED and returns it.
func eventuallyFinal(ctx context.Context, api *shopAPI, id string) order {
	GinkgoHelper()
	var o order
	Eventually(ctx, func(g Gomega) {
		g.Expect(api.get(ctx, "/orders/"+id, &o)).To(Succeed())
		g.Expect(o.Status).To(BeElementOf(statusPaid, statusCancelled))
	}).Should(Succeed())
	return o
}

// expectOnePayment checks that a final order has exactly one payment, of its total,
// whose outcome is the order's status.
func expectOnePayment(ctx context.Context, api *shopAPI, o order) {
	GinkgoHelper()
	payments, err := listAll[payment](ctx, api, "/payments?orderId="+o.ID)
	Expect(err).NotTo(HaveOccurred())
	Expect(payments).To(HaveLen(1), "payments of order %s", o.ID)
	Expect(payments[0].AmountCents).To(Equal(o.TotalCents))
	Expect(payments[0].Status).To(Equal(paymentOutcome(o.Status)))
}

// oneFinalPaymentPerOrder checks the whole shop: every order is final and has exactly
// one payment, whose outcome is its status; no payment is of an unknown order. It
// returns how many orders there are.
func oneFinalPaymentPerOrder(ctx context.Context, g Gomega, api *shopAPI) int {
	orders, err := listAll[order](ctx, api, "/orders")
	g.Expect(err).NotTo(HaveOccurred())
	payments, err := listAll[payment](ctx, api, "/payments")
	g.Expect(err).NotTo(HaveOccurred())
	byOrder := map[string][]payment{}
	for _, p := range payments {
		byOrder[p.OrderID] = append(byOrder[p.OrderID], p)
	}
	for _, o := range orders {
		g.Expect(o.Status).To(BeElementOf(statusPaid, statusCancelled), "order %s", o.ID)
		g.Expect(byOrder[o.ID]).To(HaveLen(1), "payments of order %s", o.ID)
		g.Expect(byOrder[o.ID][0].Status).To(Equal(paymentOutcome(o.Status)), "payment of order %s", o.ID)
		delete(byOrder, o.ID)
	}
	g.Expect(byOrder).To(BeEmpty(), "payments of no order")
	return len(orders)
}

// paymentOutcome is the payment status that goes with a final order status.
func paymentOutcome(orderStatus string) string {
	if orderStatus == statusPaid {
		return paymentOK
	}
	return paymentFailed
}

// expectRateLimit spends the client's whole quota from full and checks the limit the
// gateway enforces is limit per window: the first answer announces it (RateLimit-Policy
// q and w, RateLimit r = limit-1), the limit+1st request is answered 429 with
// Retry-After and RateLimit r=0. The quota refills while the burst runs (limit per
// window), so a slow burst may get one more request per window/limit it lasted.
func expectRateLimit(ctx context.Context, api *shopAPI, limit int, window time.Duration) {
	GinkgoHelper()
	const path = "/products?limit=1"
	Expect(api.waitForFullQuota(ctx, path)).To(Succeed())
	replies, took, err := api.burst(ctx, path, 3*limit)
	Expect(err).NotTo(HaveOccurred())
	last := replies[len(replies)-1]
	Expect(last.status).To(Equal(http.StatusTooManyRequests), "no 429 after %d requests", len(replies))
	allowed := replies[:len(replies)-1]
	Expect(allowed).NotTo(BeEmpty())
	for _, r := range allowed {
		Expect(r.status).To(Equal(http.StatusOK), r.String())
	}

	policy, err := allowed[0].rateLimit("RateLimit-Policy")
	Expect(err).NotTo(HaveOccurred())
	Expect(policy.policy).To(Equal("default"))
	Expect(policy.params).To(HaveKeyWithValue("q", int64(limit)))
	Expect(policy.params).To(HaveKeyWithValue("w", int64(window/time.Second)))
	first, err := allowed[0].rateLimit("RateLimit")
	Expect(err).NotTo(HaveOccurred())
	Expect(first.params).To(HaveKeyWithValue("r", int64(limit-1)), "the quota was full")

	refilled := int(took / (window / time.Duration(limit)))
	Expect(len(allowed)).To(BeNumerically(">=", limit))
	Expect(len(allowed)).To(BeNumerically("<=", limit+refilled), "the burst took %s", took)

	var e apiError
	Expect(last.decode(&e)).To(Succeed())
	Expect(e.Error).To(Equal("Too many requests"))
	Expect(strconv.Atoi(last.header.Get("Retry-After"))).To(BeNumerically(">=", 1))
	Expect(last.rateLimit("RateLimit-Policy")).To(Equal(policy))
	spent, err := last.rateLimit("RateLimit")
	Expect(err).NotTo(HaveOccurred())
	Expect(spent.params).To(HaveKeyWithValue("r", int64(0)))
	AddReportEntry("rate limit", fmt.Sprintf("limit %d per %s: %d requests answered 200 in %s, the next 429 (Retry-After %s, RateLimit %s)",
		limit, window, len(allowed), took.Round(time.Millisecond), last.header.Get("Retry-After"), last.header.Get("RateLimit")))
}

// readyPods are the names of component's Ready pods.
func readyPods(ctx context.Context, shop *shopv1.Shop, component string) ([]string, error) {
	return readyPodNames(ctx, shop.Namespace, resources.SelectorLabels(shop, component))
}

// ownNamespace creates a namespace of the spec's own, its name generated from prefix,
// and deletes it, waiting until it is gone, when the spec or container ends.
func ownNamespace(ctx SpecContext, prefix string, labels map[string]string) *corev1.Namespace {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix, Labels: labels}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(deleteNamespace, ns, NodeTimeout(6*time.Minute))
	return ns
}

// deleteNamespace deletes the suite's namespace, with its Shop, and waits until it is
// gone so that a next run starts from a clean cluster.
func deleteNamespace(ctx SpecContext, ns *corev1.Namespace) {
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed())
	Eventually(ctx, func() error {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			return fmt.Errorf("namespace %s still there", ns.Name)
		}
		return err
	}).WithTimeout(5 * time.Minute).Should(Succeed())
}
