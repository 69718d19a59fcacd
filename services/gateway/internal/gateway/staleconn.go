package gateway

import (
	"errors"
	"net"
	"syscall"
)

// errStaleConn is a kept-alive connection to a service that the service closed while it
// sat in the pool: nothing was written to it, so any request may be sent again on another.
var errStaleConn = errors.New("the service closed this kept-alive connection")

// checkedConn is a connection to a service that, before a request is written on it again
// after an answer was read, makes sure the service has not closed it meanwhile (a
// service closes its idle connections when it shuts down, at every rolling update, and
// after its idle timeout). fasthttp retries only GET, HEAD and PUT on a failed
// connection, since a request that reached the service must not be sent twice; this
// check fails before a single byte is written, so a POST is safe to send again too.
// It is what net/http's Transport learns from the read it keeps running on idle
// connections, at the cost of one non-blocking system call per reuse.
type checkedConn struct {
	net.Conn
	raw syscall.RawConn
	// reused is set once an answer was read: the next write is a reuse.
	reused bool
	// peek is the look at the socket closedByPeer makes, made once with the connection so
	// that a check allocates nothing; peekErr and peekBuf are its result and buffer.
	peek    func(fd uintptr)
	peekErr error
	peekBuf [1]byte
}

// checkConn wraps c when it can look at its socket.
func checkConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	cc := &checkedConn{Conn: c, raw: raw}
	cc.peek = func(fd uintptr) {
		_, _, cc.peekErr = syscall.Recvfrom(int(fd), cc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}
	return cc
}

func (c *checkedConn) Read(b []byte) (int, error) {
	c.reused = true
	return c.Conn.Read(b)
}

func (c *checkedConn) Write(b []byte) (int, error) {
	if c.reused {
		c.reused = false
		if c.closedByPeer() {
			return 0, errStaleConn
		}
	}
	return c.Conn.Write(b)
}

// closedByPeer peeks at the socket without waiting: an end of stream, an error, or bytes
// no request asked for (the connection is out of step) all mean it cannot carry a request.
func (c *checkedConn) closedByPeer() bool {
	// Control, not Read: a pooled connection keeps the read deadline of its last request,
	// long past by now, which Read would report instead of looking.
	c.peekErr = nil
	if cerr := c.raw.Control(c.peek); cerr != nil {
		return true
	}
	if errors.Is(c.peekErr, syscall.EAGAIN) {
		return false // nothing to read: open and idle, as it should be
	}
	return true
}
