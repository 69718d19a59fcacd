package main

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoGivesUpOnASilentGateway: hack/demo.sh waits up to 15 s for the gateway's /health,
// also against a gateway that takes the connection and says nothing (an address that
// drops packets, a proxy whose backend hangs). Each of its tries was given curl's 30 s,
// so it went on for about 8 minutes before saying what curl saw.
func TestDemoGivesUpOnASilentGateway(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("hack/demo.sh needs curl")
	}
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // taken, never answered
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, filepath.Join(root, "hack", "demo.sh"), "http://"+ln.Addr().String()).CombinedOutput()
	took := time.Since(start)
	t.Logf("hack/demo.sh (%v):\n%s", took.Round(time.Second), out)
	if ctx.Err() != nil {
		t.Fatalf("hack/demo.sh still waiting after %v for a gateway that does not answer", took.Round(time.Second))
	}
	if err == nil {
		t.Fatal("hack/demo.sh succeeded against a gateway that does not answer")
	}
	if took > 25*time.Second {
		t.Errorf("hack/demo.sh gave up after %v, want about 15 s", took.Round(time.Second))
	}
	if !strings.Contains(string(out), "no answer from the gateway: curl:") {
		t.Error("hack/demo.sh does not say what curl saw")
	}
}
