// Package testproc starts the servers that tests and local runs depend on (RabbitMQ,
// epmd, FerretDB, the shop's own binaries) as child processes that cannot outlive
// their parent, and finds free loopback ports for them.
//
// It lives at the root of the module so that both the services' test environment and
// the operator's tests can use it.
package testproc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Process is a child started by Start. Its Wait is already running: read
// Cmd.ProcessState only once Done is closed.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}

	stopOnce sync.Once
	stopErr  error
}

// Start starts cmd in its own process group with its output (standard error, and
// standard output unless cmd already has one) to logPath, and waits for it in the
// background.
//
// The child gets SIGTERM from the kernel when this process dies, however it dies, so a
// failed or killed run leaks no server. Its own process group keeps a terminal's Ctrl-C
// from reaching it, so its parent decides when and in which order its children stop.
func Start(cmd *exec.Cmd, logPath string) (*Process, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if cmd.Stdout == nil {
		cmd.Stdout = out
	}
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	errc := make(chan error)
	starter <- func() { errc <- cmd.Start() }
	err = <-errc
	_ = out.Close() // the child holds its own descriptor
	if err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// starter runs start requests on one locked OS thread that never exits: Pdeathsig
// fires when the thread that started the child ends, not when the process does, and
// the Go runtime may end any thread not locked to a goroutine.
var starter = func() chan func() {
	c := make(chan func())
	go func() {
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
}()

// Done is closed once the process has exited, by Stop or by itself.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends the process SIGTERM and waits for it to exit until ctx is done, then
// kills its whole process group: the process itself if it did not stop in time, and
// whatever it left behind (such as the helpers of an Erlang VM, which may outlive it
// by a moment). It returns an error when the process had to be killed. Calling it
// again returns the first result.
func (p *Process) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-ctx.Done():
			p.stopErr = fmt.Errorf("%s did not stop on SIGTERM in time; killed", p.cmd.Path)
		}
		// Linux hands out no PID still in use as a process group ID, so while any
		// member of the group lives, its ID names no one else's processes.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p.stopErr
}

// FreeLoopbackPorts returns count distinct TCP ports free on 127.0.0.1 right now, taken
// below the kernel's range of ephemeral ports. A server is told its port and binds it
// later, a RabbitMQ node some seconds later: a port from the ephemeral range (what
// binding port 0 gives) can meanwhile become the local port of any outgoing connection on
// the machine, and the server then fails to start. Below the range, only a process that
// binds that very port can take it.
func FreeLoopbackPorts(count int) ([]int, error) {
	low := min(ephemeralLow(), maxPort)
	// From a random point, so that processes asking at once start apart.
	span := low - minPort
	start := rand.IntN(span)
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	// Binding on loopback never blocks: there is nothing for a context to cancel.
	var lc net.ListenConfig
	for i := 0; i < span && len(ports) < count; i++ {
		port := minPort + (start+i)%span
		l, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken
		}
		listeners = append(listeners, l) // held until all are found, so none comes twice
		ports = append(ports, port)
	}
	if len(ports) < count {
		return nil, fmt.Errorf("only %d of %d loopback ports free between %d and %d", len(ports), count, minPort, low)
	}
	return ports, nil
}

// FreeLoopbackPorts hands out ports from minPort up to maxPort (or the ephemeral range):
// above the ports servers are commonly configured on (a kubelet's 10250, say), and below
// Kubernetes' NodePort range (30000-32767).
const (
	minPort = 20000
	maxPort = 30000
)

// ephemeralLow returns the lowest local port of the kernel's range for outgoing
// connections, or Linux's default when it cannot be read.
func ephemeralLow() int {
	const linuxDefault = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return linuxDefault
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= minPort+1000 {
		return linuxDefault // a range reaching down here leaves no port outside it worth taking
	}
	return low
}

// GoBuild returns the go command that builds packages into out, with the race detector
// when this program has it (Race), so that the binaries a test runs are checked as the
// test itself is.
func GoBuild(ctx context.Context, out string, packages ...string) *exec.Cmd {
	args := []string{"build"}
	if Race {
		args = append(args, "-race")
	}
	args = append(args, "-o", out)
	return exec.CommandContext(ctx, "go", append(args, packages...)...)
}
