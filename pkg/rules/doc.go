// Package rules is the per-container filter language of auditd-ns: an
// ordered list of keep and drop rules in YAML, checked strictly with the
// file's line and column in every error, and compiled once into matchers
// that decide for each audit event, without allocating, whether a
// container's copy keeps it and which record types the copy leaves out.
//
// # Language
//
// A rules file (or the rules: value of a container file) is a YAML list.
// Each rule has keep: or drop: with a mapping of conditions that must all
// hold; the first rule that matches decides. An optional last item
// "default: keep" or "default: drop" decides the events no rule matched
// (keep when absent). A keep rule or a keep default can also strip record
// types from the events it keeps. docs/rules.md describes every condition
// with examples.
//
// # Concurrency
//
// A Program is immutable once Parse or FromNode returns it: any number of
// goroutines may call Match at once, and a registry swaps a container's
// program by storing a new pointer (atomic.Pointer) while records flow.
//
// # What it is not
//
// It does not group records into events (package router does) and it does
// not talk to the kernel. The other rule language, audit.rules files in
// auditctl syntax that the kernel filters with, is package auditrule.
package rules
