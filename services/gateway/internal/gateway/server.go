package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// readBufferSize bounds a request's line and headers, as nginx's large_client_header_buffers;
// a longer head is answered 431.
const readBufferSize = 16 << 10

// Handler is what the gateway's server runs (Gateway.Handler makes it): the handler of the
// requests the server reads, what it is told of their heads, the answer to a request it
// cannot read, and the answer to an Expect: 100-continue.
type Handler struct {
	// Serve serves every request the server reads.
	Serve fasthttp.RequestHandler
	// HeadRead is told of every request head the server reads, before it parses the target
	// or reads any of the body: &ctx.Request.Header of the context that then serves the
	// request, answers it or answers its Expect: 100-continue.
	HeadRead func(h *fasthttp.RequestHeader)
	// ReadError answers a request the server could not read for err; the server sends the
	// answer and closes the connection after it.
	ReadError func(ctx *fasthttp.RequestCtx, err error)
	// Expect answers a request's Expect: 100-continue before its body is read:
	// fasthttp.StatusContinue to read the body and serve the request, else the status of the
	// answer it wrote, which the server sends and closes the connection after.
	Expect func(ctx *fasthttp.RequestCtx) int
	// Clients, when set, counts each client's connections and refuses one past its cap
	// (clientConns).
	Clients *clientConns
	// RefusedConn, when set, records a connection Clients refused, before any request of it
	// is read, and returns the request id of the answer.
	RefusedConn func() string
}

// NewServer returns the server of h with cfg's timeouts: ReadHeaderTimeout for a request's
// head, ReadTimeout for its body, WriteTimeout for writing the answer, IdleTimeout between
// requests on a kept-alive connection. A request body is at most web.MaxBodyBytes, as the
// services read.
func NewServer(h Handler, cfg config.Base, logger *slog.Logger) *fasthttp.Server {
	headerTimeout := cfg.ReadTimeout
	if cfg.ReadHeaderTimeout > 0 && (headerTimeout <= 0 || cfg.ReadHeaderTimeout < headerTimeout) {
		headerTimeout = cfg.ReadHeaderTimeout
	}
	bodyConfig := fasthttp.RequestConfig{ReadTimeout: cfg.ReadTimeout}
	headRead := func(head *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if h.HeadRead != nil {
			h.HeadRead(head)
		}
		if !hasBody(head) {
			// No body to read (nearly every GET): the head's deadline is not moved, which
			// would cost the request a timer update for nothing.
			return fasthttp.RequestConfig{}
		}
		return bodyConfig
	}
	return &fasthttp.Server{
		Handler:      h.Serve,
		ErrorHandler: h.ReadError,
		// Rather than fasthttp's ContinueHandler, whose refusal is a 417 with no body: a
		// request not to be proxied is given its own answer before it sends its body.
		ExpectHandler: h.Expect,
		// The head must come within the header timeout (a client holding a connection with a
		// head sent byte by byte ties up memory); the body then has the read timeout.
		ReadTimeout:    headerTimeout,
		HeaderReceived: headRead,
		WriteTimeout:   cfg.WriteTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		// Request bodies stream: the server reads at most streamPreRead of one before the
		// handler runs, however large a Content-Length is announced, so a client holding many
		// connections with large bodies half sent costs kilobytes, not megabytes, and the rate
		// limit sees a request before its body is read. The handler refuses what is over
		// web.MaxBodyBytes (tooLarge) and passes the rest to the service as it arrives.
		StreamRequestBody:     true,
		MaxRequestBodySize:    web.MaxBodyBytes,
		ReadBufferSize:        readBufferSize,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// A proxy passes multipart bodies on as they are, and its own messages carry no
		// request contents.
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true,
		CloseOnShutdown:              true,
		Logger:                       printfLogger{logger},
	}
}

// readErrorAnswer is the status and body of the answer to a request that cannot be read for
// err: 431 for a head over readBufferSize, 413 for a body over web.MaxBodyBytes, 408 for one
// not read in time, else 400.
func readErrorAnswer(err error) (int, web.ErrorBody) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		return fasthttp.StatusRequestHeaderFieldsTooLarge, web.ErrorBody{Error: "Request header fields too large"}
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, bodyTooLargeBody
	case errors.As(err, &ne) && ne.Timeout():
		return fasthttp.StatusRequestTimeout, web.ErrorBody{Error: "Request timeout"}
	default:
		return fasthttp.StatusBadRequest, web.ErrorBody{Error: "Malformed request"}
	}
}

// bodyTooLargeBody is the body of every 413.
var bodyTooLargeBody = web.ErrorBody{Error: "Request body too large"}

// printfLogger passes the server's own messages (accept errors and the like) to the log.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	if strings.HasPrefix(format, connErrorFormat) {
		// A connection that ended on an error reading what its client sent, or writing
		// to it: the request it could not read was answered and logged (answerReadError),
		// and the error quotes what the client sent (a header's value, say, credentials
		// included), which has no place in the log.
		l.log.Debug("a client's connection ended on an error")
		return
	}
	l.log.Warn(fmt.Sprintf(format, args...))
}

// connErrorFormat starts fasthttp's message for a connection it stopped serving on an error.
const connErrorFormat = "error when serving connection"

// Serve listens on cfg.Port and serves h until ctx is cancelled; then it stops accepting, lets
// in-flight requests finish within cfg.ShutdownTimeout and returns nil, as web.Serve does.
func Serve(ctx context.Context, h Handler, cfg config.Base, logger *slog.Logger) error {
	ln, err := web.Listen(ctx, cfg)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h, cfg, logger)
}

// ServeListener is Serve on a listener the caller made (tests listen on port 0). Its
// connections close gently after a refusal (gentleConn).
func ServeListener(ctx context.Context, ln net.Listener, h Handler, cfg config.Base, logger *slog.Logger) error {
	return web.Run(ctx, gentleListener{Listener: ln, clients: h.Clients, refused: h.RefusedConn}, runnable{NewServer(h, cfg, logger)}, cfg, logger)
}

// runnable is a fasthttp server as web.Run runs servers.
type runnable struct{ *fasthttp.Server }

// Shutdown stops accepting and waits for in-flight requests until ctx ends.
func (s runnable) Shutdown(ctx context.Context) error { return s.ShutdownWithContext(ctx) }
