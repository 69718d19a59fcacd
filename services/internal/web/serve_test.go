package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestServeGracefulShutdown cancels the server's context while a request is in flight:
// the request must complete, new connections must be refused, and Serve return nil.
func TestServeGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})
	cfg := config.Base{ShutdownTimeout: 5 * time.Second, ReadTimeout: time.Second, WriteTimeout: 2 * time.Second}
	srv := startServing(t, h, cfg, logging.Discard())
	url := srv.url + "/"
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
	srv.cancel()

	if got := <-answered; got != "done" {
		t.Errorf("in-flight request got %q, want it to finish", got)
	}
	if err := srv.wait(t, 5*time.Second, "Serve did not return after shutdown"); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if resp, err := http.Get(url); err == nil {
		_ = resp.Body.Close()
		t.Error("server still accepts connections after shutdown")
	}
}

func TestServeShutdownDeadline(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { close(started); <-release })
	srv := startServing(t, h, config.Base{ShutdownTimeout: 100 * time.Millisecond}, logging.Discard())
	go func() {
		// Held by the handler past the deadline; whatever it gets in the end is moot.
		if resp, err := http.Get(srv.url + "/"); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-started
	srv.cancel()
	if err := srv.wait(t, 3*time.Second, "Serve waited past its shutdown deadline"); err == nil {
		t.Error("Serve = nil, want the missed shutdown deadline reported")
	}
}

// TestShutdownCutIsNotTheClients: a request still running when the shutdown runs out of time
// is answered (for the log and the metrics: its connection is closed) as cut short by the
// shutdown, 503, not as one its client abandoned (499); a request whose client did go is
// still 499.
func TestShutdownCutIsNotTheClients(t *testing.T) {
	var logs testproc.Buffer
	logger := logging.NewTo(&logs, "test", slog.LevelInfo)
	started := make(chan struct{}, 2)
	mux := web.NewMux(logger, nil)
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		web.RespondError(w, r, fmt.Errorf("waiting: %w", r.Context().Err()))
	})
	srv := startServing(t, mux, config.Base{ShutdownTimeout: 200 * time.Millisecond}, logger)
	url := srv.url + "/wait"

	// A client that gives up.
	cctx, ccancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(cctx, "GET", url, nil)
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-started
	ccancel()
	<-gone
	// A client that waits, cut short by the shutdown.
	go func() {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-started
	srv.cancel()
	if err := srv.wait(t, 5*time.Second, "Serve did not return"); err == nil {
		t.Error("Serve = nil, want the missed shutdown deadline reported")
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), `"msg":"request"`) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	for _, want := range []string{`"status":499`, `"status":503`, "request abandoned by the client", "request cut short by the shutdown"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("logs hold %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}
}

// serving is a server web.ServeListener runs on a loopback port until cancel.
type serving struct {
	url    string // http://host:port
	cancel context.CancelFunc
	served chan error
}

// startServing serves h with cfg on a free loopback port.
func startServing(t *testing.T, h http.Handler, cfg config.Base, logger *slog.Logger) *serving {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{url: "http://" + ln.Addr().String(), cancel: cancel, served: make(chan error, 1)}
	go func() { s.served <- web.ServeListener(ctx, ln, h, cfg, logger) }()
	return s
}

// wait returns what web.ServeListener returned, failing t with msg when that takes longer
// than within.
func (s *serving) wait(t *testing.T, within time.Duration, msg string) error {
	t.Helper()
	select {
	case err := <-s.served:
		return err
	case <-time.After(within):
		t.Fatal(msg)
		return nil
	}
}
