package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/auditd-ns/auditd-ns/internal/buildinfo"
)

// newGenManCmd is the hidden command `make man` runs: a man page for each
// command, made from the same definitions as --help.
func newGenManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "write the man pages of every command into DIR",
		Hidden: true,
		Args:   exactArgs(1, "a directory DIR"),
		RunE: runE(func(cmd *cobra.Command, pos []string) error {
			if err := os.MkdirAll(pos[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "AUDITD-NS", Section: "8", Source: "auditd-ns " + buildinfo.Version(), Manual: "System Administration"}
			if err := doc.GenManTree(root, hdr, pos[0]); err != nil {
				return fmt.Errorf("writing the man pages: %w", err)
			}
			return nil
		}),
	}
}
