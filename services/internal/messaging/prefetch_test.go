package messaging_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestConsumerPrefetch: a consumer handles as many deliveries at once as its prefetch
// says, DefaultPrefetch (the services' CONSUMER_PREFETCH default) when it says none.
func TestConsumerPrefetch(t *testing.T) {
	tests := []struct {
		prefetch messaging.ConsumerConfig
		want     int
	}{
		{messaging.ConsumerConfig{}, messaging.DefaultPrefetch},
		{messaging.ConsumerConfig{Prefetch: 3}, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.prefetch.Prefetch), func(t *testing.T) {
			b := connect(t, testenv.RabbitMQ(t))
			p := messaging.NewPublisher(b)
			defer p.Close()
			for i := range tt.want + 5 {
				publish(t, p, fmt.Sprintf("m-%d", i), "work.done")
			}
			rec := newRecorder()
			rec.release = make(chan struct{})
			cfg := tt.prefetch
			cfg.Queue, cfg.Handler = workQueue.Name, rec.handle
			c := b.Consume(cfg)
			defer func() { _ = c.Stop(context.Background()) }()
			started := func() int { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.seen) }
			eventually(t, "handlers started", func() bool { return started() >= tt.want })
			time.Sleep(300 * time.Millisecond) // time for any delivery beyond the prefetch
			if n := started(); n != tt.want {
				t.Errorf("%d deliveries handled at once, want %d", n, tt.want)
			}
			close(rec.release)
			eventually(t, "every message handled", func() bool { return started() == tt.want+5 })
		})
	}
}

// TestConsumerRefusesAPrefetchTheBrokerCannotTake: basic.qos carries 16 bits, so
// 65536 would wrap around to 0, which means no limit at all.
func TestConsumerRefusesAPrefetchTheBrokerCannotTake(t *testing.T) {
	b := connect(t, testenv.RabbitMQ(t))
	for _, prefetch := range []int{-1, messaging.MaxPrefetch + 1, 100000} {
		t.Run(fmt.Sprint(prefetch), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Consume accepted prefetch %d", prefetch)
				}
			}()
			c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Prefetch: prefetch, Handler: newRecorder().handle})
			_ = c.Stop(context.Background())
		})
	}
}
