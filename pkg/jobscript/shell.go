package jobscript

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNUL is returned when a value holds a NUL byte, which no shell word can carry.
var ErrNUL = errors.New("value contains a NUL byte")

// Quote returns s as one bash word that expands to exactly s: bare when s holds only
// characters no shell treats specially, otherwise single-quoted with each ' written as
// '\”. Inside single quotes nothing is expanded ($(...), backticks, $VAR, newlines and
// globs stay literal). A NUL byte cannot be represented and is an error.
func Quote(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", ErrNUL
	}
	if s == "" {
		return "''", nil
	}
	if isBare(s) {
		return s, nil
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}

// isBare reports whether s can be written without quotes: letters, digits and
// _ @ % + = : , . / - only (no globs, no expansions, no word splitting, and not a
// leading ~ or = that some shells expand).
func isBare(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_@%+=:,./-", c) >= 0:
			if i == 0 && c == '=' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// QuoteArgs quotes each argument and joins them with spaces: the display form of an
// argv that a user can paste into bash.
func QuoteArgs(args []string) (string, error) {
	parts := make([]string, len(args))
	for i, a := range args {
		q, err := Quote(a)
		if err != nil {
			return "", fmt.Errorf("argument %d: %w", i, err)
		}
		parts[i] = q
	}
	return strings.Join(parts, " "), nil
}

// shq is the template function: it quotes any value printed with fmt's %v.
func shq(v any) (string, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case fmt.Stringer:
		s = x.String()
	default:
		s = fmt.Sprint(v)
	}
	return Quote(s)
}

// shqJoin quotes each element of a string list and joins them with spaces.
func shqJoin(v []string) (string, error) { return QuoteArgs(v) }
