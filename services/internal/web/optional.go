package web

import (
	"encoding/json"
	"reflect"
)

// Optional is a field of a PATCH body that knows whether it was sent: a field left out
// keeps its value, and null is refused as a wrong type (encoding/json would leave the
// field unset and say nothing, so {"name": null, "stock": 5} would change the stock and
// quietly ignore the name).
type Optional[T any] struct {
	set   bool
	value T
}

// UnmarshalJSON records that the field was sent, refusing null.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return &json.UnmarshalTypeError{Value: "null", Type: reflect.TypeFor[T]()}
	}
	if err := json.Unmarshal(b, &o.value); err != nil {
		return err
	}
	o.set = true
	return nil
}

// Ptr returns the value sent, or nil when the field was left out.
func (o Optional[T]) Ptr() *T {
	if !o.set {
		return nil
	}
	return &o.value
}
