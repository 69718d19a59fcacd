// Command runsuite runs the whole shop on this machine as local processes: a
// MongoDB-wire server (MONGODB_URI when set, else FerretDB), RabbitMQ (RABBITMQ_URL when
// set, else a private node), the user, product, order and payment services and the
// gateway, each on a loopback port. It prints the gateway's URL, waits until the
// gateway's /health is healthy, and stops everything on Ctrl-C or SIGTERM, or as soon as
// one of the children dies (then it exits non-zero naming it).
//
//	make build && go run ./services/internal/cmd/runsuite  # gateway on :8080
//	go run ./services/internal/cmd/runsuite -port 0 -ready-file /tmp/gw  # free port, URL written once healthy
//	go run ./services/internal/cmd/runsuite -demo  # run hack/demo.sh against it, then stop
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// options are the command line.
type options struct {
	port         int
	rateLimit    int
	rateWindow   time.Duration
	paymentLimit int64
	binDir       string
	logDir       string
	readyFile    string
	startTimeout time.Duration
	demo         bool
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	// SIGHUP too: a closed terminal stops the suite as Ctrl-C does, with its files removed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err = run(ctx, opts)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "runsuite:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("runsuite", flag.ContinueOnError)
	fs.IntVar(&o.port, "port", 8080, "gateway port on 127.0.0.1 (0: a free port)")
	fs.IntVar(&o.rateLimit, "rate-limit", 100, "gateway rate limit: requests per client per -rate-window")
	fs.DurationVar(&o.rateWindow, "rate-window", 15*time.Minute, "gateway rate limit window")
	fs.Int64Var(&o.paymentLimit, "payment-limit-cents", 100000, "payments above this total are declined")
	fs.StringVar(&o.binDir, "bin-dir", "", "folder holding the user, product, order, payment and gateway binaries (default <repo>/bin, made by make build)")
	fs.StringVar(&o.logDir, "log-dir", "", "folder for the children's logs (default <repo>/.run/logs)")
	fs.StringVar(&o.readyFile, "ready-file", "", "write the gateway URL to this file once /health is healthy (removed on exit)")
	fs.DurationVar(&o.startTimeout, "start-timeout", 3*time.Minute, "how long the suite may take to become healthy")
	fs.BoolVar(&o.demo, "demo", false, "run hack/demo.sh against the suite once healthy, then stop and exit with its status")
	return o, fs.Parse(args)
}

func run(ctx context.Context, o options) (err error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	if o.binDir == "" {
		o.binDir = filepath.Join(root, "bin")
	}
	if o.logDir == "" {
		o.logDir = filepath.Join(root, ".run", "logs")
	}
	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return err
	}
	unlock, err := lockLogDir(o.logDir)
	if err != nil {
		return err
	}
	defer unlock()
	// The stores' data, in the locked folder: a suite killed before it could remove it (kill
	// -9, the OOM killer) leaves it for the next run to remove, not in /tmp for good.
	tmp := filepath.Join(o.logDir, ".data")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	fmt.Printf("logs: %s\n", o.logDir)

	s := &suite{logDir: o.logDir, exited: make(chan error, 16)}
	defer func() {
		fmt.Println("stopping the suite")
		err = errors.Join(err, s.stop())
		if o.readyFile != "" {
			_ = os.Remove(o.readyFile)
		}
		err = errors.Join(err, os.RemoveAll(tmp))
		fmt.Println("suite stopped")
	}()

	gatewayURL, err := s.start(ctx, o, tmp)
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C (or SIGTERM, SIGHUP) while a store started: what failed then is the
			// interrupt's doing, and the client's "context canceled" would not say so.
			return errors.New("interrupted while starting the suite")
		}
		return err
	}
	fmt.Printf("gateway: %s (waiting for /health)\n", gatewayURL)
	if err := s.waitHealthy(ctx, gatewayURL, o.startTimeout); err != nil {
		return err
	}
	fmt.Printf("suite healthy: %s\n", gatewayURL)
	if o.readyFile != "" {
		if err := writeFileAtomic(o.readyFile, gatewayURL+"\n"); err != nil {
			return err
		}
	}
	if o.demo {
		return s.runDemo(ctx, root, gatewayURL, o.paymentLimit)
	}
	fmt.Println("press Ctrl-C to stop")
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.exited:
		return err
	}
}

// runDemo runs hack/demo.sh against the gateway, stopping early if a child dies. Stopped
// early, or interrupted, the script gets SIGTERM, so that it removes what it made (its trap),
// and is killed only if it has not ended demoStopGrace later.
func (s *suite) runDemo(ctx context.Context, root, gatewayURL string, paymentLimit int64) error {
	// stop ends the script as an interrupt does (cmd.Cancel, then cmd.WaitDelay).
	demoCtx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.CommandContext(demoCtx, filepath.Join(root, "hack", "demo.sh"), gatewayURL)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = demoStopGrace
	cmd.Env = append(os.Environ(), fmt.Sprintf("PAYMENT_LIMIT_CENTS=%d", paymentLimit))
	// The suite is on loopback: a proxy the environment names for other hosts must not get
	// the demo's requests (curl, unlike Go, sends loopback ones to it too).
	for _, name := range []string{"NO_PROXY", "no_proxy"} {
		cmd.Env = append(cmd.Env, name+"="+strings.Trim(os.Getenv(name)+",127.0.0.1,localhost,::1", ","))
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	var demoErr error // written before done is closed
	done := make(chan struct{})
	go func() { demoErr = cmd.Wait(); close(done) }()
	select {
	case <-done:
		switch {
		case demoErr != nil && ctx.Err() != nil:
			return errors.New("demo interrupted: not every step ran") // not its failure
		case demoErr != nil:
			return fmt.Errorf("demo failed: %w", demoErr)
		}
		return nil
	case err := <-s.exited:
		stop()
		<-done
		return err
	}
}

// demoStopGrace is how long the demo script has to end on SIGTERM.
const demoStopGrace = 5 * time.Second

// writeFileAtomic writes content to path through a rename, so a reader polling for the
// file never sees it half written.
func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lockLogDir makes sure one suite at a time uses the log folder dir: a second would
// truncate the first one's logs, and its gateway's port, checked free before the stores
// start, may be the first one's by the time it binds. The lock is the kernel's (flock), so
// it goes with the process, however it ends.
func lockLogDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		return nil, fmt.Errorf("another suite (pid %s) is running with its logs in %s: stop it first, or give this one -log-dir and -port",
			strings.TrimSpace(string(holder)), dir)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { _ = f.Close() }, nil
}
