package config

import (
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong (or, with Warning, suspicious) in a test config, with the
// position of the offending YAML node.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"` // from 1; 0 when unknown
	Col     int    `json:"col,omitempty"`  // from 1; 0 when unknown
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	Warning bool   `json:"warning,omitempty"`
}

// String formats the problem as FILE:LINE:COL: field.path: message, the form editors and
// terminals turn into links. Warnings carry "warning: " before the message.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	if p.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// HasErrors reports whether any problem is an error rather than a warning.
func HasErrors(ps []Problem) bool {
	return slices.ContainsFunc(ps, func(p Problem) bool { return !p.Warning })
}

// SortProblems orders problems by file, line, column, then field.
func SortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		if a.Col != b.Col {
			return a.Col - b.Col
		}
		return strings.Compare(a.Field, b.Field)
	})
}

// FieldProblem is an error about one field of the test, placed at that field's
// position in the file (or its closest written ancestor's, or 1:1).
func (t *Test) FieldProblem(field, message string) Problem {
	pos := t.pos.posOf(field)
	if pos.Line == 0 {
		pos = Pos{1, 1}
	}
	if src := t.Sources[field]; src != "" && src != "default" {
		message += " (value from " + src + ")"
	}
	return Problem{File: t.Path, Line: pos.Line, Col: pos.Col, Field: field, Message: message}
}
