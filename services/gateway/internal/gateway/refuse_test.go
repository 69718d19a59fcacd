package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestOverLimitBodyAnswerArrives: a client announcing a body just over web.MaxBodyBytes that
// writes all of it before reading, as simple clients do, reads the JSON 413 every time, and
// is never invited to send it (no 100 Continue). The gateway refuses on the announced length
// with the body unread; closing the connection on it would send a reset that can destroy the
// answer before the client reads it.
func TestOverLimitBodyAnswerArrives(t *testing.T) {
	s := newSuite(t, nil)
	body := `{"name":"` + strings.Repeat("x", web.MaxBodyBytes+1-len(`{"name":""}`)) + `"}`
	for _, tt := range []struct {
		name   string
		expect string
		// wait: the client sends the head alone and waits for the answer, as a client
		// expecting 100 Continue does for a while.
		wait bool
	}{
		{name: "no expectation"},
		{name: "Expect: 100-continue", expect: "Expect: 100-continue\r\n"},
		{name: "Expect: 100-continue, waiting", expect: "Expect: 100-continue\r\n", wait: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			head := "POST /users HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n" + tt.expect +
				"X-Request-ID: big-1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
			request := head + body
			if tt.wait {
				request = head
			}
			for i := range 50 {
				status, header, answer := writeWholeThenRead(t, s.url, request)
				if status != http.StatusRequestEntityTooLarge || header.Get("Content-Type") != "application/json" {
					t.Fatalf("attempt %d: status %d %q, want 413 JSON first; body %s", i, status, header.Get("Content-Type"), answer)
				}
				if e := decode[map[string]any](t, answer); e["error"] == nil {
					t.Fatalf("attempt %d: body %s has no error", i, answer)
				}
				if id := header.Get(web.RequestIDHeader); id != "big-1" {
					t.Fatalf("attempt %d: X-Request-ID %q, want the client's", i, id)
				}
			}
		})
	}
	if got := counterValue(t, s.reg, "http_requests_total", map[string]string{"route": "/users", "status": "413"}); got != 150 {
		t.Errorf("http_requests_total{route=\"/users\",status=\"413\"} = %v, want 150", got)
	}
	if n := s.upstreams["user"].hits.Load(); n != 0 {
		t.Fatalf("user reached %d times", n)
	}
}

// writeWholeThenRead writes request to the gateway whole on a connection of its own, in
// pieces as a client sends from its buffer, however early the gateway answers, and then reads the first answer (a 100 Continue included) and its
// body. A connection reset while writing fails the test: clients such as curl give up on
// the request then, answer or not.
func writeWholeThenRead(t *testing.T, gatewayURL, request string) (status int, header http.Header, body []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(gatewayURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	for rest := request; rest != ""; {
		n := min(len(rest), 16<<10)
		if _, err := io.WriteString(conn, rest[:n]); err != nil {
			t.Fatalf("writing the request, %d bytes to go: %v", len(rest), err)
		}
		rest = rest[n:]
		time.Sleep(100 * time.Microsecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	return resp.StatusCode, resp.Header, body
}
