package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
)

// stopTimeout is how long a child may take to stop after SIGTERM before it is killed.
const stopTimeout = 30 * time.Second

// suite is what runsuite started, stopped in reverse order of start.
type suite struct {
	logDir string
	// exited receives why each child or store ended before the suite was stopped.
	exited   chan error
	children []*child
	// cleanups run after the children stopped, last added first (the stores).
	cleanups []func() error
}

// child is a process of the suite, in its own process group so that a terminal's
// Ctrl-C reaches runsuite alone and the children are stopped in order.
type child struct {
	name string
	proc *testproc.Process
}

// startChild starts bin with env added to this process's environment and its output
// to logDir/name.log. Like the stores, it runs in its own process group and gets
// SIGTERM from the kernel if runsuite dies without stopping it.
func (s *suite) startChild(name, bin string, env []string) error {
	logPath := filepath.Join(s.logDir, name+".log")
	cmd := exec.Command(bin) //nolint:noctx // runs until stop, past any context; stopChild ends it
	cmd.Env = append(os.Environ(), env...)
	proc, err := testproc.Start(cmd, logPath)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	s.children = append(s.children, &child{name: name, proc: proc})
	go func() {
		<-proc.Done()
		s.report(fmt.Errorf("%s exited early (%v); see %s", name, cmd.ProcessState, logPath))
	}()
	return nil
}

// watch reports that the store name ended once done is closed.
func (s *suite) watch(name string, done <-chan struct{}, logPath string) {
	go func() {
		<-done
		s.report(fmt.Errorf("%s exited early; see %s", name, logPath))
	}()
}

// report passes on why a child or store ended. s.exited is buffered for all of them;
// once the suite is stopping nobody reads it, and the report is dropped.
func (s *suite) report(err error) {
	select {
	case s.exited <- err:
	default:
	}
}

// stopChild sends SIGTERM, kills the child's process group after stopTimeout, and then
// kills whatever else is left in the group.
func stopChild(c *child) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := c.proc.Stop(ctx); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	return nil
}

// stop stops the children, the last started first, then runs the cleanups.
func (s *suite) stop() error {
	var errs []error
	for i := len(s.children) - 1; i >= 0; i-- {
		errs = append(errs, stopChild(s.children[i]))
	}
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		errs = append(errs, s.cleanups[i]())
	}
	return errors.Join(errs...)
}

// service is one of the shop's binaries and the database it gets.
type service struct {
	name, database string
}

// services in start order: order needs user and product to answer, the gateway all.
var services = []service{
	{"user", "users"}, {"product", "products"}, {"payment", "payments"}, {"order", "orders"},
}

// start starts the stores, the services and the gateway and returns the gateway's URL.
func (s *suite) start(ctx context.Context, o options, tmp string) (string, error) {
	for _, name := range []string{"user", "product", "order", "payment", "gateway"} {
		if _, err := os.Stat(filepath.Join(o.binDir, name)); err != nil {
			return "", fmt.Errorf("binary %s missing in %s (run `make build`, or pass -bin-dir)", name, o.binDir)
		}
	}
	if o.port != 0 {
		// Checked first: a gateway that cannot listen would only be seen once it died.
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port)))
		if err != nil {
			return "", fmt.Errorf("port %d is not free for the gateway (pass -port 0 for any free port): %w", o.port, err)
		}
		_ = l.Close()
	}
	mongoURI, err := s.startMongoDB(ctx, tmp)
	if err != nil {
		return "", err
	}
	rabbitURL, err := s.startRabbitMQ(ctx, tmp)
	if err != nil {
		return "", err
	}
	ports, err := testproc.FreeLoopbackPorts(len(services) + 1)
	if err != nil {
		return "", err
	}
	gatewayPort := ports[len(services)]
	if o.port != 0 {
		gatewayPort = o.port
	}
	urls := map[string]string{}
	for i, svc := range services {
		urls[svc.name] = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))
	}
	serviceURLs := []string{
		"USER_SERVICE_URL=" + urls["user"], "PRODUCT_SERVICE_URL=" + urls["product"],
		"ORDER_SERVICE_URL=" + urls["order"], "PAYMENT_SERVICE_URL=" + urls["payment"],
	}
	for i, svc := range services {
		env := append([]string{
			"LISTEN_HOST=127.0.0.1", // this machine only: the services' own API is not for the network
			"PORT=" + strconv.Itoa(ports[i]),
			"RABBITMQ_URL=" + rabbitURL,
			"PAYMENT_LIMIT_CENTS=" + strconv.FormatInt(o.paymentLimit, 10),
		}, serviceURLs...)
		env = append(env, storeEnv(mongoURI, svc.database)...)
		if err := s.startChild(svc.name, filepath.Join(o.binDir, svc.name), env); err != nil {
			return "", err
		}
	}
	env := append([]string{
		"LISTEN_HOST=127.0.0.1",
		"PORT=" + strconv.Itoa(gatewayPort),
		"RATE_LIMIT_REQUESTS=" + strconv.Itoa(o.rateLimit),
		"RATE_LIMIT_WINDOW=" + o.rateWindow.String(),
	}, serviceURLs...)
	if err := s.startChild("gateway", filepath.Join(o.binDir, "gateway"), env); err != nil {
		return "", err
	}
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(gatewayPort)), nil
}

// storeEnv is the environment that gives a service its database db on the MongoDB server
// at uri. The URI goes as it is: its path is where MongoDB checks credentials (the
// default authSource), and a list of hosts is no URL net/url reads; MONGODB_DATABASE names
// the database instead.
func storeEnv(uri, db string) []string {
	return []string{"MONGODB_URI=" + uri, "MONGODB_DATABASE=" + db}
}

// healthReport is the gateway's GET /health answer.
type healthReport struct {
	Status   string `json:"status"`
	Services map[string]struct {
		Status string `json:"status"`
	} `json:"services"`
}

// waitHealthy polls the gateway's /health until it answers healthy, a child dies, or
// timeout passes; the error then names what is down.
func (s *suite) waitHealthy(ctx context.Context, gatewayURL string, timeout time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	last := "the gateway does not answer"
	for {
		if report, err := getHealth(ctx, client, gatewayURL); err == nil {
			if report.Status == "healthy" {
				return nil
			}
			var down []string
			for name, svc := range report.Services {
				if svc.Status != "up" {
					down = append(down, name)
				}
			}
			sort.Strings(down)
			last = "down: " + strings.Join(down, ", ")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the suite is not healthy after %s (%s); logs in %s", timeout, last, s.logDir)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for the suite (%s)", last)
		case err := <-s.exited:
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func getHealth(ctx context.Context, client *http.Client, gatewayURL string) (*healthReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL+"/health", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var report healthReport
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		return nil, err
	}
	return &report, nil
}
