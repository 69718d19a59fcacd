package messaging_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// proxy forwards TCP connections to a broker until frozen: then nothing passes either
// way and the connections stay open, as with a hung broker (a stopped VM, a partition
// that drops packets). Connections accepted while frozen are held the same way, like a
// listener that never speaks AMQP.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	thawed chan struct{} // closed while traffic flows
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, thawed: make(chan struct{})}
	close(p.thawed)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.drop()
	})
	return p
}

// url returns brokerURL with its host replaced by the proxy's.
func (p *proxy) url(t *testing.T, brokerURL string) string {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst, holding each chunk while the proxy is frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			thawed := p.thawed
			p.mu.Unlock()
			<-thawed
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			return
		}
	}
}

// freeze stops all traffic, keeping the connections open.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.thawed = make(chan struct{})
}

// drop closes every connection, as the broker's host going away does.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// within fails the test when f takes longer than limit, and returns f's error.
func within(t *testing.T, what string, limit time.Duration, f func() error) error {
	t.Helper()
	start := time.Now()
	err := f()
	if d := time.Since(start); d > limit {
		t.Errorf("%s took %s, want at most %s", what, d.Round(10*time.Millisecond), limit)
	}
	return err
}

// TestStopWhileTheBrokerHangs: whatever the broker does, stopping returns within its
// context, and a message whose handling was cut short is requeued, not lost.
func TestStopWhileTheBrokerHangs(t *testing.T) {
	url := testenv.RabbitMQ(t)
	node, err := url2addr(url)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("dialling a broker that never answers", func(t *testing.T) {
		px := newProxy(t, node)
		px.freeze()
		b := messaging.Connect(messaging.Config{URL: px.url(t, url), Name: t.Name(), ReconnectDelay: 100 * time.Millisecond})
		time.Sleep(300 * time.Millisecond) // in the handshake now
		_ = within(t, "Close", time.Second, func() error { b.Close(); return nil })
	})

	t.Run("redialling after the connection was lost", func(t *testing.T) {
		px := newProxy(t, node)
		b := connect(t, px.url(t, url))
		px.freeze()
		px.drop() // the client dials again, into a proxy that holds it
		eventually(t, "connection lost", func() bool { return b.Ready(context.Background()) != nil })
		time.Sleep(300 * time.Millisecond)
		_ = within(t, "Close", time.Second, func() error { b.Close(); return nil })
	})

	t.Run("an idle consumer when the broker freezes", func(t *testing.T) {
		px := newProxy(t, node)
		b := connect(t, px.url(t, url))
		c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: newRecorder().handle})
		time.Sleep(300 * time.Millisecond) // subscribed
		px.freeze()
		// Nothing is in flight: Stop has nothing to wait for, not even the broker.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := within(t, "Stop", time.Second, func() error { return c.Stop(ctx) }); err != nil {
			t.Errorf("Stop: %v", err)
		}
		_ = within(t, "Close", 3*time.Second, func() error { b.Close(); return nil })
	})

	t.Run("consuming when the broker freezes", func(t *testing.T) {
		px := newProxy(t, node)
		b := connect(t, px.url(t, url))
		p := messaging.NewPublisher(b)
		started := make(chan struct{}, 1)
		c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: func(ctx context.Context, d messaging.Delivery) error {
			started <- struct{}{}
			<-ctx.Done() // a handler that outlives the shutdown budget
			return ctx.Err()
		}})
		publish(t, p, "stuck", "work.done")
		<-started
		px.freeze()

		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		err := within(t, "Stop", time.Second, func() error { return c.Stop(ctx) })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop: %v, want the context's deadline", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_ = within(t, "Shutdown", time.Second, func() error { return b.Shutdown(ctx) })
		p.Close()

		// The broker takes the message back once the connection is gone.
		px.drop()
		eventually(t, "message requeued", func() bool { return queueDepth(t, url, workQueue.Name) == 1 })
	})
}

// TestHangJustAfterConnectingIsNoticed: a broker that hangs right after a connection is made,
// before it sends another frame, is taken as gone within three heartbeats (15 s), as one that
// hangs later is: the connection is no longer ready, and is dialled again.
func TestHangJustAfterConnectingIsNoticed(t *testing.T) {
	url := testenv.RabbitMQ(t)
	node, err := url2addr(url)
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, node)
	b := connect(t, px.url(t, url))
	px.freeze()
	start := time.Now()
	for b.Ready(context.Background()) == nil {
		if time.Since(start) > 25*time.Second {
			t.Fatalf("a broker hung right after the connect: still ready after %s (heartbeat 5 s)", time.Since(start).Round(time.Second))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("loss noticed after %s", time.Since(start).Round(100*time.Millisecond))
}

// url2addr returns the host:port of an AMQP URL.
func url2addr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}
