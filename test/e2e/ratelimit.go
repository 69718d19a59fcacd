package e2e

import (
	"fmt"
	"strconv"
	"strings"
)

// rateLimitField is one parsed RateLimit or RateLimit-Policy header value of the IETF
// draft, such as `"default";q=60;w=60`: the policy's name and its integer parameters.
type rateLimitField struct {
	policy string
	params map[string]int64
}

// parseRateLimitField parses the one-policy form the gateway sends: a quoted name,
// then ;key=integer parameters.
func parseRateLimitField(v string) (rateLimitField, error) {
	parts := strings.Split(v, ";")
	quoted := strings.TrimSpace(parts[0])
	if !strings.HasPrefix(quoted, `"`) {
		return rateLimitField{}, fmt.Errorf("rate-limit field %q: the policy name is not a quoted string", v)
	}
	name, err := strconv.Unquote(quoted)
	if err != nil {
		return rateLimitField{}, fmt.Errorf("rate-limit field %q: policy name: %w", v, err)
	}
	f := rateLimitField{policy: name, params: map[string]int64{}}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return rateLimitField{}, fmt.Errorf("rate-limit field %q: parameter %q has no value", v, p)
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return rateLimitField{}, fmt.Errorf("rate-limit field %q: parameter %q: %w", v, p, err)
		}
		f.params[k] = n
	}
	return f, nil
}
