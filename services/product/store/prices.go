package store

import (
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// priceCache keeps the products a reservation prices, so that pricing an order costs no
// read of the database. It can: this process is the only writer of its products (one
// replica, see the package comment), and Update and Delete invalidate a product after
// writing it. A fill carries the generation read before its database read and is
// dropped when an invalidation came in between, so a read made before a change is
// never cached after it, and a product with an update of unknown outcome (one that timed
// out and may still land) is not cached until that update is fenced. The stock in a cached
// product is not kept current: pricing does not use it.
type priceCache struct {
	mu       sync.Mutex
	products map[bson.ObjectID]catalog.Product
	gen      uint64
}

// maxCachedPrices bounds the cache; when full it starts again empty, which costs the
// next reservations a read each.
const maxCachedPrices = 10000

// get returns the cached product id, or the generation to fill it with.
func (c *priceCache) get(id bson.ObjectID) (p catalog.Product, ok bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok = c.products[id]
	return p, ok, c.gen
}

// fill caches p, read from the database after get answered gen, unless a product was
// invalidated since.
func (c *priceCache) fill(id bson.ObjectID, p catalog.Product, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.products == nil || len(c.products) >= maxCachedPrices {
		c.products = map[bson.ObjectID]catalog.Product{}
	}
	c.products[id] = p
}

// invalidate forgets product id; call it after the write that changed it.
func (c *priceCache) invalidate(id bson.ObjectID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.products, id)
	c.gen++
}
