// Package logbuf batches log output. The gateway writes one access-log line per request; written
// straight to stdout that is one write system call per request, a sizeable share of a proxied
// request's cost. A Writer gathers lines and writes them out when its buffer fills or, at the
// latest, one interval after the first line went in (as nginx's "access_log ... buffer= flush="),
// so a busy gateway makes one write per many lines and a quiet one still logs promptly.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Writer is a buffered, periodically flushed io.Writer, safe for concurrent use. Each Write is
// kept whole: lines from concurrent writers never interleave.
type Writer struct {
	mu       sync.Mutex
	out      io.Writer
	buf      []byte
	interval time.Duration
	timer    *time.Timer
	err      error // the last write error, returned by Flush
}

// New returns a Writer to out holding up to size bytes for at most interval.
func New(out io.Writer, size int, interval time.Duration) *Writer {
	w := &Writer{out: out, buf: make([]byte, 0, size), interval: interval}
	w.timer = time.AfterFunc(interval, func() { _ = w.Flush() })
	w.timer.Stop()
	return w
}

// Write buffers p, writing the buffer out first when p does not fit; a p larger than the
// buffer is written straight through.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf)+len(p) > cap(w.buf) {
		w.flushLocked()
		if len(p) > cap(w.buf) {
			return w.out.Write(p)
		}
	}
	if len(w.buf) == 0 {
		w.timer.Reset(w.interval)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Flush writes out what is buffered and returns the last write error, if any.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	err := w.err
	w.err = nil
	return err
}

func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	if _, err := w.out.Write(w.buf); err != nil {
		w.err = err // a log that cannot be written must not stop the requests being logged
	}
	w.buf = w.buf[:0]
}

// Close flushes and stops the timer.
func (w *Writer) Close() error {
	w.timer.Stop()
	return w.Flush()
}
