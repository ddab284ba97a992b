package main

import (
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineLog is an io.Writer that keeps what is written to it as lines, so
// a test can wait for output from a running command. It is safe for
// concurrent use.
type lineLog struct {
	mu      sync.Mutex
	partial string
	lines   []string
	changed chan struct{} // closed and replaced whenever a line is added
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.partial + string(p)
	parts := strings.Split(s, "\n")
	l.partial = parts[len(parts)-1]
	if len(parts) > 1 {
		l.lines = append(l.lines, parts[:len(parts)-1]...)
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// Lines returns the complete lines so far.
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + "\n" + l.partial
}

// count returns how many lines contain sub.
func (l *lineLog) count(sub string) int {
	n := 0
	for _, line := range l.Lines() {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

// waitFor waits until a line contains sub and returns that line; it fails
// the test after timeout.
func (l *lineLog) waitFor(tb testing.TB, sub string, timeout time.Duration) string {
	tb.Helper()
	return l.waitFrom(tb, 0, sub, timeout)
}

// waitFrom is waitFor among the lines after the first n.
func (l *lineLog) waitFrom(tb testing.TB, n int, sub string, timeout time.Duration) string {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, line := range l.lines[min(n, len(l.lines)):] {
			if strings.Contains(line, sub) {
				l.mu.Unlock()
				return line
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			tb.Fatalf("no line containing %q within %v; output so far:\n%s", sub, timeout, l.String())
			return ""
		}
	}
}

// cmdResult is what one in-process run of the client produced.
type cmdResult struct {
	code           int
	stdout, stderr string
}

// runChat runs the client in-process with env as its whole environment.
func runChat(tb testing.TB, env map[string]string, stdin string, args ...string) cmdResult {
	tb.Helper()
	var out, errb strings.Builder
	code := run(args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return cmdResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// joinProc is a `chat join` running in-process.
type joinProc struct {
	stdin    io.WriteCloser
	out, err *lineLog
	done     chan struct{} // closed when run has returned
	code     int           // run's result, once done is closed
}

// mustStartJoin runs `chat join ARGS` in-process with env as its environment.
func mustStartJoin(tb testing.TB, env map[string]string, args ...string) *joinProc {
	tb.Helper()
	pr, pw, err := os.Pipe() // buffered by the kernel, so typing never blocks
	if err != nil {
		tb.Fatal(err)
	}
	p := &joinProc{stdin: pw, out: newLineLog(), err: newLineLog(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.code = run(append([]string{"join"}, args...), pr, p.out, p.err, func(k string) string { return env[k] })
	}()
	tb.Cleanup(func() {
		pw.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			tb.Errorf("join did not end after its input was closed")
		}
		pr.Close()
	})
	return p
}

// typeLine writes one line to the session's stdin.
func (p *joinProc) typeLine(tb testing.TB, line string) {
	tb.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		tb.Fatalf("typing %q: %v", line, err)
	}
}

// wait waits for run to return and gives its exit status.
func (p *joinProc) wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		tb.Fatalf("join still running after %v; stdout:\n%s\nstderr:\n%s", timeout, p.out, p.err)
		return -1
	}
}
