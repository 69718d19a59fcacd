package testproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartSendsOutputToTheLog(t *testing.T) {
	tests := []struct {
		name       string
		ownStdout  bool
		wantLog    string
		wantStdout string
	}{
		{name: "both streams to the log", wantLog: "to stdout\nto stderr\n"},
		{name: "standard output kept", ownStdout: true, wantLog: "to stderr\n", wantStdout: "to stdout\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "child.log")
			cmd := exec.Command("sh", "-c", "echo to stdout; echo to stderr >&2")
			var stdout bytes.Buffer
			if tt.ownStdout {
				cmd.Stdout = &stdout
			}
			p, err := Start(cmd, logPath)
			if err != nil {
				t.Fatal(err)
			}
			waitDone(t, p)
			if !cmd.ProcessState.Success() {
				t.Fatalf("child: %v", cmd.ProcessState)
			}
			if got, err := os.ReadFile(logPath); err != nil || string(got) != tt.wantLog {
				t.Errorf("log %q (%v), want %q", got, err, tt.wantLog)
			}
			if got := stdout.String(); got != tt.wantStdout {
				t.Errorf("standard output %q, want %q", got, tt.wantStdout)
			}
			if err := p.Stop(context.Background()); err != nil {
				t.Errorf("Stop after the child exited: %v", err)
			}
		})
	}
}

func TestStartRunsTheChildInItsOwnProcessGroup(t *testing.T) {
	p, err := Start(exec.Command("sleep", "60"), filepath.Join(t.TempDir(), "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop(context.Background()) }()
	pgid, err := syscall.Getpgid(p.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != p.cmd.Process.Pid || pgid == syscall.Getpgrp() {
		t.Errorf("child's process group %d, want its own (%d), not ours (%d)", pgid, p.cmd.Process.Pid, syscall.Getpgrp())
	}
}

func TestStartFails(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		cmd     *exec.Cmd
		logPath string
	}{
		{"missing binary", exec.Command(filepath.Join(dir, "no-such-binary")), filepath.Join(dir, "a.log")},
		{"log folder missing", exec.Command("true"), filepath.Join(dir, "missing", "a.log")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := Start(tt.cmd, tt.logPath); err == nil {
				_ = p.Stop(context.Background())
				t.Fatal("Start succeeded")
			}
		})
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name string
		// script prints, once ready for the signal, the PIDs that must be gone after Stop.
		script string
		// grace is how long Stop waits before it kills: long where the child stops by
		// itself, so that a slow machine does not fail the test.
		grace      time.Duration
		wantKilled bool
	}{
		{
			name:   "child stops on SIGTERM",
			script: `sleep 60 & child=$!; trap 'kill $child; exit 0' TERM; echo $child $$; wait`,
			grace:  10 * time.Second,
		},
		{
			name:       "child ignores SIGTERM",
			script:     `trap '' TERM; echo $$; while :; do sleep 0.05; done`,
			grace:      300 * time.Millisecond,
			wantKilled: true,
		},
		{
			// sh dies of SIGTERM, its background sleep carries on in the group.
			name:   "grandchild left behind",
			script: `sleep 60 & echo $! $$; wait`,
			grace:  10 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "child.log")
			p, err := Start(exec.Command("sh", "-c", tt.script), logPath)
			if err != nil {
				t.Fatal(err)
			}
			pids := waitPIDs(t, logPath)
			ctx, cancel := context.WithTimeout(context.Background(), tt.grace)
			defer cancel()
			err = p.Stop(ctx)
			if killed := err != nil; killed != tt.wantKilled {
				t.Errorf("Stop: %v, want killed %v", err, tt.wantKilled)
			}
			select {
			case <-p.Done():
			default:
				t.Fatal("Stop returned before the child exited")
			}
			for _, pid := range pids {
				waitGone(t, pid)
			}
			if again := p.Stop(context.Background()); !errors.Is(again, err) {
				t.Errorf("second Stop: %v, want the first result %v", again, err)
			}
		})
	}
}

// parentEnv marks the test binary run by TestChildDiesWithItsParent as the parent.
const parentEnv = "TESTPROC_PARENT_LOG"

// TestChildDiesWithItsParent runs this test binary as a parent that starts a child
// and exits without stopping it: the kernel must stop the child.
func TestChildDiesWithItsParent(t *testing.T) {
	if logPath := os.Getenv(parentEnv); logPath != "" {
		p, err := Start(exec.Command("sleep", "60"), logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(p.cmd.Process.Pid)
		os.Exit(0)
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithItsParent$")
	parent.Env = append(os.Environ(), parentEnv+"="+filepath.Join(t.TempDir(), "child.log"))
	out, err := parent.Output()
	if err != nil {
		t.Fatalf("parent: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("parent printed %q", out)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	waitGone(t, pid)
}

func TestFreeLoopbackPorts(t *testing.T) {
	for _, count := range []int{0, 1, 5} {
		t.Run(strconv.Itoa(count), func(t *testing.T) {
			ports, err := FreeLoopbackPorts(count)
			if err != nil {
				t.Fatal(err)
			}
			if len(ports) != count {
				t.Fatalf("%d ports, want %d", len(ports), count)
			}
			seen := map[int]bool{}
			low := ephemeralLow()
			for _, port := range ports {
				if seen[port] {
					t.Errorf("port %d twice in %v", port, ports)
				}
				seen[port] = true
				// An outgoing connection could take a port of the ephemeral range.
				if port < minPort || port >= min(low, maxPort) {
					t.Errorf("port %d outside [%d, %d)", port, minPort, min(low, maxPort))
				}
				l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
				if err != nil {
					t.Errorf("port %d is not free: %v", port, err)
					continue
				}
				_ = l.Close()
			}
		})
	}
}

func waitDone(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("child did not exit")
	}
}

// waitPIDs waits for the child to write its line of PIDs into the log.
func waitPIDs(t *testing.T, logPath string) []int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		line, complete := strings.CutSuffix(string(log), "\n")
		if !complete {
			continue
		}
		var pids []int
		for _, f := range strings.Fields(line) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("log %q", line)
			}
			pids = append(pids, pid)
		}
		return pids
	}
	t.Fatal("child did not print its PIDs")
	return nil
}

// waitGone waits until pid has exited (a zombie counts as exited: its reaping is up to
// its new parent).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		// The state follows the command name, which is in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); err == nil && i+2 < len(stat) && stat[i+2] == 'Z' {
			return
		}
	}
	t.Errorf("process %d still runs", pid)
}
