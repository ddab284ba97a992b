package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// openPTY opens a pseudo-terminal of cols×rows and returns its master
// (the test's side: what a terminal emulator reads and types) and its
// slave (the program's stdin and stdout).
func openPTY(tb testing.TB, cols, rows int) (master, slave *os.File) {
	tb.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		tb.Skipf("SKIPPED: no pseudo-terminals here: %v", err)
	}
	ioctl := func(req uintptr, arg unsafe.Pointer) error {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); e != 0 {
			return e
		}
		return nil
	}
	var unlock int32
	if err := ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		tb.Fatalf("unlockpt: %v", err)
	}
	var n uint32
	if err := ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		tb.Fatalf("ptsname: %v", err)
	}
	ws := struct{ row, col, x, y uint16 }{uint16(rows), uint16(cols), 0, 0}
	if err := ioctl(syscall.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		tb.Fatalf("set window size: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		tb.Fatalf("open the pty slave: %v", err)
	}
	return m, s
}

func termios(tb testing.TB, f *os.File) syscall.Termios {
	tb.Helper()
	var t syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		tb.Fatalf("tcgets: %v", e)
	}
	return t
}

// screen is the little of a VT100 that golang.org/x/term's line editor
// uses: printing with autowrap, CR, LF, backspace, cursor moves (CSI A B C
// D), erase in line (CSI K, 2K) and display (CSI J, 2J, H), and colours
// (CSI m, ignored). It is what a person would see in the window.
type screen struct {
	mu         sync.Mutex
	rows       [][]rune
	cols       int
	row, col   int
	pending    []byte // an incomplete escape sequence or UTF-8 rune
	wrapNext   bool   // the cursor sits past the last column
	changed    chan struct{}
	raw        strings.Builder
	unexpected []string // sequences this screen does not know
}

func newScreen(cols, rows int) *screen {
	s := &screen{cols: cols, changed: make(chan struct{})}
	s.rows = make([][]rune, rows)
	for i := range s.rows {
		s.rows[i] = []rune(strings.Repeat(" ", cols))
	}
	return s
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw.Write(p)
	b := append(s.pending, p...)
	s.pending = nil
	for len(b) > 0 {
		switch c := b[0]; {
		case c == 0x1b:
			n := s.escape(b)
			if n == 0 {
				s.pending = append([]byte(nil), b...)
				b = nil
				continue
			}
			b = b[n:]
		case c == '\r':
			s.col, s.wrapNext = 0, false
			b = b[1:]
		case c == '\n':
			s.lineFeed()
			b = b[1:]
		case c == '\b':
			if s.col > 0 {
				s.col--
			}
			s.wrapNext = false
			b = b[1:]
		case c < 0x20:
			b = b[1:] // bell and the like
		default:
			if !utf8.FullRune(b) {
				s.pending = append([]byte(nil), b...)
				b = nil
				continue
			}
			r, n := utf8.DecodeRune(b)
			s.put(r)
			b = b[n:]
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *screen) put(r rune) {
	if s.wrapNext {
		s.col = 0
		s.lineFeed()
		s.wrapNext = false
	}
	s.rows[s.row][s.col] = r
	if s.col == s.cols-1 {
		s.wrapNext = true
	} else {
		s.col++
	}
}

func (s *screen) lineFeed() {
	s.wrapNext = false
	if s.row < len(s.rows)-1 {
		s.row++
		return
	}
	copy(s.rows, s.rows[1:])
	s.rows[len(s.rows)-1] = []rune(strings.Repeat(" ", s.cols))
}

// escape applies the sequence at the start of b and returns its length,
// or 0 if it is not complete yet.
func (s *screen) escape(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	if b[1] != '[' {
		return 2
	}
	i := 2
	for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == ';' || b[i] == '?') {
		i++
	}
	if i == len(b) {
		return 0
	}
	arg := string(b[2:i])
	n, err := strconv.Atoi(arg)
	if err != nil || n == 0 {
		n = 1
	}
	s.wrapNext = false
	clearFrom := func(row, col int) {
		for c := col; c < s.cols; c++ {
			s.rows[row][c] = ' '
		}
	}
	switch b[i] {
	case 'A':
		s.row = max(0, s.row-n)
	case 'B':
		s.row = min(len(s.rows)-1, s.row+n)
	case 'C':
		s.col = min(s.cols-1, s.col+n)
	case 'D':
		s.col = max(0, s.col-n)
	case 'K':
		if arg == "2" {
			clearFrom(s.row, 0)
		} else {
			clearFrom(s.row, s.col)
		}
	case 'J':
		start := s.row + 1
		if arg == "2" {
			start = 0
		} else {
			clearFrom(s.row, s.col)
		}
		for r := start; r < len(s.rows); r++ {
			clearFrom(r, 0)
		}
	case 'H':
		s.row, s.col = 0, 0
	case 'm', 'h', 'l':
		// colours and modes: nothing to draw
	default:
		s.unexpected = append(s.unexpected, fmt.Sprintf("%q", b[:i+1]))
	}
	return i + 1
}

// lines returns the screen's rows without trailing blanks, and without
// the empty rows at the bottom.
func (s *screen) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.rows))
	last := 0
	for i, r := range s.rows {
		out[i] = strings.TrimRight(string(r), " ")
		if out[i] != "" {
			last = i
		}
	}
	return out[:last+1]
}

func (s *screen) String() string { return strings.Join(s.lines(), "\n") }

// waitFor waits until cond holds for the screen's lines.
func (s *screen) waitFor(tb testing.TB, what string, cond func(lines []string) bool) {
	tb.Helper()
	deadline := time.After(waitLong)
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s.lines()) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			tb.Fatalf("screen never showed %s; it shows:\n%s", what, s)
		}
	}
}

func rowsWith(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func lastLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// TestJoinLineEditor runs `chat join` on a pseudo-terminal, as a person
// would: a message that arrives while a line is half typed prints above
// it and leaves it intact (issue 18 saw "half-typed li18:12:06  carol:
// hello both"), the line sent shows once, as the room's message, and
// slash commands, history and Tab work at the prompt.
func TestJoinLineEditor(t *testing.T) {
	t.Parallel()
	const cols, rows = 80, 24
	f := newFakeServer(t)
	env := f.env(t, "alice")
	master, slave := openPTY(t, cols, rows)
	before := termios(t, slave)
	scr := newScreen(cols, rows)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				_, _ = scr.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"join", "general"}, slave, slave, slave, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		master.Close()
		slave.Close()
	})
	typeKeys := func(s string) {
		t.Helper()
		if _, err := master.WriteString(s); err != nil {
			t.Fatalf("typing %q: %v", s, err)
		}
	}

	scr.waitFor(t, "the joined line above the prompt", func(l []string) bool {
		return rowsWith(l, "* joined general; online: alice") == 1 && lastLine(l) == "general>"
	})

	// A message arrives while alice is typing.
	typeKeys("half-typed li")
	scr.waitFor(t, "the half-typed line", func(l []string) bool { return lastLine(l) == "general> half-typed li" })
	f.post("general", "carol", "hello both")
	scr.waitFor(t, "carol's message above the intact input line", func(l []string) bool {
		return rowsWith(l, "  carol: hello both") == 1 && lastLine(l) == "general> half-typed li"
	})
	if l := scr.lines(); rowsWith(l, "carol") != 1 || !strings.HasSuffix(l[len(l)-2], "  carol: hello both") {
		t.Errorf("carol's message is not a line of its own just above the prompt:\n%s", scr)
	}

	// Finishing and sending the line: it leaves the input and shows once.
	typeKeys("ne\r")
	scr.waitFor(t, "alice's line as the room's message", func(l []string) bool {
		return rowsWith(l, "alice: half-typed line") == 1 && strings.TrimSpace(lastLine(l)) == "general>"
	})
	if n := rowsWith(scr.lines(), "half-typed line"); n != 1 {
		t.Errorf("the sent line shows %d times:\n%s", n, scr)
	}

	// Commands run here and are not posted.
	typeKeys("/who\r")
	scr.waitFor(t, "/who's answer", func(l []string) bool { return rowsWith(l, "* in general now (1): alice") == 1 })
	typeKeys("/he\t")
	scr.waitFor(t, "Tab completing /help", func(l []string) bool { return lastLine(l) == "general> /help" })
	typeKeys("\r")
	scr.waitFor(t, "/help's table", func(l []string) bool { return rowsWith(l, "/me TEXT") == 1 })
	typeKeys("/me waves\r")
	scr.waitFor(t, "the action", func(l []string) bool { return rowsWith(l, "* alice waves") == 1 })

	// Up brings back the last line typed, to edit and send again.
	typeKeys("\x1b[A")
	scr.waitFor(t, "the last line again", func(l []string) bool { return lastLine(l) == "general> /me waves" })
	typeKeys("\x15") // Ctrl-U: the line is empty again
	scr.waitFor(t, "an empty prompt", func(l []string) bool { return strings.TrimSpace(lastLine(l)) == "general>" })

	// Ctrl-D on an empty line leaves, and the terminal is as it was.
	typeKeys("\x04")
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d; screen:\n%s", code, scr)
		}
	case <-time.After(waitLong):
		t.Fatalf("join did not end after Ctrl-D; screen:\n%s", scr)
	}
	if after := termios(t, slave); after != before {
		t.Errorf("terminal modes not restored: %+v, want %+v", after, before)
	}
	if got, want := f.texts("general"), []string{"hello both", "half-typed line", "/me waves"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("stored %q, want %q", got, want)
	}
	scr.mu.Lock()
	if len(scr.unexpected) > 0 {
		t.Errorf("the line editor wrote sequences the test screen does not know: %v", scr.unexpected)
	}
	scr.mu.Unlock()
	t.Logf("screen at the end:\n%s", scr)
}
