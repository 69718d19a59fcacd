package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
)

// timeoutErr is a net.Error that timed out, as a read past its deadline is.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsTimeout(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "read past the deadline", err: timeoutErr{}, want: true},
		{name: "answer not complete within the upstream timeout", err: fasthttp.ErrTimeout, want: true},
		{name: "connect timed out (fasthttp)", err: fasthttp.ErrDialTimeout, want: false},
		{name: "every connection busy", err: fasthttp.ErrNoFreeConns, want: false},
		{name: "deadline", err: fmt.Errorf("round trip: %w", context.DeadlineExceeded), want: true},
		{name: "connect timed out: unreachable, not slow", err: &net.OpError{Op: "dial", Err: timeoutErr{}}, want: false},
		{name: "connection refused", err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, want: false},
		{name: "reset while reading", err: &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, want: false},
		{name: "other", err: errors.New("EOF"), want: false},
	}
	for _, tt := range tests {
		if got := isTimeout(tt.err); got != tt.want {
			t.Errorf("%s: isTimeout = %v, want %v", tt.name, got, tt.want)
		}
	}
}
