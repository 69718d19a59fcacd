package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// storeStartTimeout bounds how long FerretDB or RabbitMQ may take to accept connections.
const storeStartTimeout = 2 * time.Minute

// startMongoDB returns MONGODB_URI when set, else starts FerretDB with its files in tmp
// and returns its URI.
func (s *suite) startMongoDB(ctx context.Context, root, tmp string) (string, error) {
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		fmt.Println("mongodb: MONGODB_URI from the environment")
		return uri, nil
	}
	bin, err := ferretDBBinary(ctx, root)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(tmp, "ferretdb")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// The server prints its URI on stdout once it listens; its log goes to stderr.
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer func() { _ = r.Close() }()
	_, err = s.startChild("ferretdb", bin, []string{"-listen-addr", "127.0.0.1:0", "-data-dir", dir, "-log-level", "warn"}, nil, w)
	_ = w.Close() // the child holds its own descriptor
	if err != nil {
		return "", err
	}
	uri, err := s.readURI(ctx, r)
	if err != nil {
		return "", err
	}
	fmt.Printf("mongodb: FerretDB at %s\n", uri)
	return uri, nil
}

// ferretDBBinary is $FERRETDB_BIN, else <root>/bin/ferretdb, built from hack/tools when
// missing (as `make test` does).
func ferretDBBinary(ctx context.Context, root string) (string, error) {
	if p := os.Getenv("FERRETDB_BIN"); p != "" {
		return p, nil
	}
	bin := filepath.Join(root, "bin", "ferretdb")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	fmt.Println("building bin/ferretdb from hack/tools")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./ferretdb")
	cmd.Dir = filepath.Join(root, "hack", "tools")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build ferretdb: %w\n%s", err, out)
	}
	return bin, nil
}

// rabbitMQScripts is where the Debian package keeps RabbitMQ's scripts; unlike the
// wrappers in /usr/sbin they run the node as the calling user, as our child.
const rabbitMQScripts = "/usr/lib/rabbitmq/bin"

// startRabbitMQ returns RABBITMQ_URL when set, else starts a private node (its own
// name, loopback ports, epmd and folders under tmp) and returns its URL.
func (s *suite) startRabbitMQ(ctx context.Context, tmp string) (string, error) {
	if u := os.Getenv("RABBITMQ_URL"); u != "" {
		fmt.Println("rabbitmq: RABBITMQ_URL from the environment")
		return u, nil
	}
	if _, err := os.Stat(filepath.Join(rabbitMQScripts, "rabbitmq-server")); err != nil {
		return "", fmt.Errorf("rabbitmq-server is not installed (run hack/install-rabbitmq.sh, or set RABBITMQ_URL): %w", err)
	}
	dir := filepath.Join(tmp, "rabbitmq")
	for _, d := range []string{"mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	ports, err := freeLoopbackPorts(3)
	if err != nil {
		return "", err
	}
	amqpPort, distPort, epmdPort := ports[0], ports[1], ports[2]
	files := map[string]string{
		// The default guest user may connect from loopback only, which is all we use.
		"rabbitmq.conf": fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nlog.console = false\nlog.file.level = warning\n", amqpPort),
		// No management plugin: faster boot, no port 15672.
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "", // ignore /etc/rabbitmq/rabbitmq-env.conf
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	env := []string{
		fmt.Sprintf("RABBITMQ_NODENAME=shop-%d@localhost", amqpPort),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(amqpPort),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(distPort),
		"ERL_EPMD_PORT=" + strconv.Itoa(epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq"), // the node adds ".conf"
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"HOME=" + dir, // the Erlang cookie goes here
	}
	// Our own epmd on the node's private port: a child we stop, shared with no other node.
	// Started first, so it is stopped last (children stop in reverse order).
	if _, err := s.startChild("epmd", "epmd", []string{"-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1"}, env, nil); err != nil {
		return "", err
	}
	// SIGTERM makes the start script stop the node gracefully, as `rabbitmqctl stop` does.
	node, err := s.startChild("rabbitmq", filepath.Join(rabbitMQScripts, "rabbitmq-server"), nil, env, nil)
	if err != nil {
		return "", err
	}
	amqpURL := (&url.URL{
		Scheme: "amqp", User: url.UserPassword("guest", "guest"),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(amqpPort)), Path: "/",
	}).String()
	// An AMQP handshake is the readiness that matters to the services.
	deadline := time.Now().Add(storeStartTimeout)
	for {
		conn, err := amqp.Dial(amqpURL)
		if err == nil {
			_ = conn.Close()
			fmt.Printf("rabbitmq: private node on 127.0.0.1:%d\n", amqpPort)
			return amqpURL, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("rabbitmq not ready after %s: %v; see %s", storeStartTimeout, err, node.logPath)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case c := <-s.exited:
			return "", c.exitError()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readURI reads the first line of r, FerretDB's URI, within storeStartTimeout.
func (s *suite) readURI(ctx context.Context, r *os.File) (string, error) {
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		if sc.Scan() {
			line <- strings.TrimSpace(sc.Text())
		}
		close(line)
	}()
	select {
	case uri := <-line:
		if !strings.HasPrefix(uri, "mongodb://") {
			return "", fmt.Errorf("ferretdb did not start; see %s", filepath.Join(s.logDir, "ferretdb.log"))
		}
		return uri, nil
	case c := <-s.exited:
		return "", c.exitError()
	case <-time.After(storeStartTimeout):
		return "", fmt.Errorf("ferretdb did not listen within %s", storeStartTimeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
