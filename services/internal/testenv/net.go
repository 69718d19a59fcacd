package testenv

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// ClosedAddr returns a loopback address nothing listens on: a connection to it is refused,
// as one to a server that is down.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// FreePort returns a loopback port nothing listens on now (ClosedAddr's), for a server
// a test starts from its configuration.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(ClosedAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// WaitReady waits up to 20 s for url to answer 200, and fails the test if it does not,
// or at once if done (the server's run) delivers first.
func WaitReady(t testing.TB, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("run returned before serving: %v", err)
		default:
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := http.DefaultClient.Do(req); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready in time", url)
}
