// Package testenv gives tests (and local runs) the real parts the services talk to.
//
// For MongoDB: the server in MONGODB_URI when that is set, else a FerretDB server (the
// MongoDB wire protocol over SQLite) started from the binary that hack/tools builds, on
// a free loopback port in a temporary folder. Tests call MongoDB(t) for a fresh,
// dropped-afterwards database; a test package's TestMain calls Main(m) so the shared
// server is stopped when its tests end. StartFerretDB is the same server for programs.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
)

// FerretDB is a running FerretDB server process.
type FerretDB struct {
	// URI is the server's connection string, e.g. "mongodb://127.0.0.1:40123/".
	URI string

	proc *testproc.Process
	pid  int
}

// Option changes how StartFerretDB or StartRabbitMQ runs its server.
type Option func(*startOptions)

type startOptions struct {
	logDir string
}

// LogDir makes the server write its logs into dir (created if missing) instead of
// its own folder, e.g. next to the logs of the programs that use it.
func LogDir(dir string) Option {
	return func(o *startOptions) { o.logDir = dir }
}

// startTimeout bounds how long a FerretDB server may take to listen.
const startTimeout = 60 * time.Second

// StartFerretDB starts a FerretDB server storing its SQLite files in dir, listening on
// a free loopback port, and returns once it accepts connections. Its log goes to
// dir/ferretdb.log, or into the folder LogDir names. Stop it with Stop; it also gets
// SIGTERM if this process dies.
func StartFerretDB(ctx context.Context, dir string, opts ...Option) (*FerretDB, error) {
	o := startOptions{logDir: dir}
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := FerretDBBinary(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(o.logDir, "ferretdb.log")

	// The server runs until Stop: ctx bounds its start only.
	cmd := exec.Command(bin, "-listen-addr", "127.0.0.1:0", "-data-dir", dir, "-log-level", "warn") //nolint:noctx // outlives ctx; Stop stops it
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	proc, err := testproc.Start(cmd, logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	f := &FerretDB{proc: proc, pid: cmd.Process.Pid}

	// The server prints its URI on one line once it listens.
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- strings.TrimSpace(sc.Text())
		}
		close(line)
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case uri, ok := <-line:
		if ok && strings.HasPrefix(uri, "mongodb://") {
			f.URI = uri
			return f, nil
		}
		_ = f.Stop()
		return nil, fmt.Errorf("ferretdb did not start; see %s", logPath)
	case <-timer.C:
		_ = f.Stop()
		return nil, fmt.Errorf("ferretdb did not listen within %s; see %s", startTimeout, logPath)
	case <-ctx.Done():
		_ = f.Stop()
		return nil, ctx.Err()
	}
}

// Done is closed once the server process has exited, by Stop or by itself.
func (f *FerretDB) Done() <-chan struct{} { return f.proc.Done() }

// Freeze stops the server's process (SIGSTOP) until Thaw. Its sockets stay open and the
// kernel still accepts connections on its port, but nothing answers: to its clients, a
// database stalled on its disk or in a paused machine, the outage in which every
// operation runs out its whole timeout (a stopped server, whose port refuses
// connections, fails them at once).
func (f *FerretDB) Freeze() error {
	if err := f.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	// The kernel stops the process's threads one by one after kill returns; until the
	// last has stopped, a request may still be answered.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stopped, err := allThreadsStopped(f.pid)
		switch {
		case err != nil:
			return fmt.Errorf("ferretdb: %w", err)
		case stopped:
			return nil
		case time.Now().After(deadline):
			return errors.New("ferretdb: not stopped 5s after SIGSTOP")
		}
		time.Sleep(time.Millisecond)
	}
}

// allThreadsStopped tells whether every thread of process pid is stopped by a signal
// (state T in /proc).
func allThreadsStopped(pid int) (bool, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		return false, err
	}
	if len(stats) == 0 {
		return false, fmt.Errorf("no thread of process %d in /proc", pid)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err
		}
		// "pid (comm) state ...": comm may hold spaces and parentheses, so the state
		// follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("%s: unexpected %q", path, b)
		}
		if b[i+2] != 'T' {
			return false, nil
		}
	}
	return true, nil
}

// Thaw resumes a server Freeze stopped.
func (f *FerretDB) Thaw() error { return f.signal(syscall.SIGCONT) }

func (f *FerretDB) signal(sig syscall.Signal) error {
	if err := syscall.Kill(f.pid, sig); err != nil {
		return fmt.Errorf("ferretdb: %s: %w", sig, err)
	}
	return nil
}

// Stop asks the server to stop (SIGTERM), kills it after 10 s, and waits for it.
// A frozen server is thawed first, so that it can stop on SIGTERM. Calling it again
// returns the first result.
func (f *FerretDB) Stop() error {
	select {
	case <-f.proc.Done():
	default:
		_ = f.Thaw()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.proc.Stop(ctx); err != nil {
		return fmt.Errorf("ferretdb: %w", err)
	}
	return nil
}

// FerretDBBinary returns the path of the FerretDB server binary: $FERRETDB_BIN, else
// <repository>/bin/ferretdb, building it from hack/tools (pinned version, Go module
// proxy) when it is missing.
func FerretDBBinary(ctx context.Context) (string, error) {
	if p := os.Getenv("FERRETDB_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("FERRETDB_BIN: %w", err)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "bin", "ferretdb")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	// Build next to the target and rename: test binaries of several packages may
	// build at once, and a rename is atomic.
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, "./ferretdb")
	cmd.Dir = filepath.Join(root, "hack", "tools")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("build ferretdb in hack/tools: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// RepoRoot returns the repository's root: the closest folder above the working
// directory that holds hack/tools/go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "tools", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (a folder holding hack/tools/go.mod) not found above the working directory")
		}
		dir = parent
	}
}
