package order

import (
	"errors"
	"math"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
)

// Validate checks what the types of Config alone cannot, so that a bad value stops the
// service at start: PEER_TIMEOUT of 0 would let a hung peer hold a request for ever, and
// CONSUMER_PREFETCH is an AMQP prefetch count (16 bits; 0 would mean no limit).
func (c *Config) Validate() error {
	return errors.Join(
		config.Positive(config.Duration{Name: "PEER_TIMEOUT", Value: c.PeerTimeout}),
		config.Between("CONSUMER_PREFETCH", c.Prefetch, 1, math.MaxUint16),
	)
}
