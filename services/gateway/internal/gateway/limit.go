package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/clientip"
	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/ratelimit"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// rateLimitPolicy is the name of the one quota policy in the RateLimit headers.
const rateLimitPolicy = "default"

// tooManyRequests is the body of a 429.
type tooManyRequests struct {
	Error string `json:"error"`
}

// limitMiddleware applies the per-client limit to next. Every answer carries the IETF
// httpapi RateLimit headers (draft-ietf-httpapi-ratelimit-headers):
//
//	RateLimit-Policy: "default";q=<limit>;w=<window seconds>
//	RateLimit: "default";r=<requests left now>;t=<seconds until the whole quota is back>
//
// and a refused request is answered 429 {"error":"Too many requests"} with Retry-After, the
// seconds until one more request is allowed.
type limitMiddleware struct {
	limiter *ratelimit.Limiter
	ips     *clientip.Resolver
	policy  []string // shared by every response; the header map is only ever replaced, not appended to
}

func newLimitMiddleware(l *ratelimit.Limiter, ips *clientip.Resolver) *limitMiddleware {
	policy := `"` + rateLimitPolicy + `";q=` + strconv.Itoa(l.Limit()) + ";w=" + strconv.FormatInt(ceilSeconds(l.Window()), 10)
	return &limitMiddleware{limiter: l, ips: ips, policy: []string{policy}}
}

// Wrap returns next behind the limit.
func (m *limitMiddleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A request without a network peer (never the case behind a listener) shares one
		// bucket: failing closed beats letting it through unlimited.
		ip, _ := m.ips.ClientIP(r)
		d := m.limiter.Allow(ratelimit.KeyFor(ip))

		h := w.Header()
		h["Ratelimit-Policy"] = m.policy
		h["Ratelimit"] = []string{rateLimitValue(d)}
		if !d.Allowed {
			h["Retry-After"] = []string{strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10)}
			web.Respond(w, http.StatusTooManyRequests, tooManyRequests{Error: "Too many requests"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rateLimitValue formats the RateLimit field of d with a single allocation.
func rateLimitValue(d ratelimit.Decision) string {
	var buf [64]byte
	b := append(buf[:0], `"`+rateLimitPolicy+`";r=`...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(d.Reset), 10)
	return string(b)
}

// ceilSeconds rounds d up to whole seconds, so a client that waits that long is never early.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
