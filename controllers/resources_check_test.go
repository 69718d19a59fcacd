package controllers

import (
	"fmt"
	"testing"
)

// TestVerdictCacheIsBounded: the resources probe's verdicts are kept for the most recent
// resources only, so a Shop edited again and again does not grow the operator's memory.
func TestVerdictCacheIsBounded(t *testing.T) {
	var c verdictCache // the zero value, as a ShopReconciler holds it
	c.add("shop/a", "")
	c.add("shop/b", "cpu: must be less than or equal to cpu limit")
	if v, ok := c.get("shop/b"); !ok || v != "cpu: must be less than or equal to cpu limit" {
		t.Fatalf("get(shop/b) = %q, %v", v, ok)
	}
	if v, ok := c.get("shop/a"); !ok || v != "" {
		t.Fatalf("get(shop/a) = %q, %v; want the empty verdict, found", v, ok)
	}
	for i := range verdictCacheSize {
		c.add(fmt.Sprintf("shop/edit-%d", i), "")
	}
	if _, ok := c.get("shop/b"); ok {
		t.Error("a verdict outlived verdictCacheSize newer ones")
	}
	if n := c.entries().Len(); n != verdictCacheSize {
		t.Errorf("%d verdicts kept, want %d", n, verdictCacheSize)
	}
}
