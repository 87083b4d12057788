package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// defaultSocket is the daemon's control_socket default.
const defaultSocket = "/run/auditd-ns/control.sock"

// ctlOpts are the flags every ctl command takes.
type ctlOpts struct {
	sock    string
	timeout time.Duration
}

func (o *ctlOpts) context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), o.timeout)
}

func newCtlCmd() *cobra.Command {
	o := &ctlOpts{}
	cmd := &cobra.Command{
		Use:   "ctl [--socket PATH] [--timeout D] COMMAND",
		Short: "talk to the running daemon: register, unregister, rules push, containers, status",
		Long: `Talk to the running daemon through its control socket: register and
unregister containers, replace a container's rules, list the containers,
show the daemon's status.

When no daemon answers on the socket (no such socket, or nobody accepting),
ctl exits with code 3, so that scripts can tell it from a refused request
(exit 1) and a wrong command line (exit 2).`,
		Args: groupArgs,
		RunE: groupRun,
	}
	cmd.PersistentFlags().StringVar(&o.sock, "socket", envOr("AUDITD_NS_SOCKET", defaultSocket), "the daemon's control socket ($AUDITD_NS_SOCKET, else "+defaultSocket+")")
	cmd.PersistentFlags().DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up after this long")
	cmd.AddCommand(o.registerCmd(), o.unregisterCmd(), o.rulesCmd(), o.containersCmd(), o.statusCmd())
	return cmd
}

// ctlCmd runs `auditd-ns ctl ARGS`, writing its output to out.
func ctlCmd(args []string, out io.Writer) error {
	_, err := runCLI(append([]string{"ctl"}, args...), os.Stdin, out, io.Discard)
	return err
}

// withClient dials the daemon and runs f. A socket nobody listens on is a
// *noDaemonError (exit code 3).
func withClient(ctx context.Context, sock string, f func(*control.Client) error) error {
	c, err := control.Dial(ctx, sock)
	if err != nil {
		if isNoDaemon(err) {
			return &noDaemonError{sock: sock, err: err}
		}
		return err
	}
	defer c.Close()
	return f(c)
}

func (o *ctlOpts) registerCmd() *cobra.Command {
	var spec containerSpec
	var replace bool
	cmd := &cobra.Command{
		Use:   "register (FILE | --name N (--id ID | --cgroup DIR) (--file PATH | --remote HOST:PORT [--netns PATH]) [flags]) [--replace]",
		Short: "register a container from its container file, or from flags",
		Long: `Register a container: from its container file FILE (docs/containers.md),
or from flags that describe one. Errors name the flag (--parent web: ...)
or the container file's FILE:LINE:COL.`,
		Example: `  auditd-ns ctl register /etc/auditd-ns/containers/web.yaml
  auditd-ns ctl register --name web --cgroup /sys/fs/cgroup/system.slice/web.scope \
      --file /var/lib/web/audit/audit.log --memory 4MiB`,
		RunE: runE(func(cmd *cobra.Command, pos []string) error {
			var file string
			var src []byte
			var lines map[int]string
			var err error
			switch {
			case len(pos) == 1 && spec.empty():
				file = pos[0]
				if src, err = os.ReadFile(file); err != nil {
					return fmt.Errorf("reading the container file: %w", err)
				}
			case len(pos) == 0 && !spec.empty():
				file = cmdLineFile
				if src, err = spec.yaml(); err != nil {
					return err
				}
				lines = spec.flagLines(src)
			case len(pos) > 1:
				return usagef("unexpected argument %q: register takes one container FILE", pos[1])
			case len(pos) == 0:
				return usagef("register takes a container FILE or flags describing one (--name, --id or --cgroup, --file or --remote)")
			default:
				return usagef("register takes a container FILE or flags describing one, not both")
			}
			ctx, cancel := o.context(cmd)
			defer cancel()
			return withClient(ctx, o.sock, func(c *control.Client) error {
				info, err := c.Register(ctx, file, src, replace)
				if err != nil {
					return flagErrors(err, lines)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "registered %s (%s)\n", info.Name, info.Target)
				return nil
			})
		}),
	}
	spec.flags(cmd.Flags())
	cmd.Flags().BoolVar(&replace, "replace", false, "replace a container of the same name")
	return cmd
}

func (o *ctlOpts) unregisterCmd() *cobra.Command {
	var spool bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "unregister NAME [--spool] [--drain-timeout D]",
		Short: "unregister a container",
		Long: `Unregister a container. By default wait (up to --drain-timeout) for its
queue to be delivered; with --spool keep the queue in its spool on disk.`,
		Args: exactArgs(1, "one container NAME"),
		RunE: runE(func(cmd *cobra.Command, pos []string) error {
			mode := control.ModeDrain
			if spool {
				mode = control.ModeSpool
			}
			ctx, cancel := o.context(cmd)
			defer cancel()
			return withClient(ctx, o.sock, func(c *control.Client) error {
				r, err := c.Unregister(ctx, pos[0], mode, wait)
				if err != nil {
					return nameHint(ctx, c, pos[0], err)
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "unregistered %s (%s): delivered %d, spooled %d, dropped %d\n", r.Name, r.Mode, r.Delivered, r.Spooled, r.Dropped)
				if r.Mode == control.ModeDrain && !r.Drained {
					fmt.Fprintf(out, "the queue did not drain within %s: what was left is in the spool\n", wait)
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&spool, "spool", false, "keep queued copies in the spool instead of waiting for delivery")
	cmd.Flags().DurationVar(&wait, "drain-timeout", control.DefaultDrainTimeout, "how long to wait for the queue to drain")
	return cmd
}

func (o *ctlOpts) rulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules COMMAND",
		Short: "manage a container's filter rules",
		Args:  groupArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "push NAME FILE",
		Short: "replace a container's filter rules with the rules file FILE",
		Args:  exactArgs(2, "a container NAME and a rules FILE"),
		RunE: runE(func(cmd *cobra.Command, pos []string) error {
			name, file := pos[0], pos[1]
			src, err := os.ReadFile(file)
			if err != nil {
				return readError(file, err)
			}
			ctx, cancel := o.context(cmd)
			defer cancel()
			return withClient(ctx, o.sock, func(c *control.Client) error {
				info, err := c.PushRules(ctx, name, file, src)
				if err != nil {
					return nameHint(ctx, c, name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pushed %d rules to %s\n", info.Rules, info.Name)
				return nil
			})
		}),
	})
	return cmd
}

func (o *ctlOpts) containersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "containers [--json]",
		Short: "list the registered containers",
		Args:  exactArgs(0, "no arguments"),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := o.context(cmd)
			defer cancel()
			return withClient(ctx, o.sock, func(c *control.Client) error {
				cs, err := c.Containers(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), nonNil(cs))
				}
				return printContainers(cmd.OutOrStdout(), cs)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (o *ctlOpts) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "the kernel, the host log, the router and the containers, with each target's last error",
		Args:  exactArgs(0, "no arguments"),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := o.context(cmd)
			defer cancel()
			return withClient(ctx, o.sock, func(c *control.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), st)
				}
				return printStatus(cmd.OutOrStdout(), st)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// readError names a file that cannot be read by its path alone:
// "FILE: no such file or directory".
func readError(file string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", file, pe.Err)
	}
	return err
}

// nameHint adds a did-you-mean to a not-found error when a registered
// container's name is a near miss of name.
func nameHint(ctx context.Context, c *control.Client, name string, err error) error {
	if !errors.Is(err, control.ErrNotFound) {
		return err
	}
	cs, lerr := c.Containers(ctx)
	if lerr != nil {
		return err
	}
	var names []string
	for _, o := range cs {
		names = append(names, o.Name)
	}
	if s := suggest(name, names); s != "" {
		return fmt.Errorf("%w (did you mean %q?)", err, s)
	}
	return err
}

// cmdLineFile names the container file ctl register makes from its flags;
// flagErrors puts the flags back in the daemon's errors.
const cmdLineFile = "(command line)"

var cmdLinePos = regexp.MustCompile(regexp.QuoteMeta(cmdLineFile) + `:(\d+)(?::\d+)?: `)

// flagErrors rewrites the daemon's errors about the container file made
// from flags (FILE:LINE:COL) to name the flag that set that line.
func flagErrors(err error, lines map[int]string) error {
	if lines == nil || !strings.Contains(err.Error(), cmdLineFile) {
		return err
	}
	msg := cmdLinePos.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, _ := strconv.Atoi(cmdLinePos.FindStringSubmatch(m)[1])
		if f, ok := lines[n]; ok {
			return f + ": "
		}
		return "the flags: "
	})
	return &flagErr{msg: msg, err: err}
}

// flagErr is a daemon's error reworded to name flags; errors.Is still
// sees the daemon's code.
type flagErr struct {
	msg string
	err error
}

func (e *flagErr) Error() string { return e.msg }
func (e *flagErr) Unwrap() error { return e.err }

func nonNil(cs []control.ContainerInfo) []control.ContainerInfo {
	if cs == nil {
		return []control.ContainerInfo{}
	}
	return cs
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printContainers(out io.Writer, cs []control.ContainerInfo) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tPARENT\tVIEW\tTARGET\tCONNECTED\tQUEUED\tDELIVERED\tDROPPED\tLAST ERROR")
	for _, c := range cs {
		id := "-"
		switch {
		case c.ID != nil:
			id = strconv.FormatUint(*c.ID, 10)
		case c.Cgroup != "":
			id = "cgroup:" + c.Cgroup
		}
		conn := yesNo(c.Connected)
		if c.ReceiverBound {
			conn += " (receiver is the bottleneck)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", c.Name, id, dash(c.Parent), dash(c.View), c.Target, conn, c.Queued, c.Delivered, c.Dropped, lastError(c))
	}
	return tw.Flush()
}

func printStatus(out io.Writer, st control.Status) error {
	if k := st.Kernel; k != nil {
		fmt.Fprintf(out, "kernel:      enabled %d, audit pid %d, lost %d, backlog %d/%d, attribution %s",
			k.Enabled, k.PID, k.Lost, k.Backlog, k.BacklogLimit, k.Attribution)
		if k.Foreign > 0 {
			fmt.Fprintf(out, ", %d foreign messages dropped", k.Foreign)
		}
		fmt.Fprintln(out)
	}
	if h := st.HostLog; h != nil {
		state := "writing"
		if h.Suspended {
			state = "SUSPENDED"
		}
		fmt.Fprintf(out, "host log:    %s, %s, %d records, %d bytes, %d rotations, %d dropped\n",
			h.Path, state, h.Records, h.Bytes, h.Rotations, h.Dropped)
	}
	if r := st.Router; r != nil {
		fmt.Fprintf(out, "router:      %d records, %d events (%d partial), %d unattributed, %d overflow, %d malformed, %d bad chains\n",
			r.Records, r.Events, r.Partial, r.Unattributed, r.Overflow, r.Malformed, r.BadChain)
	}
	if t := st.Tracker; t != nil {
		watch, idle := "", ""
		if !t.Watching {
			watch = ", cgroup.procs NOT watched"
		}
		if t.Idle {
			idle = " (idle: no container to follow)"
		}
		fmt.Fprintf(out, "tracker:     %s%s, %d process events, %d /proc reads, %d overruns, %d execs missed, %d self-moves, %d gone movers%s; lookups: %d hits, %d by parent, %d ambiguous, %d missed; %d processes, %d dropped\n",
			t.Attribution, idle, t.Events, t.ProcReads, t.Overruns, t.ExecMissed, t.Moves, t.Gone, watch, t.Hits, t.ParentHits, t.Ambiguous, t.Misses, t.Processes, t.Dropped)
	}
	for _, p := range st.Plugins {
		fmt.Fprintf(out, "plugin:      %s (%s): %s, %d sent, %d dropped, %d/%d queued, %d restarts", p.Name, p.Path, p.State, p.Sent, p.Dropped, p.Queued, p.QDepth, p.Restarts)
		if p.LastError != "" {
			fmt.Fprintf(out, ", last error: %s", p.LastError)
		}
		fmt.Fprintln(out)
	}
	if e := st.Export; e != nil {
		state := "connected"
		if !e.Connected {
			state = "DISCONNECTED"
		}
		fmt.Fprintf(out, "export:      %s %s, %s, %d acked, %d duplicates, %d retried, %d queued, %d dropped", e.URL, e.Subject, state, e.Acked, e.Duplicates, e.Retried, e.Queued, e.Dropped)
		if e.LastError != "" {
			fmt.Fprintf(out, ", last error: %s", e.LastError)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "containers:  %d\n", len(st.Containers))
	if len(st.Containers) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	if err := printContainers(out, st.Containers); err != nil {
		return err
	}
	for _, c := range st.Containers {
		if len(c.Namespaces) == 0 {
			continue
		}
		keys := make([]string, 0, len(c.Namespaces))
		for k := range c.Namespaces {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(out, "\nnamespaces of %s at registration:", c.Name)
		for _, k := range keys {
			fmt.Fprintf(out, " %s=%s", k, c.Namespaces[k])
		}
		fmt.Fprintln(out)
	}
	return nil
}

// lastError is a target's last delivery error, on one line, with its time
// (UTC) when the daemon gave one.
func lastError(c control.ContainerInfo) string {
	if c.LastError == "" {
		return "-"
	}
	msg := strings.Join(strings.Fields(c.LastError), " ")
	if c.LastErrorTime.IsZero() {
		return msg
	}
	return c.LastErrorTime.UTC().Format("15:04:05Z") + " " + msg
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// containerSpec describes a container by flags (ctl register) or by OCI
// annotations (oci-hook); yaml makes its container file.
type containerSpec struct {
	Name, ID, Cgroup, Parent string
	File, Remote, NetNS      string
	RulesFile, Socket        string
	Memory, Spool            string
	View                     string
	// Set by oci-hook only: the file target is opened beneath Beneath,
	// rules (when set) wins over RulesFile, Owner marks the container
	// as the hook's.
	Beneath, Owner, FileOwner string
	rules                     *yaml.Node
}

func (s *containerSpec) flags(fs *pflag.FlagSet) {
	fs.StringVar(&s.Name, "name", "", "container name")
	fs.StringVar(&s.ID, "id", "", "audit container ID")
	fs.StringVar(&s.Cgroup, "cgroup", "", "cgroup directory (stock kernel)")
	fs.StringVar(&s.Parent, "parent", "", "enclosing container")
	fs.StringVar(&s.File, "file", "", "deliver copies to this file")
	fs.StringVar(&s.Remote, "remote", "", "deliver copies to this HOST:PORT")
	fs.StringVar(&s.NetNS, "netns", "", "connect to --remote from this network namespace")
	fs.StringVar(&s.RulesFile, "rules", "", "rules file")
	fs.StringVar(&s.Socket, "scoped-socket", "", "create a scoped control socket here")
	fs.StringVar(&s.Memory, "memory", "", "queue memory limit, like 4MiB")
	fs.StringVar(&s.Spool, "spool", "", "queue spool limit, like 64MiB")
	fs.StringVar(&s.View, "view", "", "container (the default: pids and ids as the container's namespaces show them) or host")
}

func (s *containerSpec) empty() bool { return *s == containerSpec{} }

// yaml returns the container file s describes. The daemon validates it;
// a rules file is validated here so that its errors name its own lines.
func (s *containerSpec) yaml() ([]byte, error) {
	spec := registry.Spec{
		Name: s.Name, ID: s.ID, Cgroup: s.Cgroup, Parent: s.Parent,
		File: s.File, Beneath: s.Beneath, FileOwner: s.FileOwner, Remote: s.Remote, NetNS: s.NetNS,
		Memory: s.Memory, Spool: s.Spool, Socket: s.Socket, Owner: s.Owner,
		View:  s.View,
		Rules: s.rules,
		// The first line is no flag's: an error about the whole file names it.
		Comment: "container file made from the command line's flags",
	}
	if spec.Rules == nil && s.RulesFile != "" {
		n, err := rulesNode(s.RulesFile)
		if err != nil {
			return nil, err
		}
		spec.Rules = n
	}
	return spec.Marshal()
}

// flagLabels are the flags that set the container file's keys.
var flagLabels = map[string]string{
	"name": "--name", "id": "--id", "cgroup": "--cgroup", "parent": "--parent",
	"socket": "--scoped-socket", "deliver.file": "--file", "deliver.remote": "--remote",
	"deliver.netns": "--netns", "queue.memory": "--memory", "queue.spool": "--spool",
	"deliver": "--file or --remote", "queue": "--memory or --spool", "view": "--view",
}

// flagLines maps the lines of the container file src, which yaml made,
// to the flags that set them: "--parent web". Every line of the rules
// is --rules FILE.
func (s *containerSpec) flagLines(src []byte) map[int]string {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 {
		return map[int]string{}
	}
	lines := map[int]string{}
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			switch {
			case key == "rules":
				for l := k.Line; l <= bytes.Count(src, []byte("\n"))+1; l++ {
					lines[l] = "--rules " + quoteArg(s.RulesFile)
				}
			case v.Kind == yaml.MappingNode:
				lines[k.Line] = flagLabels[key]
				walk(key+".", v)
			case flagLabels[key] != "":
				lines[k.Line] = flagLabels[key] + " " + quoteArg(v.Value)
			}
		}
	}
	walk("", doc.Content[0])
	return lines
}

// quoteArg quotes a flag's value as a shell would need it.
func quoteArg(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n'\"\\$`;&|<>()*?[]#~") {
		return v
	}
	return strconv.Quote(v)
}

func rulesNode(path string) (*yaml.Node, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--rules %s", readError(path, err))
	}
	return registry.RulesNode(src, path)
}
