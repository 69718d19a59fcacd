package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
)

// rabbitMQScripts is where the Debian package keeps the real RabbitMQ scripts. The
// wrappers in /usr/sbin switch to user rabbitmq through su, which hides the node's PID
// from us; the scripts themselves run the node as the calling user.
const rabbitMQScripts = "/usr/lib/rabbitmq/bin"

// RabbitMQUser and RabbitMQPassword are the credentials of every private node.
const (
	RabbitMQUser     = "guest"
	RabbitMQPassword = "guest"
)

// rabbitMQVhostPool is how many virtual hosts a node defines at boot, so that handing
// one to a test costs nothing; more are added with rabbitmqctl, which takes seconds.
const rabbitMQVhostPool = 40

// RabbitMQNode is a private RabbitMQ broker: its own node name, loopback ports, epmd
// and folders. Stop and Start keep the data, so a test can take the broker away and
// bring it back with its durable queues and messages.
type RabbitMQNode struct {
	dir      string
	logDir   string
	name     string
	amqpPort int
	env      []string

	mu     sync.Mutex
	node   *testproc.Process // nil while stopped
	epmd   *testproc.Process
	vhosts int // vhosts handed out so far
}

// StartRabbitMQ starts a node whose files live under dir (which must exist and is
// left in place) and returns once it accepts AMQP connections. Its logs (epmd.log,
// rabbitmq.log for the start script, rabbitmq-node.log for the node) go to dir/log
// unless LogDir says otherwise. The node and its epmd get SIGTERM if this process dies.
func StartRabbitMQ(ctx context.Context, dir string, opts ...Option) (*RabbitMQNode, error) {
	if _, err := os.Stat(filepath.Join(rabbitMQScripts, "rabbitmq-server")); err != nil {
		return nil, fmt.Errorf("rabbitmq-server is not installed (run hack/install-rabbitmq.sh): %w", err)
	}
	ports, err := testproc.FreeLoopbackPorts(3)
	if err != nil {
		return nil, err
	}
	o := startOptions{logDir: filepath.Join(dir, "log")}
	for _, opt := range opts {
		opt(&o)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	n := &RabbitMQNode{
		dir:      dir,
		logDir:   o.logDir,
		name:     fmt.Sprintf("test-%x@localhost", suffix),
		amqpPort: ports[0],
	}
	if err := n.writeConfig(); err != nil {
		return nil, err
	}
	// The node appends to its logs; like the other processes' logs (testproc.Start), they
	// start empty with the node, not with each restart of it.
	for _, f := range []string{"rabbitmq-node.log", "rabbitmq-node-upgrade.log"} {
		if err := os.Truncate(filepath.Join(n.logDir, f), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	n.env = append(os.Environ(),
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(ports[0]),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(ports[1]),
		"ERL_EPMD_PORT="+strconv.Itoa(ports[2]),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+n.logDir,
		// Named after the broker, not the node: the node's name is new at every start, and
		// a log folder kept between runs (make run's) would gain a pair of files each time.
		"RABBITMQ_LOGS="+filepath.Join(n.logDir, "rabbitmq-node.log"),
		"RABBITMQ_UPGRADE_LOG="+filepath.Join(n.logDir, "rabbitmq-node-upgrade.log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"), // the node adds ".conf"
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		// Distribution (used by rabbitmqctl) on loopback too, not on every interface.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"HOME="+dir, // the Erlang cookie goes here, shared by the node and rabbitmqctl
	)
	// Our own epmd, in the foreground and on the node's private port, so that it is a
	// child we can stop by PID and no other node on the machine depends on it.
	// It serves until Close, past the ctx that bounds the start.
	epmd := exec.Command("epmd", "-port", strconv.Itoa(ports[2]), "-address", "127.0.0.1") //nolint:noctx // outlives ctx; Close stops it
	epmd.Env = n.env
	if n.epmd, err = testproc.Start(epmd, filepath.Join(n.logDir, "epmd.log")); err != nil {
		return nil, fmt.Errorf("start epmd: %w", err)
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *RabbitMQNode) writeConfig() error {
	for _, d := range []string{filepath.Join(n.dir, "mnesia"), n.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	defs, err := rabbitMQDefinitions(rabbitMQVhostPool)
	if err != nil {
		return err
	}
	defsPath := filepath.Join(n.dir, "definitions.json")
	conf := fmt.Sprintf(`listeners.tcp.default = 127.0.0.1:%d
loopback_users = none
load_definitions = %s
log.console = false
log.file.level = warning
`, n.amqpPort, defsPath)
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"definitions.json":  string(defs),
		"enabled_plugins":   "[].\n", // no management plugin: faster boot, no port 15672
		"rabbitmq-env.conf": "",      // ignore /etc/rabbitmq/rabbitmq-env.conf
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(n.dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// rabbitMQDefinitions makes the definitions file a node imports at boot: the guest user
// and a pool of virtual hosts it may use, so tests need no management API and no CLI.
func rabbitMQDefinitions(vhosts int) ([]byte, error) {
	salt := make([]byte, 4)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	// rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)).
	sum := sha256.Sum256(append(append([]byte{}, salt...), RabbitMQPassword...))
	hash := base64.StdEncoding.EncodeToString(append(salt, sum[:]...))
	defs := map[string]any{
		"users": []map[string]any{{
			"name": RabbitMQUser, "password_hash": hash,
			"hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []string{"administrator"},
		}},
	}
	var hosts, perms []map[string]any
	for i := 0; i <= vhosts; i++ {
		name := rabbitMQVhostName(i)
		hosts = append(hosts, map[string]any{"name": name})
		perms = append(perms, map[string]any{
			"user": RabbitMQUser, "vhost": name, "configure": ".*", "write": ".*", "read": ".*",
		})
	}
	defs["vhosts"], defs["permissions"] = hosts, perms
	return json.Marshal(defs)
}

// rabbitMQVhostName names vhost i; 0 is the default "/".
func rabbitMQVhostName(i int) string {
	if i == 0 {
		return "/"
	}
	return fmt.Sprintf("test-%03d", i)
}

// Start starts the node (again, after Stop) and waits until it accepts AMQP connections.
func (n *RabbitMQNode) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node != nil {
		return errors.New("rabbitmq node already running")
	}
	// The node runs until Stop: ctx bounds its start only.
	cmd := exec.Command(filepath.Join(rabbitMQScripts, "rabbitmq-server")) //nolint:noctx // outlives ctx; Stop stops it
	cmd.Env = n.env
	cmd.Dir = n.dir
	node, err := testproc.Start(cmd, filepath.Join(n.logDir, "rabbitmq.log"))
	if err != nil {
		return fmt.Errorf("start rabbitmq-server: %w", err)
	}
	n.node = node

	// An AMQP handshake is the readiness that matters to clients and costs a few
	// milliseconds; `rabbitmq-diagnostics check_port_connectivity` boots an Erlang VM
	// per call (seconds on a busy machine).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		// Each try within a second: amqp.Dial's own 30 s would outlast a ctx ended meanwhile.
		conn, err := amqp.DialConfig(n.url("/"), amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-node.Done():
			n.node = nil
			// The log folder is often a test's temporary one, gone with it: its end goes
			// with the error.
			return fmt.Errorf("rabbitmq-server exited during start; see %s, which ends:\n%s", n.logDir, logTails(n.logDir, 20))
		case <-ctx.Done():
			// A start given up (Ctrl-C in make run): a VM still booting does not heed the
			// SIGTERM Debian's script passes on, and would be waited for a minute. A node not
			// yet serving has confirmed nothing since it started, so a kill loses nothing a
			// client was told is safe: a moment's grace, then the kill.
			n.node = nil
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortedStartGrace)
			defer cancel()
			_ = node.Stop(stopCtx)
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbitmq-server not ready after 2m: %w", err)
		}
	}
}

// abortedStartGrace is how long a node whose start was given up has to stop on SIGTERM
// before it is killed.
const abortedStartGrace = 2 * time.Second

// Stop stops the node gracefully, keeping its data for Start. SIGTERM makes the
// start script stop the node the way `rabbitmqctl stop` does, without an extra VM.
func (n *RabbitMQNode) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node == nil {
		return nil
	}
	node := n.node
	n.node = nil
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// Stop also kills what the VM leaves in the process group: its helpers
	// (erl_child_setup, inet_gethost) may outlive it by a moment.
	if err := node.Stop(ctx); err != nil {
		return fmt.Errorf("rabbitmq node: %w", err)
	}
	return nil
}

// Done is closed when the node started by the last Start exits, by Stop or by itself;
// it is nil (never ready) while the node is stopped.
func (n *RabbitMQNode) Done() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node == nil {
		return nil
	}
	return n.node.Done()
}

// LogDir is the folder holding the node's logs.
func (n *RabbitMQNode) LogDir() string { return n.logDir }

// Close stops the node and its epmd. The folder is left to its owner.
func (n *RabbitMQNode) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = n.Stop(ctx)
	if n.epmd != nil {
		_ = n.epmd.Stop(ctx)
	}
}

// URL is the AMQP URL of the node's default virtual host.
func (n *RabbitMQNode) URL() string { return n.url("/") }

func (n *RabbitMQNode) url(vhost string) string {
	u := url.URL{
		Scheme: "amqp",
		User:   url.UserPassword(RabbitMQUser, RabbitMQPassword),
		Host:   net.JoinHostPort("127.0.0.1", strconv.Itoa(n.amqpPort)),
		Path:   "/" + vhost,
	}
	if vhost == "/" {
		u.Path = "/"
	}
	return u.String()
}

// NewVhost returns the URL of a virtual host no one has used yet, so callers do not
// see each other's queues.
func (n *RabbitMQNode) NewVhost(ctx context.Context) (string, error) {
	n.mu.Lock()
	n.vhosts++
	i := n.vhosts
	n.mu.Unlock()
	name := rabbitMQVhostName(i)
	if i > rabbitMQVhostPool {
		if err := n.ctl(ctx, "add_vhost", name); err != nil {
			return "", err
		}
		if err := n.ctl(ctx, "set_permissions", "-p", name, RabbitMQUser, ".*", ".*", ".*"); err != nil {
			return "", err
		}
	}
	return n.url(name), nil
}

// Ctl runs rabbitmqctl with args against the node, as a test does to change it while it
// runs (set_vm_memory_high_watermark, say).
func (n *RabbitMQNode) Ctl(ctx context.Context, args ...string) error { return n.ctl(ctx, args...) }

func (n *RabbitMQNode) ctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(rabbitMQScripts, "rabbitmqctl"), append([]string{"-q", "-n", n.name}, args...)...)
	cmd.Env = n.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmqctl %v: %w: %s", args, err, out)
	}
	return nil
}

// logTails returns the last n lines of every file in dir, each under its name.
func logTails(dir string, n int) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || e.IsDir() {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "== %s\n%s\n", e.Name(), strings.Join(lines[max(0, len(lines)-n):], "\n"))
	}
	return b.String()
}
