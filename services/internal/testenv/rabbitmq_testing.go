package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// sharedRabbitMQ is the node every test of one test binary shares.
var sharedRabbitMQ struct {
	once sync.Once
	node *RabbitMQNode
	dir  string
	err  error
}

// RabbitMQ returns the AMQP URL of a virtual host of its own for this test, on a node
// shared by the test binary and started on first use. When RABBITMQ_URL is set, that
// broker is used instead, and a fresh virtual host is made there per test through its
// management API: RABBITMQ_MANAGEMENT_URL (http://user:pass@host:15672), by default the
// URL's host on port 15672 with the URL's user. Tests sharing one virtual host would take
// each other's messages.
//
// The node is stopped by Stop (TestMain: testenv.Main(m)); should the binary die
// first, the kernel stops it anyway.
func RabbitMQ(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if external := os.Getenv("RABBITMQ_URL"); external != "" {
		u, err := externalRabbitMQVhost(ctx, t.Name(), external, os.Getenv("RABBITMQ_MANAGEMENT_URL"))
		if err != nil {
			t.Fatalf("RABBITMQ_URL: %v", err)
		}
		return u
	}
	s := &sharedRabbitMQ
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "rabbitmq-")
		if s.err == nil {
			s.node, s.err = StartRabbitMQ(ctx, s.dir)
			OnStop(stopSharedRabbitMQ)
		}
	})
	if s.err != nil {
		t.Fatalf("start RabbitMQ: %v", s.err)
	}
	u, err := s.node.NewVhost(ctx)
	if err != nil {
		t.Fatalf("RabbitMQ vhost: %v", err)
	}
	return u
}

// stopSharedRabbitMQ stops the node RabbitMQ started and removes its files.
func stopSharedRabbitMQ() {
	s := &sharedRabbitMQ
	if s.node != nil {
		s.node.Close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// NewRabbitMQNode starts a node for this test alone, for tests that stop and start
// the broker. It is closed when the test ends.
func NewRabbitMQNode(t testing.TB) *RabbitMQNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n, err := StartRabbitMQ(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("start RabbitMQ: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

// externalRabbitMQVhost makes a vhost named after the test through the management API at
// mgmtURL, or, when that is empty, at the AMQP URL's host on port 15672 with its user.
func externalRabbitMQVhost(ctx context.Context, testName, amqpURL, mgmtURL string) (string, error) {
	au, err := url.Parse(amqpURL)
	if err != nil {
		return "", err
	}
	mu, err := managementURL(au, mgmtURL)
	if err != nil {
		return "", err
	}
	vhost := fmt.Sprintf("test-%s-%d", strings.NewReplacer("/", "-", " ", "_").Replace(testName), time.Now().UnixNano())
	user := amqpUser(au).Username()
	put := func(path, body string) error {
		u := *mu
		// path is escaped (a vhost keeps a subtest name's ' or ,): Path is its unescaped
		// form, so that RawPath is sent as it is rather than escaped again.
		u.RawPath = strings.TrimSuffix(mu.EscapedPath(), "/") + path
		unescaped, err := url.PathUnescape(u.RawPath)
		if err != nil {
			return err
		}
		u.Path = unescaped
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%w (RABBITMQ_MANAGEMENT_URL names the management API)", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("PUT %s: %s (RABBITMQ_MANAGEMENT_URL names the management API)", u.Redacted(), resp.Status)
		}
		return nil
	}
	if err := put("/api/vhosts/"+url.PathEscape(vhost), `{}`); err != nil {
		return "", err
	}
	if err := put("/api/permissions/"+url.PathEscape(vhost)+"/"+url.PathEscape(user),
		`{"configure":".*","write":".*","read":".*"}`); err != nil {
		return "", err
	}
	au.Path, au.RawPath = "/"+vhost, "/"+url.PathEscape(vhost)
	return au.String(), nil
}

// managementURL is mgmtURL parsed or, when it is empty, the management API of the broker at
// the AMQP URL au: its host on port 15672, with its user.
func managementURL(au *url.URL, mgmtURL string) (*url.URL, error) {
	if mgmtURL != "" {
		return url.Parse(mgmtURL)
	}
	return &url.URL{Scheme: "http", User: amqpUser(au), Host: net.JoinHostPort(au.Hostname(), "15672")}, nil
}

// amqpUser is the user the client logs in as at au: its userinfo or, when it has none,
// guest:guest, the client's default.
func amqpUser(au *url.URL) *url.Userinfo {
	if au.User == nil {
		return url.UserPassword("guest", "guest")
	}
	return au.User
}

// rabbitMQChannel opens a connection and a channel to the broker at url; the caller
// closes the connection (tests poll with it, so it must not wait for the test's end).
func rabbitMQChannel(t testing.TB, url string) (*amqp.Channel, func()) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial RabbitMQ: %v", err)
	}
	closeConn := func() { _ = conn.Close() }
	ch, err := conn.Channel()
	if err != nil {
		closeConn()
		t.Fatalf("RabbitMQ channel: %v", err)
	}
	return ch, closeConn
}

// RabbitMQTake removes and returns the messages ready in queue on the broker at url.
func RabbitMQTake(t testing.TB, url, queue string) []amqp.Delivery {
	t.Helper()
	ch, closeConn := rabbitMQChannel(t, url)
	defer closeConn()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// RabbitMQQueueDepth returns how many messages are ready in queue (not counting those
// a consumer holds unacknowledged).
func RabbitMQQueueDepth(t testing.TB, url, queue string) int {
	t.Helper()
	ch, closeConn := rabbitMQChannel(t, url)
	defer closeConn()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect queue %s: %v", queue, err)
	}
	return q.Messages
}
