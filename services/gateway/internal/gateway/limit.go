package gateway

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/ratelimit"
)

// rateLimitPolicy is the name of the one quota policy in the RateLimit headers.
const rateLimitPolicy = "default"

// tooManyRequests is the body of a 429.
type tooManyRequests struct {
	Error string `json:"error"`
}

// limitHeaders writes the IETF httpapi RateLimit headers of d (draft-ietf-httpapi-ratelimit-headers)
// on every proxied answer:
//
//	RateLimit-Policy: "default";q=<limit>;w=<window seconds>
//	RateLimit: "default";r=<requests left now>;t=<seconds until the whole quota is back>
//
// and, on a refusal, Retry-After: the seconds until one more request is allowed. They
// replace every field of those names a service sent (Set replaces only the first), so the
// client is told the gateway's limit alone.
func limitHeaders(h *fasthttp.ResponseHeader, policy []byte, d ratelimit.Decision) {
	h.Del("RateLimit-Policy")
	h.SetBytesV("RateLimit-Policy", policy)
	var buf [64]byte
	h.Del("RateLimit")
	h.SetBytesV("RateLimit", rateLimitValue(buf[:0], d))
	if !d.Allowed {
		h.SetBytesV("Retry-After", strconv.AppendInt(buf[:0], max(1, ceilSeconds(d.RetryAfter)), 10))
	}
}

// rateLimitPolicyValue is the RateLimit-Policy field of l.
func rateLimitPolicyValue(l *ratelimit.Limiter) []byte {
	return []byte(`"` + rateLimitPolicy + `";q=` + strconv.Itoa(l.Limit()) + ";w=" + strconv.FormatInt(ceilSeconds(l.Window()), 10))
}

// rateLimitValue appends the RateLimit field of d to b.
func rateLimitValue(b []byte, d ratelimit.Decision) []byte {
	b = append(b, `"`+rateLimitPolicy+`";r=`...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	return strconv.AppendInt(b, ceilSeconds(d.Reset), 10)
}

// ceilSeconds rounds d up to whole seconds, so a client that waits that long is never early.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
