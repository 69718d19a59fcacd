//go:build e2e

package e2e

import (
	"fmt"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
)

// stallDeadline is the operator's --stall-deadline in the suite: how long a
// StatefulSet's pod may stay unready before the Shop is Degraded.
const stallDeadline = time.Minute

var _ = Describe("A Shop whose broker image cannot be pulled", func() {
	It("is Degraded once the broker's pod has not been ready for the stall deadline, naming the pod and the cause, and Ready once the image is mended", func(ctx SpecContext) {
		if operator.preexisting {
			Skip("the operator in the cluster was installed by someone else, with a stall deadline of its own")
		}
		ns := ownNamespace(ctx, "shopkeeper-e2e-stall-", nil)

		shop := newShop(ns.Name)
		shop.Name = "stalled"
		// Nothing serves this image: the kubelet's pulls fail for as long as the spec runs.
		shop.Spec.RabbitMQ.Image = "localhost/shopkeeper/no-such-image:v0"
		Expect(k8sClient.Create(ctx, shop)).To(Succeed())

		out, err := kubectl(ctx, "wait", "--for=condition=Degraded", "shop/"+shop.Name, "-n", ns.Name,
			"--timeout="+(stallDeadline+3*time.Minute).String())
		Expect(err).NotTo(HaveOccurred(), out)
		out, err = kubectl(ctx, "get", "shop/"+shop.Name, "-n", ns.Name,
			"-o", `jsonpath={.status.conditions[?(@.type=="Degraded")].reason}: {.status.conditions[?(@.type=="Degraded")].message}`)
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring(fmt.Sprintf("RolloutStalled: %s: pod %s-0 not ready for %s: container %s: its image cannot be pulled",
			resources.RabbitMQ, resources.Name(shop, resources.RabbitMQ), stallDeadline, resources.RabbitMQ)))

		// The StatefulSet's pod never became ready; the mended template must replace it
		// all the same (pods managed in parallel, not one by one in order).
		image := "null" // the operator's default
		if env.rabbitMQImage != "" {
			image = strconv.Quote(env.rabbitMQImage)
		}
		out, err = kubectl(ctx, "patch", "shop/"+shop.Name, "-n", ns.Name, "--type=merge",
			"-p", `{"spec":{"rabbitmq":{"image":`+image+`}}}`)
		Expect(err).NotTo(HaveOccurred(), out)
		out, err = kubectl(ctx, "wait", "--for=condition=Ready", "shop/"+shop.Name, "-n", ns.Name, "--timeout="+env.readyTimeout.String())
		Expect(err).NotTo(HaveOccurred(), out)
	}, SpecTimeout(20*time.Minute)) // the stall deadline, then E2E_READY_TIMEOUT (10m) at most
})
