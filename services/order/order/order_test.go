package order_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

// A broken rule of a line names the line by its index, as the decoder names a wrong type
// there (items[1].quantity): "items.quantity" would not say which line to mend.
func TestPlaceRequestValidateNamesTheLine(t *testing.T) {
	line := func(id string, q int) order.RequestItem { return order.RequestItem{ProductID: id, Quantity: q} }
	lines := func(n int) []order.RequestItem {
		items := make([]order.RequestItem, n)
		for i := range items {
			items[i] = line(fmt.Sprint("p", i), 1)
		}
		return items
	}
	tests := []struct {
		name  string
		items []order.RequestItem
		want  []apperr.FieldError
	}{
		{"valid", []order.RequestItem{line("a", 1), line("b", 1000)}, nil},
		{"50 lines", lines(50), nil},
		{"51 lines", lines(51), []apperr.FieldError{{Field: "items", Message: "must hold 1 to 50 lines"}}},
		{"quantity 0 on the second line", []order.RequestItem{line("a", 1), line("b", 0)},
			[]apperr.FieldError{{Field: "items[1].quantity", Message: "must be from 1 to 1000"}}},
		{"quantity over 1000 on the first line", []order.RequestItem{line("a", 1001)},
			[]apperr.FieldError{{Field: "items[0].quantity", Message: "must be from 1 to 1000"}}},
		{"no product on the third line", []order.RequestItem{line("a", 1), line("b", 1), line("", 1)},
			[]apperr.FieldError{{Field: "items[2].productId", Message: "is required"}}},
		{"a product on two lines", []order.RequestItem{line("a", 1), line("b", 1), line("a", 2)},
			[]apperr.FieldError{{Field: "items[2].productId", Message: "names a product already on another line"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := order.PlaceRequest{UserID: "u", Items: tt.items}.Validate()
			var got []apperr.FieldError
			if ae := (*apperr.Error)(nil); errors.As(err, &ae) {
				for _, d := range ae.Details {
					got = append(got, d.(apperr.FieldError))
				}
			} else if err != nil {
				t.Fatalf("Validate() = %v, want a validation error", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() details = %+v, want %+v", got, tt.want)
			}
		})
	}
}
