package engine

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NormalizeUsername lowercases name and checks it: 3–32 ASCII letters,
// digits, '_', '-' or '.'. Errors wrap ErrInvalid.
func NormalizeUsername(name string) (string, error) {
	if n := len(name); n < 3 || n > 32 {
		return "", fmt.Errorf("username must be 3 to 32 characters: %w", ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i], true) {
			return "", fmt.Errorf("username may hold only letters, digits, '_', '-' and '.': %w", ErrInvalid)
		}
	}
	return strings.ToLower(name), nil
}

func isNameByte(c byte, upperAndDot bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
		return true
	case upperAndDot && (c >= 'A' && c <= 'Z' || c == '.'):
		return true
	}
	return false
}

// ValidChannelName checks a channel name: 1–64 lowercase letters, digits,
// '_' or '-'. Errors wrap ErrInvalid.
func ValidChannelName(name string) error {
	if len(name) < 1 || len(name) > 64 {
		return fmt.Errorf("room name must be 1 to 64 characters: %w", ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i], false) {
			return fmt.Errorf("room name may hold only lowercase letters, digits, '_' and '-': %w", ErrInvalid)
		}
	}
	return nil
}

// DirectRoom returns the name of the direct room of users a and b
// (normalised): "dm:<a>:<b>" with a < b.
func DirectRoom(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "dm:" + a + ":" + b
}

// parseDirect splits "dm:a:b" into its members; ok is false when name is
// not a well-formed direct room name.
func parseDirect(name string) (a, b string, ok bool) {
	rest, found := strings.CutPrefix(name, "dm:")
	if !found {
		return "", "", false
	}
	a, b, found = strings.Cut(rest, ":")
	if !found || a >= b {
		return "", "", false
	}
	if na, err := NormalizeUsername(a); err != nil || na != a {
		return "", "", false
	}
	if nb, err := NormalizeUsername(b); err != nil || nb != b {
		return "", "", false
	}
	return a, b, true
}

// ValidText checks a message text: valid UTF-8, at most max characters,
// no control characters but newline and tab, none of the bidirectional
// controls that reorder what readers see, no U+2028 or U+2029, and
// something visible once invisible characters are set aside. Errors wrap
// ErrInvalid or ErrTooLarge.
//
// Such text is refused rather than cleaned: a server that strips
// characters stores something other than what the sender acked, and the
// sender's client, which shows its own text, would disagree with everyone
// else's.
func ValidText(text string, max int) error {
	if utf8.RuneCountInString(text) > max {
		return fmt.Errorf("text is longer than %d characters: %w", max, ErrTooLarge)
	}
	if !utf8.ValidString(text) {
		return fmt.Errorf("text is not valid UTF-8: %w", ErrInvalid)
	}
	visible := false
	for _, r := range text {
		switch {
		case r != '\n' && r != '\t' && unicode.IsControl(r):
			return fmt.Errorf("text holds a control character: %w", ErrInvalid)
		case isBidiControl(r):
			return fmt.Errorf("text holds a bidirectional override, embedding or isolate (U+%04X), which would reorder what others see: %w", r, ErrInvalid)
		case r == '\u2028' || r == '\u2029':
			return fmt.Errorf("text holds a line or paragraph separator (U+%04X); use a newline: %w", r, ErrInvalid)
		case !visible && !invisible(r):
			visible = true
		}
	}
	if !visible {
		return fmt.Errorf("text is empty or only invisible characters: %w", ErrInvalid)
	}
	return nil
}

// isBidiControl reports the explicit bidirectional formatting characters
// of Unicode's bidi algorithm that can reorder text beyond their own
// position ("Trojan Source", CVE-2021-42574): the embeddings and overrides
// U+202A–U+202E and the isolates U+2066–U+2069. The marks U+200E, U+200F
// and U+061C only steer neutral characters next to them, and right-to-left
// writers need them, so they stay allowed.
func isBidiControl(r rune) bool {
	return r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}

// invisible reports characters that draw nothing on their own: white
// space, format characters (zero-width spaces and joiners, the byte-order
// mark, soft hyphens, tags), variation selectors, the other
// default-ignorable code points (Hangul fillers, the combining grapheme
// joiner) and the blank Braille pattern, which fonts draw empty. They are
// fine inside a message (a joiner inside an emoji sequence), not as all of
// it.
func invisible(r rune) bool {
	return unicode.IsSpace(r) || r == '\u2800' ||
		unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// validClientID checks a client_id: at most 128 bytes of printable
// characters.
func validClientID(id string) error {
	if len(id) > 128 {
		return fmt.Errorf("client_id is longer than 128 bytes: %w", ErrInvalid)
	}
	for _, r := range id {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("client_id holds a control character: %w", ErrInvalid)
		}
	}
	return nil
}
