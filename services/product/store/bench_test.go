package store

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// BenchmarkReserve measures the order flow's hot path: concurrent reservation requests,
// each a new order taking one unit of one popular product, after `history` earlier orders
// of that product (their reservations and what they left in the product's document are
// part of the cost). Run it with -cpu 2 (32 requests at once) and, to profile the
// database too, MONGODB_URI pointing at a FerretDB serving pprof.
//
//	go test ./services/product/store -run '^$' -bench Reserve -benchtime 400x -cpu 2
func BenchmarkReserve(b *testing.B) {
	for _, history := range []int{0, 1000} {
		b.Run("history="+strconv.Itoa(history), func(b *testing.B) {
			ctx := b.Context()
			s := New(testenv.MongoDB(b))
			p, err := s.Create(ctx, catalog.NewProduct{Name: "Popular", PriceCents: 1999, Currency: "USD", Stock: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			reserve := func() error {
				req := catalog.ReservationRequest{
					OrderID: fmt.Sprintf("bench-%d", n.Add(1)),
					Items:   []catalog.ReservationItem{{ProductID: p.ID, Quantity: 1}},
				}
				_, _, err := s.Reserve(ctx, req)
				return err
			}
			concurrently(b, history, 16, reserve)

			b.SetParallelism(16) // 16 per CPU: 32 at once with -cpu 2, as in hack/bench-services.sh
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := reserve(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
		})
	}
}

// concurrently calls f n times, from workers goroutines at once, and fails b on the
// first error.
func concurrently(b *testing.B, n, workers int, f func() error) {
	b.Helper()
	var next atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for next.Add(1) <= int64(n) {
				if err := f(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}
