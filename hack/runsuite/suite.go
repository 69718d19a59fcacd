package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopTimeout is how long a child may take to stop after SIGTERM before it is killed.
const stopTimeout = 30 * time.Second

// suite is what runsuite started, stopped in reverse order of start.
type suite struct {
	logDir string
	// exited receives each child that ends before the suite is stopped.
	exited   chan *child
	children []*child
	// cleanups run after the children stopped, last added first (the stores).
	cleanups []func() error
}

// child is a process of the suite, in its own process group so that a terminal's
// Ctrl-C reaches runsuite alone and the children are stopped in order.
type child struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// exitError says that c ended by itself.
func (c *child) exitError() error {
	return fmt.Errorf("%s exited early (%v); see %s", c.name, c.cmd.ProcessState, c.logPath)
}

// startChild starts bin with env added to this process's environment, its output to
// logDir/name.log; stdout, when not nil, takes the standard output instead.
func (s *suite) startChild(name, bin string, args, env []string, stdout *os.File) (*child, error) {
	logPath := filepath.Join(s.logDir, name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = out.Close() }() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	// Pdeathsig: the kernel ends the child if runsuite dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	errc := make(chan error)
	childStarter <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	s.children = append(s.children, c)
	go func() {
		_ = cmd.Wait()
		close(c.done)
		// Buffered for every child; once the suite is stopping nobody reads it.
		select {
		case s.exited <- c:
		default:
		}
	}()
	return c, nil
}

// childStarter runs process starts on one locked OS thread that never exits:
// Pdeathsig fires when the thread that started the child ends, not the process.
var childStarter = func() chan func() {
	c := make(chan func())
	go func() {
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
}()

// stopChild sends SIGTERM, kills the child's process group after stopTimeout, and then
// kills whatever else is left in the group (grandchildren such as Erlang's helpers).
func stopChild(c *child) error {
	var err error
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		err = fmt.Errorf("%s did not stop within %s; killed", c.name, stopTimeout)
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
	return err
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
func (s *suite) start(ctx context.Context, o options, root, tmp string) (string, error) {
	for _, name := range []string{"user", "product", "order", "payment", "gateway"} {
		if _, err := os.Stat(filepath.Join(o.binDir, name)); err != nil {
			return "", fmt.Errorf("binary %s missing in %s (run `make build`, or pass -bin-dir)", name, o.binDir)
		}
	}
	if o.port != 0 {
		// Checked first: a gateway that cannot listen would only be seen once it died.
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port)))
		if err != nil {
			return "", fmt.Errorf("port %d is not free for the gateway (pass -port 0 for any free port): %w", o.port, err)
		}
		_ = l.Close()
	}
	mongoURI, err := s.startMongoDB(ctx, root, tmp)
	if err != nil {
		return "", err
	}
	rabbitURL, err := s.startRabbitMQ(ctx, tmp)
	if err != nil {
		return "", err
	}
	ports, err := freeLoopbackPorts(len(services) + 1)
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
		dbURI, err := withDatabase(mongoURI, svc.database)
		if err != nil {
			return "", err
		}
		env := append([]string{
			"PORT=" + strconv.Itoa(ports[i]),
			"MONGODB_URI=" + dbURI,
			"RABBITMQ_URL=" + rabbitURL,
			"PAYMENT_LIMIT_CENTS=" + strconv.FormatInt(o.paymentLimit, 10),
		}, serviceURLs...)
		if _, err := s.startChild(svc.name, filepath.Join(o.binDir, svc.name), nil, env, nil); err != nil {
			return "", err
		}
	}
	env := append([]string{
		"PORT=" + strconv.Itoa(gatewayPort),
		"RATE_LIMIT_REQUESTS=" + strconv.Itoa(o.rateLimit),
		"RATE_LIMIT_WINDOW=" + o.rateWindow.String(),
	}, serviceURLs...)
	if _, err := s.startChild("gateway", filepath.Join(o.binDir, "gateway"), nil, env, nil); err != nil {
		return "", err
	}
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(gatewayPort)), nil
}

// withDatabase returns uri with db as its path, keeping its credentials and options.
func withDatabase(uri, db string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", errors.New("MONGODB_URI is not a valid URL") // the error may quote a password
	}
	u.Path, u.RawPath = "/"+db, ""
	return u.String(), nil
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
		case c := <-s.exited:
			return c.exitError()
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

// freeLoopbackPorts returns count distinct ports free on 127.0.0.1 right now.
func freeLoopbackPorts(count int) ([]int, error) {
	var ports []int
	for range count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		// Held open until all are chosen, so no port is returned twice.
		defer func() { _ = l.Close() }()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
