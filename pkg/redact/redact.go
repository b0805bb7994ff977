// Package redact keeps credentials out of what the commands print and log: the password
// or token in a URL's userinfo, and every secret registered with Add (a NATS password or
// token, the embedded server's generated token), wherever they appear in a line.
package redact

import (
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Mask replaces a secret.
const Mask = "[REDACTED]"

var (
	mu      sync.RWMutex
	secrets []string
)

// Add registers secrets to mask from now on; empty strings and very short ones (which
// would mask ordinary words) are ignored.
func Add(s ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, v := range s {
		if len(v) >= 4 && !slices.Contains(secrets, v) {
			secrets = append(secrets, v)
		}
	}
	// Longest first, so a secret that contains another is masked whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
}

// userinfo matches scheme://userinfo@ in URLs: user:password keeps the user, a lone
// word (a token) is masked whole.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/@:]*)(:[^\s/@]*)?@`)

// String masks URL userinfo secrets and registered secrets in s.
func String(s string) string {
	if strings.Contains(s, "://") {
		s = userinfo.ReplaceAllStringFunc(s, func(m string) string {
			sub := userinfo.FindStringSubmatch(m)
			if sub[3] == "" {
				if sub[2] == "" {
					return m
				}
				return sub[1] + Mask + "@"
			}
			return sub[1] + sub[2] + ":" + Mask + "@"
		})
	}
	mu.RLock()
	defer mu.RUnlock()
	for _, v := range secrets {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Mask)
		}
	}
	return s
}

// Error is err's message with String applied.
func Error(err error) string {
	if err == nil {
		return ""
	}
	return String(err.Error())
}

type writer struct{ w io.Writer }

// Writer masks every write to w. Loggers and fmt print a line in one write, so a
// secret is never split across two.
func Writer(w io.Writer) io.Writer {
	if _, ok := w.(writer); ok {
		return w
	}
	return writer{w}
}

func (r writer) Write(p []byte) (int, error) {
	s := String(string(p))
	if _, err := io.WriteString(r.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Unwrap gives the underlying writer (a terminal check needs the file).
func (r writer) Unwrap() io.Writer { return r.w }
