package web_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestServeGracefulShutdown cancels the server's context while a request is in flight:
// the request must complete, new connections must be refused, and Serve return nil.
func TestServeGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})
	cfg := config.Base{ShutdownTimeout: 5 * time.Second, ReadTimeout: time.Second, WriteTimeout: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- web.ServeListener(ctx, ln, h, cfg, logging.Discard()) }()

	url := "http://" + ln.Addr().String() + "/"
	answered := make(chan string, 1)
	go func() {
		res, err := http.Get(url)
		if err != nil {
			answered <- "error: " + err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		answered <- string(b)
	}()
	<-started
	cancel()

	if got := <-answered; got != "done" {
		t.Errorf("in-flight request got %q, want it to finish", got)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
	if resp, err := http.Get(url); err == nil {
		_ = resp.Body.Close()
		t.Error("server still accepts connections after shutdown")
	}
}

func TestServeShutdownDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { close(started); <-release })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- web.ServeListener(ctx, ln, h, config.Base{ShutdownTimeout: 100 * time.Millisecond}, logging.Discard())
	}()
	go func() {
		// Held by the handler past the deadline; whatever it gets in the end is moot.
		if resp, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-started
	cancel()
	select {
	case err := <-served:
		if err == nil {
			t.Error("Serve = nil, want the missed shutdown deadline reported")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve waited past its shutdown deadline")
	}
}
