package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
)

// timeoutErr is a net.Error that timed out, as a read past its deadline is.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestUpstreamFailure(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{name: "read past the deadline", err: timeoutErr{}, status: 504},
		{name: "answer not complete within the upstream timeout", err: fasthttp.ErrTimeout, status: 504},
		{name: "deadline", err: fmt.Errorf("round trip: %w", context.DeadlineExceeded), status: 504},
		// Nothing was sent: the client may send the request again.
		{name: "connect timed out (fasthttp)", err: fasthttp.ErrDialTimeout, status: 503},
		{name: "every connection busy", err: fasthttp.ErrNoFreeConns, status: 503},
		{name: "connect timed out: unreachable, not slow", err: &net.OpError{Op: "dial", Err: timeoutErr{}}, status: 503},
		{name: "connection refused", err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, status: 503},
		{name: "name not resolved", err: &net.DNSError{Err: "no such host", Name: "user", IsNotFound: true}, status: 503},
		{name: "every pooled connection closed by the service", err: errStaleConn, status: 503},
		{name: "certificate not trusted", err: &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}, status: 503},
		{name: "not TLS on the other side", err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, status: 503},
		{name: "TLS handshake timed out", err: fasthttp.ErrTLSHandshakeTimeout, status: 503},
		// The request may have reached the service: not "cannot be reached".
		{name: "reset while reading", err: &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, status: 502},
		{name: "closed before the answer", err: fasthttp.ErrConnectionClosed, status: 502},
		{name: "closed within the answer", err: io.ErrUnexpectedEOF, status: 502},
		{name: "answer too large", err: fasthttp.ErrBodyTooLarge, status: 502},
	}
	for _, tt := range tests {
		status, body := upstreamFailure("user", tt.err)
		if status != tt.status || body.Service != "user" || body.Message == "" {
			t.Errorf("%s: %d %+v, want %d", tt.name, status, body, tt.status)
		}
	}
}

// TestHasHopHeader: the one pass that lets a message without hop-by-hop headers skip their
// deletion finds each of them, in any case, in a request and in an answer, and nothing in a
// message without them.
func TestHasHopHeader(t *testing.T) {
	for _, name := range append([]string{"Connection", "connection", "KEEP-ALIVE"}, hopHeaders...) {
		var req fasthttp.RequestHeader
		req.DisableNormalizing() // the name as written, not canonicalised on the way in
		req.Set("X-Other", "1")
		req.Set(name, "x")
		if !hasHopHeader(req.All()) {
			t.Errorf("request with %s: not found", name)
		}
		var resp fasthttp.ResponseHeader
		resp.DisableNormalizing()
		resp.Set(name, "x")
		if !hasHopHeader(resp.All()) {
			t.Errorf("answer with %s: not found", name)
		}
	}
	var req fasthttp.RequestHeader
	req.SetHost("shop.example")
	req.SetContentType("application/json")
	req.Set("X-Request-ID", "abc")
	req.Set("Te-Extra", "not a hop header")
	if hasHopHeader(req.All()) {
		t.Error("request without hop-by-hop headers: found one")
	}
	var closing fasthttp.RequestHeader
	closing.SetConnectionClose()
	if !hasHopHeader(closing.All()) {
		t.Error("request with Connection: close: not found")
	}
}

// TestDropHopHeaders: the hop-by-hop fields of a request and of an answer go, with those
// their Connection names, and the others stay; a Connection: close goes as a field but the
// message still says its connection closes after it.
func TestDropHopHeaders(t *testing.T) {
	const fields = "Connection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 2\r\n"
	var req fasthttp.RequestHeader
	if err := req.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: shop\r\n" + fields + "\r\n"))); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.ResponseHeader
	if err := resp.Read(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + fields + "\r\n"))); err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]interface {
		headers
		Peek(key string) []byte
	}{"request": &req, "answer": &resp} {
		dropHopHeaders(h)
		for _, hop := range []string{"X-Hop", "Keep-Alive"} {
			if v := h.Peek(hop); v != nil {
				t.Errorf("%s: %s: %q is still there", name, hop, v)
			}
		}
		if v := string(h.Peek("X-Kept")); v != "2" {
			t.Errorf("%s: X-Kept = %q, want 2", name, v)
		}
		if !h.ConnectionClose() {
			t.Errorf("%s: Connection: close was forgotten with the field", name)
		}
	}
}
