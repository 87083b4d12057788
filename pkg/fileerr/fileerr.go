// Package fileerr is the one error type of every file auditd-ns reads: the
// daemon's config, audit.rules files, container files and filter rules. An
// Error names the file, the line and the column of one problem; a List
// collects every problem of one file so that one run reports all of them.
//
// It is not for errors of the system (a file that cannot be opened): those
// are wrapped as usual.
package fileerr

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/internal/yamltext"
)

// Error is one problem in a file. Line and Col count from 1; Col is 0 when
// only the line is known (some YAML syntax errors), Line is 0 when neither
// is.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

// Error formats the problem as FILE:LINE:COL: MSG, leaving out what is 0.
func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// At returns the problem at a YAML node of file.
func At(file string, n *yaml.Node, format string, args ...any) *Error {
	return &Error{File: file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
}

// List collects the problems of one file. The zero value is a list for a
// file without a name; set File.
type List struct {
	File string
	errs []error
}

// At adds a problem at a YAML node.
func (l *List) At(n *yaml.Node, format string, args ...any) {
	l.errs = append(l.errs, At(l.File, n, format, args...))
}

// AtPos adds a problem at a line and column.
func (l *List) AtPos(line, col int, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.File, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// Add adds an error as it is.
func (l *List) Add(err error) { l.errs = append(l.errs, err) }

// Err returns nil, the single problem, or all of them joined (errors.As and
// errors.Is see each).
func (l *List) Err() error {
	if len(l.errs) == 1 {
		return l.errs[0]
	}
	return errors.Join(l.errs...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// FromYAML turns a yaml.v3 syntax error in src, the text of file, into an
// *Error with its line. yaml.v3 names the line of a syntax error but not its
// column; a byte YAML does not allow, which yaml.v3 reports without a place,
// is found here to the column.
func FromYAML(src []byte, file string, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: "yaml: " + m[2]}
	}
	e := &Error{File: file, Msg: msg}
	if off := yamltext.BadByte(src); off >= 0 {
		e.Line = 1 + bytes.Count(src[:off], []byte("\n"))
		e.Col = 1 + utf8.RuneCount(src[bytes.LastIndexByte(src[:off], '\n')+1:off])
	}
	return e
}
