package service_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
)

// childMode names, in the environment of this test binary run again, how its service.Main
// behaves once its context ends.
const childMode = "SERVICE_TEST_MAIN"

// runChild runs service.Main with a run that prints "ready", waits for its context to end,
// prints "stopping", then: returns nil ("clean"), returns an error ("fails"), or never
// returns ("stuck": a shutdown that hangs).
func runChild(mode string) {
	service.Main("child", func(ctx context.Context) error {
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println("stopping")
		switch mode {
		case "clean":
			return nil
		case "fails":
			return errors.New("consumers did not stop in time")
		default:
			select {}
		}
	})
}

// TestMainSignals runs Main in a child process and signals it: the first SIGTERM or SIGINT
// starts the shutdown and its outcome is the exit code; a second one ends a shutdown that
// hangs at once, by the signal's default action.
func TestMainSignals(t *testing.T) {
	tests := []struct {
		name       string
		mode       string
		signals    []syscall.Signal
		wantCode   int            // exit code, when wantSignal is 0
		wantSignal syscall.Signal // the signal that ended the process
	}{
		{"clean stop", "clean", []syscall.Signal{syscall.SIGTERM}, 0, 0},
		{"failed stop", "fails", []syscall.Signal{syscall.SIGTERM}, 1, 0},
		{"second SIGTERM ends a stuck stop", "stuck", []syscall.Signal{syscall.SIGTERM, syscall.SIGTERM}, 0, syscall.SIGTERM},
		{"second SIGINT ends a stuck stop", "stuck", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, 0, syscall.SIGINT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childMode+"="+tt.mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewScanner(out)
			expect := func(want string) {
				t.Helper()
				if !lines.Scan() || lines.Text() != want {
					_ = cmd.Process.Kill()
					t.Fatalf("child printed %q, want %q", lines.Text(), want)
				}
			}
			expect("ready")
			for i, sig := range tt.signals {
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					expect("stopping")
				}
			}
			exited := make(chan struct{})
			go func() {
				_ = cmd.Wait() // the exit is read from ProcessState below
				close(exited)
			}()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Fatal("the child did not exit after its signals")
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case tt.wantSignal != 0 && (!ws.Signaled() || ws.Signal() != tt.wantSignal):
				t.Errorf("child ended with %v, want killed by %v", cmd.ProcessState, tt.wantSignal)
			case tt.wantSignal == 0 && (ws.Signaled() || ws.ExitStatus() != tt.wantCode):
				t.Errorf("child ended with %v, want exit code %d", cmd.ProcessState, tt.wantCode)
			}
		})
	}
}
