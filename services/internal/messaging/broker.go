package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// ErrDown is returned while no connection to the broker is open.
var ErrDown = errors.New("message broker unavailable")

// Config says where the broker is and what to declare on it.
type Config struct {
	// URL is the AMQP URL, e.g. amqp://guest:guest@localhost:5672/.
	URL string
	// Name is shown by the broker as the connection's name (the service name, and the
	// connection's role when the service has several).
	Name string
	// AppID is the app_id of the messages published on the connection: the name of the
	// service that publishes them, which their consumers may read. Empty means Name.
	AppID string
	// Topology is declared on every new connection.
	Topology Topology
	// ReconnectDelay is the pause between connection attempts; default 500ms.
	ReconnectDelay time.Duration
	// Logger receives connection changes; default slog.Default().
	Logger *slog.Logger
}

// Timeouts of the connection's life. None is the library's default (30 s for a dial and
// its handshake), which would keep a stopping process alive well past its shutdown
// budget while the broker hangs.
const (
	// dialTimeout bounds the TCP connect.
	dialTimeout = 5 * time.Second
	// handshakeTimeout bounds the AMQP handshake and the topology's declaration.
	handshakeTimeout = 10 * time.Second
	// heartbeat is the connection's heartbeat interval: a broker silent for three of
	// them is taken as gone.
	heartbeat = 5 * time.Second
	// closeTimeout bounds Close's wait for the broker's close-ok.
	closeTimeout = 2 * time.Second
)

// Broker keeps one connection to RabbitMQ open for as long as it runs, dialling again
// whenever the connection drops, and declares the topology on each new connection.
//
// Why not amqp091-go's own recovery (Config.Recovery): it reopens the same *Channel
// with delivery tags restarting at 1, so an ack for a delivery received before the drop
// lands on the new channel and can acknowledge a different, unprocessed message, and
// deliveries buffered from the old channel are handed out after recovery with stale
// tags. Here each connection is a fresh session: deliveries are acked on the channel
// that delivered them, and an ack for a dead channel fails instead of hitting another
// message; the broker redelivers what was not acked.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	closeCtx context.Context  // set by Shutdown: bounds the close handshake
	conn     *amqp.Connection // nil while down
	up       chan struct{}    // closed while conn is set
	down     chan struct{}    // closed when conn is lost; a fresh one per connection

	// conflicts are the topology's queues the last declaration left out, by name: they
	// exist on the broker with other arguments (ErrConflict).
	conflicts map[string]error
}

// Connect starts keeping a connection to cfg.URL. It returns at once; Ready reports
// whether the broker is reachable and WaitReady waits for it. A URL the client cannot
// read is logged (without its password) and never dialled: configurations check it
// first (Settings.Validate).
func Connect(cfg Config) *Broker {
	if cfg.ReconnectDelay <= 0 {
		cfg.ReconnectDelay = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AppID == "" {
		cfg.AppID = cfg.Name
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "amqp"),
		cancel: cancel,
		done:   make(chan struct{}),
		up:     make(chan struct{}),
	}
	go b.run(ctx)
	return b
}

func (b *Broker) run(ctx context.Context) {
	defer close(b.done)
	if err := storeuri.CheckAMQP(b.cfg.URL); err != nil {
		// It would fail the same way for ever.
		b.log.Error("broker URL unusable, not connecting", "url", storeuri.RedactURL(b.cfg.URL), "error", err)
		return
	}
	wasDown := false
	refused := 0 // declarations failed in a row
	for ctx.Err() == nil {
		conn, sock, err := b.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := b.cfg.ReconnectDelay
			switch {
			case errors.Is(err, errDeclare):
				// The broker answers and refuses the topology: most often an exchange
				// someone declared with other settings, which lasts until they remove it.
				// Each attempt costs the broker a connection and an error: pause longer
				// and longer, as a subscription does, and say it loudly.
				refused++
				wait = retryDelay(b.cfg.ReconnectDelay, maxResubscribeDelay, refused)
				msg := "topology not declared, connecting again"
				if errors.Is(err, ErrConflict) {
					msg = "topology conflicts with the broker's (declared by someone else with other settings), connecting again"
				}
				b.log.Error(msg, "error", storeuri.RedactError(err, b.cfg.URL), "attempt", refused, "retry_in", wait)
			case !wasDown:
				b.log.Warn("broker unreachable, retrying", "error", storeuri.RedactError(err, b.cfg.URL))
				wasDown = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
				continue
			}
		}
		wasDown = false
		refused = 0
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		down := b.setConn(conn)
		b.log.Info("broker connected")
		select {
		case <-ctx.Done():
			b.clearConn(down)
			b.closeConn(conn, sock)
			return
		case err := <-closed:
			b.clearConn(down)
			b.log.Warn("broker connection lost", "error", err)
		}
	}
}

// closeConn closes conn with the AMQP handshake, waiting for the broker's reply at most
// closeTimeout, and no longer than Shutdown's context: then the socket is closed under
// it, which ends every call still waiting on the connection.
func (b *Broker) closeConn(conn *amqp.Connection, sock net.Conn) {
	b.mu.Lock()
	closeCtx := b.closeCtx
	b.mu.Unlock()
	if closeCtx == nil {
		closeCtx = context.Background()
	}
	stop := context.AfterFunc(closeCtx, func() { _ = sock.Close() })
	defer stop()
	_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
}

// dial opens a connection and declares the topology on it. ctx's end cuts it short at
// any point: the TCP connect, the AMQP handshake (bounded by handshakeTimeout too, as a
// broker that accepts and never answers would otherwise hold it for the library's 30 s)
// and the declarations. It returns the socket too, for closeConn.
func (b *Broker) dial(ctx context.Context) (*amqp.Connection, net.Conn, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(b.cfg.Name)
	var sock net.Conn
	stop := func() bool { return false }
	defer func() { stop() }()
	conn, err := amqp.DialConfig(b.cfg.URL, amqp.Config{Heartbeat: heartbeat, Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The library clears the deadline once the handshake is done.
			if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
				_ = c.Close()
				return nil, err
			}
			sock = c
			stop = context.AfterFunc(ctx, func() { _ = c.Close() })
			return c, nil
		}})
	if err != nil {
		return nil, nil, err
	}
	// The declarations are calls without a deadline of their own: the handshake's end
	// cleared the socket's, so bound them again.
	_ = sock.SetDeadline(time.Now().Add(handshakeTimeout))
	err = b.declare(conn)
	if err == nil {
		// Writes have no deadline from here on. The read deadline becomes the heartbeat's,
		// which the library moves on at every frame it reads: cleared, a broker that went
		// silent before its next frame (hung just after the connect) would never be noticed.
		err = errors.Join(sock.SetWriteDeadline(time.Time{}), sock.SetReadDeadline(time.Now().Add(3*heartbeat)))
	}
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, sock, nil
}

// errDeclare marks dial's failures to declare the topology on a connection it made.
var errDeclare = errors.New("declare topology")

// declare declares the topology on conn, on channels of its own. A queue that exists on
// the broker with other arguments is left out and recorded (conflict); the rest is
// declared.
func (b *Broker) declare(conn *amqp.Connection) error {
	conflicts, err := b.cfg.Topology.declare(conn)
	if err != nil {
		return fmt.Errorf("%w: %w", errDeclare, err)
	}
	b.setConflicts(conflicts)
	return nil
}

// setConflicts records the queues the last declaration left out, logging those new to
// it at ERROR (a configuration conflict someone must resolve) and those resolved since.
func (b *Broker) setConflicts(conflicts map[string]error) {
	b.mu.Lock()
	old := b.conflicts
	b.conflicts = conflicts
	b.mu.Unlock()
	for name, err := range conflicts {
		if was, ok := old[name]; !ok || was.Error() != err.Error() {
			b.log.Error("queue declared on the broker by someone else with other arguments: not consumed, and no "+
				"binding made, until it is removed", "queue", name, "error", err)
		}
	}
	for name := range old {
		if _, ok := conflicts[name]; !ok {
			b.log.Info("queue declared, its conflict resolved", "queue", name)
		}
	}
}

// conflict returns why queue was left out of the last declaration, or nil.
func (b *Broker) conflict(queue string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conflicts[queue]
}

func (b *Broker) setConn(conn *amqp.Connection) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn = conn
	b.down = make(chan struct{})
	close(b.up)
	return b.down
}

func (b *Broker) clearConn(down chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn = nil
	b.up = make(chan struct{})
	close(down)
}

// session waits until a connection is open and returns it with a channel closed when
// that connection is lost.
func (b *Broker) session(ctx context.Context) (*amqp.Connection, <-chan struct{}, error) {
	for {
		b.mu.Lock()
		conn, up, down := b.conn, b.up, b.down
		b.mu.Unlock()
		if conn != nil {
			return conn, down, nil
		}
		select {
		case <-up:
		case <-b.done:
			return nil, nil, ErrDown
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: %w", ErrDown, ctx.Err())
		}
	}
}

// Ready returns nil while a connection is open, else ErrDown; it fits health.Check.
func (b *Broker) Ready(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil || b.conn.IsClosed() {
		return ErrDown
	}
	return nil
}

// WaitReady waits until a connection is open or ctx ends.
func (b *Broker) WaitReady(ctx context.Context) error {
	_, _, err := b.session(ctx)
	return err
}

// Shutdown closes the connection and stops reconnecting. It returns when ctx ends at
// the latest, the connection then dropped without waiting for the broker (which requeues
// whatever was delivered and not acknowledged). Stop consumers first so their in-flight
// work can still be acknowledged.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closeCtx == nil {
		b.closeCtx = ctx
	}
	b.mu.Unlock()
	b.cancel()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close is Shutdown bounded by closeTimeout.
func (b *Broker) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = b.Shutdown(ctx)
}
