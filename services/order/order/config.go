package order

import (
	"errors"
	"fmt"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
)

// Validate checks what the types of Config alone cannot, so that a bad value stops the
// service at start: the peers' URLs must be http or https base URLs, PEER_TIMEOUT or
// PLACEMENT_TIMEOUT of 0 would let a hung peer hold a request for ever, PENDING_CHECK_AFTER
// of 0 would ask the payment service about every order being paid, PLACEMENT_TIMEOUT at or
// past HTTP_WRITE_TIMEOUT would have the server cut the connection before POST /orders
// answers (the client told nothing, its order perhaps placed), and CONSUMER_PREFETCH is an
// AMQP prefetch count (16 bits; 0 would mean no limit).
func (c *Config) Validate() error {
	_, userErr := peerURL("USER_SERVICE_URL", c.UserServiceURL)
	_, productErr := peerURL("PRODUCT_SERVICE_URL", c.ProductServiceURL)
	_, paymentErr := peerURL("PAYMENT_SERVICE_URL", c.PaymentServiceURL)
	return errors.Join(userErr, productErr, paymentErr,
		config.Positive(config.Duration{Name: "PEER_TIMEOUT", Value: c.PeerTimeout},
			config.Duration{Name: "PLACEMENT_TIMEOUT", Value: c.PlacementTimeout},
			config.Duration{Name: "PENDING_CHECK_AFTER", Value: c.PendingCheckAfter}),
		config.Between("CONSUMER_PREFETCH", c.Prefetch, 1, messaging.MaxPrefetch),
		c.placementWithinWrite(),
	)
}

// placementWithinWrite: POST /orders answers by PLACEMENT_TIMEOUT, which the server's
// HTTP_WRITE_TIMEOUT must leave room for.
func (c *Config) placementWithinWrite() error {
	if c.PlacementTimeout > 0 && c.WriteTimeout > 0 && c.PlacementTimeout >= c.WriteTimeout {
		return fmt.Errorf("PLACEMENT_TIMEOUT=%s: must be below HTTP_WRITE_TIMEOUT (%s), which would cut POST /orders before its answer",
			c.PlacementTimeout, c.WriteTimeout)
	}
	return nil
}
