package rules

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a rules file. Line and Col count from 1 and point
// at the YAML node concerned; Col is 0 when only the line is known (some
// YAML syntax errors), and Line is 0 when neither is.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Error formats the problem as FILE:LINE:COL: MSG.
func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// errList collects the problems found while compiling, so that one run
// reports all of them.
type errList struct {
	file string
	errs []error
}

func (l *errList) at(n *yaml.Node, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
}

// err returns nil, the single *Error, or all of them joined (errors.As and
// errors.Is see each).
func (l *errList) err() error {
	if len(l.errs) == 1 {
		return l.errs[0]
	}
	return errors.Join(l.errs...)
}
