package web

import (
	"net/http"

	"go.opentelemetry.io/otel/propagation"
)

// headerCarrier is propagation.HeaderCarrier without its cost per request: propagators
// ask for their fields in lower case ("traceparent"), and http.Header.Get allocates to
// canonicalise such a key on every call. The W3C fields are looked up canonical as they
// are; any other key goes through http.Header as before.
type headerCarrier http.Header

var _ propagation.TextMapCarrier = headerCarrier(nil)

// Get returns the first value of key.
func (c headerCarrier) Get(key string) string {
	var v []string
	switch key {
	case "traceparent":
		v = c["Traceparent"]
	case "tracestate":
		v = c["Tracestate"]
	case "baggage":
		v = c["Baggage"]
	default:
		return http.Header(c).Get(key)
	}
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Set sets key to value.
func (c headerCarrier) Set(key, value string) { http.Header(c).Set(key, value) }

// Keys lists the keys present.
func (c headerCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }
