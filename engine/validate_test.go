package engine

import (
	"errors"
	"strings"
	"testing"
)

func TestValidText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		text string
		want error // nil, ErrInvalid or ErrTooLarge
	}{
		{"plain", "hello", nil},
		{"newline and tab", "a\n\tb", nil},
		{"emoji with joiners", "\U0001F469\u200d\U0001F4bb \U0001F44D\U0001F3FD", nil},
		{"flag of tags inside visible text", "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", nil},
		{"right-to-left with a mark", "\u05e9\u05dc\u05d5\u05dd\u200f!", nil},
		{"arabic letter mark inside text", "\u0627\u061c1", nil},
		{"a word joiner between words", "no\u2060break", nil},
		{"variation selector after a letter", "\u2764\ufe0f", nil},
		{"combining accent on a letter", "e\u0301", nil},
		{"exactly the limit", strings.Repeat("é", 10), nil},

		{"empty", "", ErrInvalid},
		{"spaces", " \n\t ", ErrInvalid},
		{"zero-width space", "\u200b", ErrInvalid},
		{"zero-width joiners and the BOM", "\u200c\u200d\ufeff\u2060", ErrInvalid},
		{"hangul fillers", "\u3164\u115f\u1160\uffa0", ErrInvalid},
		{"braille blank", "\u2800\u2800", ErrInvalid},
		{"soft hyphen and grapheme joiner", "\u00ad\u034f", ErrInvalid},
		{"variation selectors alone", "\ufe0f\U000E0100", ErrInvalid},
		{"tags alone", "\U000E0041\U000E0042", ErrInvalid},
		{"marks alone", "\u200e\u200f", ErrInvalid},
		{"ideographic space", "\u3000", ErrInvalid},
		{"right-to-left override", "\u202eevil.exe", ErrInvalid},
		{"left-to-right embedding", "a\u202ab", ErrInvalid},
		{"pop directional formatting", "a\u202cb", ErrInvalid},
		{"right-to-left isolate", "a\u2067b\u2069", ErrInvalid},
		{"first strong isolate", "a\u2068b", ErrInvalid},
		{"line separator", "one\u2028two", ErrInvalid},
		{"paragraph separator", "one\u2029two", ErrInvalid},
		{"control character", "bell\a", ErrInvalid},
		{"escape", "\x1b[31mred", ErrInvalid},
		{"C1 control", "a\u0085b", ErrInvalid},
		{"not UTF-8", "a\xffb", ErrInvalid},
		{"one over the limit", strings.Repeat("é", 11), ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidText(tc.text, 10)
			switch {
			case tc.want == nil && err != nil:
				t.Errorf("ValidText(%+q) = %v, want nil", tc.text, err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("ValidText(%+q) = %v, want %v", tc.text, err, tc.want)
			}
		})
	}
}
