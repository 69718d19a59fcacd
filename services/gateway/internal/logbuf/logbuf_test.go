package logbuf

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an io.Writer that records each Write call.
type recorder struct {
	mu     sync.Mutex
	writes []string
	fail   error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	return len(p), r.fail
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

func TestBatchesUntilFull(t *testing.T) {
	rec := &recorder{}
	w := New(rec, 16, time.Hour)
	for _, line := range []string{"aaaa\n", "bbbb\n", "cccc\n", "dddd\n"} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	// 15 bytes fit; the fourth line makes the first three go out in one write.
	if got := rec.snapshot(); len(got) != 1 || got[0] != "aaaa\nbbbb\ncccc\n" {
		t.Fatalf("writes %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rec.snapshot(); len(got) != 2 || got[1] != "dddd\n" {
		t.Fatalf("after Close, writes %q", got)
	}
}

func TestFlushesAfterInterval(t *testing.T) {
	rec := &recorder{}
	w := New(rec, 1<<10, 20*time.Millisecond)
	defer w.Close()
	start := time.Now()
	_, _ = w.Write([]byte("line\n"))
	for len(rec.snapshot()) == 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("buffered line never written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("written after %s, before the interval", took)
	}
}

func TestLargeWriteGoesThrough(t *testing.T) {
	rec := &recorder{}
	w := New(rec, 8, time.Hour)
	_, _ = w.Write([]byte("ab"))
	big := strings.Repeat("x", 20)
	if n, err := w.Write([]byte(big)); n != 20 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := rec.snapshot(); len(got) != 2 || got[0] != "ab" || got[1] != big {
		t.Fatalf("writes %q, want the buffer then the large write, in order", got)
	}
}

func TestConcurrentLinesStayWhole(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	}), 100, time.Millisecond)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			line := []byte(strings.Repeat(string(rune('a'+i)), 29) + "\n")
			for range 500 {
				_, _ = w.Write(line)
			}
		})
	}
	wg.Wait()
	_ = w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	for _, l := range lines {
		if len(l) != 29 || strings.Count(l, l[:1]) != 29 {
			t.Fatalf("torn line %q", l)
		}
	}
}

func TestFlushReportsWriteError(t *testing.T) {
	rec := &recorder{fail: errors.New("disk full")}
	w := New(rec, 64, time.Hour)
	_, _ = w.Write([]byte("x\n"))
	if err := w.Flush(); err == nil {
		t.Fatal("Flush hid the write error")
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("error reported twice: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
