package payment

import (
	"errors"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
)

// Validate checks what the types of Config alone cannot, so that a bad value stops the
// service at start: a PAYMENT_LIMIT_CENTS below 1 would decline every payment, and
// CONSUMER_PREFETCH is an AMQP prefetch count (16 bits; 0 would mean no limit).
func (c *Config) Validate() error {
	return errors.Join(
		config.AtLeast("PAYMENT_LIMIT_CENTS", c.LimitCents, 1),
		config.Between("CONSUMER_PREFETCH", c.Prefetch, 1, messaging.MaxPrefetch),
	)
}
