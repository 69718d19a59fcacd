package main

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// TestStoreEnv: each service gets its own database on a MongoDB given from outside, with
// the URI as given: its path says where the credentials are checked (none: admin), and a
// list of hosts is no URL net/url reads.
func TestStoreEnv(t *testing.T) {
	for _, uri := range []string{
		"mongodb://127.0.0.1:27017/",
		"mongodb://root:s3cret@db.example:27017/?replicaSet=rs0",
		"mongodb://db1:27017,db2/?replicaSet=rs0",
		"mongodb://[::1]:27017,[::1]:27018/",
	} {
		t.Run(uri, func(t *testing.T) {
			var cfg struct{ MongoDB mongodb.Config }
			if err := config.LoadFrom(&cfg, storeEnv(uri, "users")); err != nil {
				t.Fatal(err)
			}
			if err := cfg.MongoDB.Validate(); err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got := cfg.MongoDB.DatabaseName("fallback"); got != "users" {
				t.Errorf("database %q, want users", got)
			}
			if got := cfg.MongoDB.ConnectionURI(); got != uri {
				t.Errorf("URI %q, want %q as given", got, uri)
			}
		})
	}
}

// TestSuite starts the suite with the program, as `make run` does, and checks that it
// serves the demo and that nothing it started outlives it, whether it is stopped with
// SIGTERM or one of its children dies.
func TestSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole suite")
	}
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinaries(t, root)

	tests := []struct {
		name string
		args []string
		// demo runs hack/demo.sh against the suite from the test.
		demo bool
		// end ends the program's run, given the processes it started; nil: it ends by itself.
		end        func(t *testing.T, prog *os.Process, procs []process)
		wantExit   int
		wantOutput string
		// crash: the program dies without stopping anything. What it started must stop
		// anyway (the kernel sends it SIGTERM), within a while; the ready file stays.
		crash bool
	}{
		{
			name: "SIGTERM after the demo",
			demo: true,
			end: func(t *testing.T, prog *os.Process, _ []process) {
				if err := prog.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			},
			wantExit:   0,
			wantOutput: "stopping the suite",
		},
		{
			name: "a service dies",
			end: func(t *testing.T, _ *os.Process, procs []process) {
				if err := syscall.Kill(find(procs, "payment").pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			},
			wantExit:   1,
			wantOutput: "payment exited early",
		},
		{
			name: "the program is killed",
			end: func(t *testing.T, prog *os.Process, _ []process) {
				if err := prog.Kill(); err != nil {
					t.Fatal(err)
				}
			},
			wantExit:   -1,
			wantOutput: "suite healthy",
			crash:      true,
		},
		{
			name:       "-demo runs the demo and stops",
			args:       []string{"-demo"},
			wantExit:   0,
			wantOutput: "Demo done",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			readyFile := filepath.Join(dir, "gateway-url")
			var out testproc.Buffer
			cmd := exec.Command(filepath.Join(bin, "runsuite"), "-bin-dir", bin, "-port", "0",
				// Refilled at one request a second, as fast as the demo polls, so polling on a
				// slow machine cannot use the allowance up before the rate limit step.
				"-rate-limit", "60", "-rate-window", "1m",
				"-ready-file", readyFile, "-log-dir", filepath.Join(dir, "logs"))
			cmd.Args = append(cmd.Args, tt.args...)
			cmd.Dir = root
			// Its temporary folder inside the test's, so a crash leaves nothing behind.
			cmd.Env = append(os.Environ(), "TMPDIR="+dir)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				// Only when the test failed before stopping it.
				_ = cmd.Process.Kill()
				<-exited
				t.Logf("runsuite output:\n%s", out.String())
			})

			gatewayURL := waitReady(t, readyFile, exited)
			procs := descendants(t, cmd.Process.Pid)
			for _, name := range []string{"ferretdb", "epmd", "beam.smp", "user", "product", "order", "payment", "gateway"} {
				if find(procs, name).pid == 0 {
					t.Fatalf("no %s process under runsuite; found %v", name, procs)
				}
			}

			if tt.demo {
				runDemo(t, root, gatewayURL)
			}
			wait := 3 * time.Minute
			if tt.end != nil {
				tt.end(t, cmd.Process, procs)
			} else {
				wait = 8 * time.Minute
			}
			select {
			case <-exited:
			case <-time.After(wait):
				t.Fatalf("runsuite did not stop within %s", wait)
			}
			if got := cmd.ProcessState.ExitCode(); got != tt.wantExit {
				t.Errorf("runsuite exit code %d, want %d", got, tt.wantExit)
			}
			if !strings.Contains(out.String(), tt.wantOutput) {
				t.Errorf("runsuite output does not say %q", tt.wantOutput)
			}
			var grace time.Time // a stopped runsuite has already stopped everything
			if tt.crash {
				grace = time.Now().Add(2 * time.Minute)
			}
			for _, p := range procs {
				for p.alive() && time.Now().Before(grace) {
					time.Sleep(100 * time.Millisecond)
				}
				if p.alive() {
					t.Errorf("%s (pid %d) still runs after runsuite stopped", p.comm, p.pid)
				}
			}
			u, _ := url.Parse(gatewayURL)
			if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
				_ = conn.Close()
				t.Errorf("the gateway's port %s still accepts connections", u.Host)
			}
			if _, err := os.Stat(readyFile); !tt.crash && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("ready file left behind: %v", err)
			}
		})
	}
}

// buildBinaries builds the services, the gateway and the program into a fresh folder.
func buildBinaries(t *testing.T, root string) string {
	t.Helper()
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := testproc.GoBuild(ctx, bin+string(filepath.Separator),
		"./services/user", "./services/product", "./services/order", "./services/payment",
		"./services/gateway", "./services/internal/cmd/runsuite")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitReady waits for the program to write the gateway URL into readyFile.
func waitReady(t *testing.T, readyFile string, exited <-chan struct{}) string {
	t.Helper()
	deadline := time.After(5 * time.Minute)
	for {
		if b, err := os.ReadFile(readyFile); err == nil {
			return strings.TrimSpace(string(b))
		}
		select {
		case <-exited:
			t.Fatal("runsuite exited before the suite was healthy")
		case <-deadline:
			t.Fatal("the suite was not healthy within 5m")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func runDemo(t *testing.T, root, gatewayURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	demo := exec.CommandContext(ctx, filepath.Join(root, "hack", "demo.sh"), gatewayURL)
	out, err := demo.CombinedOutput()
	t.Logf("hack/demo.sh:\n%s", out)
	if err != nil {
		t.Fatalf("hack/demo.sh failed: %v", err)
	}
}

// process is one process for its lifetime: a PID may be reused, with its start time not.
type process struct {
	comm      string
	pid       int
	startTime string
}

// alive reports whether the process still exists (a zombie counts as gone).
func (p process) alive() bool {
	_, state, _, start, err := readStat(p.pid)
	return err == nil && start == p.startTime && state != "Z"
}

// find returns the first of procs named comm, or the zero process.
func find(procs []process, comm string) process {
	for _, p := range procs {
		if p.comm == comm {
			return p
		}
	}
	return process{}
}

// descendants returns every process below pid.
func descendants(t *testing.T, pid int) []process {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	children := map[int][]process{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _, ppid, start, err := readStat(p)
		if err != nil {
			continue // gone meanwhile
		}
		children[ppid] = append(children[ppid], process{comm, p, start})
	}
	var found []process
	queue := []int{pid}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			found = append(found, c)
			queue = append(queue, c.pid)
		}
		queue = queue[1:]
	}
	return found
}

// readStat reads a process's command name, state, parent and start time from /proc.
func readStat(pid int) (comm, state string, ppid int, startTime string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", "", 0, "", err
	}
	s := string(b)
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", "", 0, "", errors.New("unexpected /proc stat format")
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 20 {
		return "", "", 0, "", errors.New("unexpected /proc stat format")
	}
	ppid, err = strconv.Atoi(fields[1])
	// fields[19] is field 22 of stat(5), the start time.
	return s[open+1 : end], fields[0], ppid, fields[19], err
}
