package main

import (
	"bufio"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// console is where an interactive session reads what is typed and prints
// what happens. Lines and Typing are read by the session's goroutine only;
// Out and Err may be written from it while a line is being typed.
type console interface {
	// Lines yields each line typed, without its newline; it is closed when
	// input ends (end of file, Ctrl-D on an empty line, Ctrl-C).
	Lines() <-chan string
	// Typing receives a value (without blocking the keyboard) whenever a
	// key is typed into the line, if the console can tell; else it is nil.
	Typing() <-chan struct{}
	// Out and Err print whole lines above the line being typed.
	Out() io.Writer
	Err() io.Writer
	// Close gives the terminal back as it was. It is safe to call twice.
	Close()
}

// plainConsole reads lines from any reader and prints to two writers, for
// pipes, files and tests: nothing is echoed, so nothing needs redrawing.
type plainConsole struct {
	lines     chan string
	out, errw io.Writer
	done      chan struct{}
	once      sync.Once
}

func newPlainConsole(in io.Reader, out, errw io.Writer) *plainConsole {
	c := &plainConsole{lines: make(chan string), out: out, errw: errw, done: make(chan struct{})}
	go readLines(in, c.lines, c.done)
	return c
}

func (c *plainConsole) Lines() <-chan string    { return c.lines }
func (c *plainConsole) Typing() <-chan struct{} { return nil }
func (c *plainConsole) Out() io.Writer          { return c.out }
func (c *plainConsole) Err() io.Writer          { return c.errw }
func (c *plainConsole) Close()                  { c.once.Do(func() { close(c.done) }) }

// readLines sends each line of r (without its newline) until r ends or
// done is closed, then closes out.
func readLines(r io.Reader, out chan<- string, done <-chan struct{}) {
	defer close(out)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			select {
			case out <- strings.TrimSuffix(line, "\n"):
			case <-done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// submitKey stands in for Enter on the way into term.Terminal. The
// terminal echoes a line it reads and leaves it on the screen; a session
// that then prints the same message from the server would show it twice.
// Enter is therefore turned into a control character the terminal passes
// to AutoCompleteCallback, which takes the line and empties it in place:
// what was typed vanishes from the input line and comes back once, as the
// server's message, in the order the room received it. Ctrl-^ is a key
// nobody types into a chat line and the terminal has no meaning for.
const submitKey = 0x1e

// enterReader turns every Enter (CR, LF or CRLF) of a terminal's input
// into submitKey. Escape sequences and UTF-8 never hold those bytes.
type enterReader struct {
	r      io.Reader
	lastCR bool
}

func (e *enterReader) Read(p []byte) (int, error) {
	for {
		n, err := e.r.Read(p)
		out := 0
		for _, b := range p[:n] {
			switch {
			case b == '\n' && e.lastCR:
				e.lastCR = false // the LF of a CRLF: one Enter
				continue
			case b == '\r' || b == '\n':
				e.lastCR = b == '\r'
				b = submitKey
			default:
				e.lastCR = false
			}
			p[out] = b
			out++
		}
		if out > 0 || err != nil || n == 0 {
			return out, err
		}
	}
}

// ttyConsole is a line editor on a terminal (golang.org/x/term): the line
// being typed stays intact at the bottom while messages print above it,
// with history on Up and Down and Tab completing slash commands.
type ttyConsole struct {
	in     *os.File
	out    *os.File
	state  *term.State
	t      *term.Terminal
	lines  chan string
	typing chan struct{}
	done   chan struct{}
	once   sync.Once
	stop   func() // stops watching the window size
}

// newTTYConsole puts the terminal of in into raw mode and starts reading
// lines with prompt. complete returns the completion of a line that Tab
// was pressed on, or false.
func newTTYConsole(in, out *os.File, prompt string, complete func(string) (string, bool)) (*ttyConsole, error) {
	state, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return nil, err
	}
	c := &ttyConsole{
		in: in, out: out, state: state,
		lines:  make(chan string),
		typing: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	c.t = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{&enterReader{r: in}, out}, prompt)
	resize := func() {
		if w, h, err := term.GetSize(int(out.Fd())); err == nil {
			_ = c.t.SetSize(w, h)
		}
	}
	resize()
	c.stop = watchResize(resize)
	c.t.AutoCompleteCallback = func(line string, pos int, key rune) (string, int, bool) {
		switch {
		case key == submitKey:
			if strings.TrimSpace(line) != "" {
				c.t.History.Add(line)
				c.submit(line)
			}
			return "", 0, true
		case key == '\t':
			if done, ok := complete(line); ok {
				return done, len(done), true
			}
			return "", 0, false
		}
		// A command being typed is nobody's business.
		if isTypingKey(key) && !strings.HasPrefix(line, "/") && !(line == "" && key == '/') {
			select {
			case c.typing <- struct{}{}:
			default:
			}
		}
		return "", 0, false
	}
	go c.readLoop()
	return c, nil
}

// isTypingKey reports whether key adds to the line (not a cursor move).
func isTypingKey(key rune) bool {
	return key >= 0x20 && (key < 0xd800 || key > 0xdbff)
}

func (c *ttyConsole) submit(line string) {
	select {
	case c.lines <- line:
	case <-c.done:
	}
}

// readLoop keeps the terminal reading keys. ReadLine returns only at the
// end of input: Enter never reaches it as Enter (see submitKey).
func (c *ttyConsole) readLoop() {
	defer close(c.lines)
	for {
		line, err := c.t.ReadLine()
		if err != nil {
			return
		}
		// Only if some terminal delivered an Enter we did not map.
		if strings.TrimSpace(line) != "" {
			c.submit(line)
		}
	}
}

func (c *ttyConsole) Lines() <-chan string    { return c.lines }
func (c *ttyConsole) Typing() <-chan struct{} { return c.typing }
func (c *ttyConsole) Out() io.Writer          { return c.t }
func (c *ttyConsole) Err() io.Writer          { return c.t }

// Close clears the input line and restores the terminal's mode.
func (c *ttyConsole) Close() {
	c.once.Do(func() {
		close(c.done)
		c.stop()
		// Straight to the terminal: through c.t the prompt would be drawn again.
		_, _ = c.out.Write([]byte("\r\x1b[K"))
		_ = term.Restore(int(c.in.Fd()), c.state)
	})
}
