package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// defaultSocket is the daemon's control_socket default.
const defaultSocket = "/run/auditd-ns/control.sock"

const ctlUsage = `usage: auditd-ns ctl [--socket PATH] [--timeout D] COMMAND

commands:
  register FILE [--replace]           register the container file FILE
  register --name N (--id ID | --cgroup DIR) [--parent P]
           (--file PATH | --remote HOST:PORT [--netns PATH])
           [--rules FILE] [--memory SIZE] [--spool SIZE]
           [--scoped-socket PATH] [--replace]
                                      register a container described by flags
  unregister NAME [--spool] [--drain-timeout D]
                                      unregister; by default wait for its queue
                                      to be delivered, with --spool keep the
                                      queue in its spool on disk
  rules push NAME FILE                replace a container's rules
  containers [--json]                 list the containers
  status [--json]                     kernel, host log and containers

--socket defaults to $AUDITD_NS_SOCKET, else ` + defaultSocket + `.
`

// ctlCmd runs `auditd-ns ctl ARGS`, writing its output to out.
func ctlCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("socket", envOr("AUDITD_NS_SOCKET", defaultSocket), "control socket")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up after this long")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(out, ctlUsage)
		return nil
	} else if err != nil {
		return usageErr(err)
	}
	if fs.NArg() == 0 {
		return usageErr(errors.New("no command"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	run, ok := ctlCommands[cmd]
	if !ok {
		return usageErr(fmt.Errorf("unknown command %q", cmd))
	}
	return run(ctx, *sock, rest, out)
}

type ctlFunc func(ctx context.Context, sock string, args []string, out io.Writer) error

var ctlCommands = map[string]ctlFunc{
	"register":   ctlRegister,
	"unregister": ctlUnregister,
	"rules":      ctlRules,
	"containers": ctlContainers,
	"status":     ctlStatus,
}

func usageErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return errors.New("\n" + ctlUsage)
	}
	return fmt.Errorf("%w\n%s", err, ctlUsage)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// parseInterspersed parses flags anywhere among the arguments and returns
// the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}

func withClient(ctx context.Context, sock string, f func(*control.Client) error) error {
	c, err := control.Dial(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

func ctlRegister(ctx context.Context, sock string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	var spec containerSpec
	spec.flags(fs)
	replace := fs.Bool("replace", false, "replace a container of the same name")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	var file string
	var src []byte
	switch {
	case len(pos) == 1 && spec.empty():
		file = pos[0]
		if src, err = os.ReadFile(file); err != nil {
			return fmt.Errorf("reading the container file: %w", err)
		}
	case len(pos) == 0 && !spec.empty():
		file = "(command line)"
		if src, err = spec.yaml(); err != nil {
			return err
		}
	default:
		return usageErr(errors.New("register takes a container FILE or flags describing one, not both"))
	}
	return withClient(ctx, sock, func(c *control.Client) error {
		info, err := c.Register(ctx, file, src, *replace)
		if err == nil {
			fmt.Fprintf(out, "registered %s (%s)\n", info.Name, info.Target)
		}
		return err
	})
}

func ctlUnregister(ctx context.Context, sock string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("unregister", flag.ContinueOnError)
	spool := fs.Bool("spool", false, "keep queued copies in the spool instead of waiting for delivery")
	wait := fs.Duration("drain-timeout", control.DefaultDrainTimeout, "how long to wait for the queue to drain")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) != 1 {
		return usageErr(errors.New("unregister takes one container NAME"))
	}
	mode := control.ModeDrain
	if *spool {
		mode = control.ModeSpool
	}
	return withClient(ctx, sock, func(c *control.Client) error {
		r, err := c.Unregister(ctx, pos[0], mode, *wait)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "unregistered %s (%s): delivered %d, spooled %d, dropped %d\n", r.Name, r.Mode, r.Delivered, r.Spooled, r.Dropped)
		if r.Mode == control.ModeDrain && !r.Drained {
			fmt.Fprintf(out, "the queue did not drain within %s: what was left is in the spool\n", *wait)
		}
		return nil
	})
}

func ctlRules(ctx context.Context, sock string, args []string, out io.Writer) error {
	if len(args) != 3 || args[0] != "push" {
		return usageErr(errors.New("usage: rules push NAME FILE"))
	}
	name, file := args[1], args[2]
	src, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the rules file: %w", err)
	}
	return withClient(ctx, sock, func(c *control.Client) error {
		info, err := c.PushRules(ctx, name, file, src)
		if err == nil {
			fmt.Fprintf(out, "pushed %d rules to %s\n", info.Rules, info.Name)
		}
		return err
	})
}

func jsonFlag(name string, args []string) (bool, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("unexpected argument %q", pos[0])
	}
	if err != nil {
		return false, usageErr(err)
	}
	return *asJSON, nil
}

func ctlContainers(ctx context.Context, sock string, args []string, out io.Writer) error {
	asJSON, err := jsonFlag("containers", args)
	if err != nil {
		return err
	}
	return withClient(ctx, sock, func(c *control.Client) error {
		cs, err := c.Containers(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(out, nonNil(cs))
		}
		return printContainers(out, cs)
	})
}

func ctlStatus(ctx context.Context, sock string, args []string, out io.Writer) error {
	asJSON, err := jsonFlag("status", args)
	if err != nil {
		return err
	}
	return withClient(ctx, sock, func(c *control.Client) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(out, st)
		}
		return printStatus(out, st)
	})
}

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
	fmt.Fprintln(tw, "NAME\tID\tPARENT\tTARGET\tCONNECTED\tQUEUED\tDELIVERED\tDROPPED")
	for _, c := range cs {
		id := "-"
		switch {
		case c.ID != nil:
			id = strconv.FormatUint(*c.ID, 10)
		case c.Cgroup != "":
			id = "cgroup:" + c.Cgroup
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", c.Name, id, dash(c.Parent), c.Target, yesNo(c.Connected), c.Queued, c.Delivered, c.Dropped)
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
	// Set by oci-hook only: the file target is opened beneath Beneath,
	// rules (when set) wins over RulesFile, Owner marks the container
	// as the hook's.
	Beneath, Owner string
	rules          *yaml.Node
}

func (s *containerSpec) flags(fs *flag.FlagSet) {
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
}

func (s *containerSpec) empty() bool { return *s == containerSpec{} }

// yaml returns the container file s describes. The daemon validates it;
// a rules file is validated here so that its errors name its own lines.
func (s *containerSpec) yaml() ([]byte, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	add := func(k string, v *yaml.Node) { m.Content = append(m.Content, scalar(k), v) }
	str := func(k, v string) {
		if v != "" {
			add(k, scalar(v))
		}
	}
	str("name", s.Name)
	str("id", s.ID)
	str("cgroup", s.Cgroup)
	str("parent", s.Parent)
	d := &yaml.Node{Kind: yaml.MappingNode}
	for _, kv := range [][2]string{{"file", s.File}, {"beneath", s.Beneath}, {"remote", s.Remote}, {"netns", s.NetNS}} {
		if kv[1] != "" {
			d.Content = append(d.Content, scalar(kv[0]), scalar(kv[1]))
		}
	}
	add("deliver", d)
	if s.Memory != "" || s.Spool != "" {
		q := &yaml.Node{Kind: yaml.MappingNode}
		for _, kv := range [][2]string{{"memory", s.Memory}, {"spool", s.Spool}} {
			if kv[1] != "" {
				q.Content = append(q.Content, scalar(kv[0]), scalar(kv[1]))
			}
		}
		add("queue", q)
	}
	str("socket", s.Socket)
	str("owner", s.Owner)
	if s.rules != nil {
		add("rules", s.rules)
	} else if s.RulesFile != "" {
		n, err := rulesNode(s.RulesFile)
		if err != nil {
			return nil, err
		}
		add("rules", n)
	}
	return yaml.Marshal(m)
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

func rulesNode(path string) (*yaml.Node, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the rules file: %w", err)
	}
	return rulesNodeOf(src, path)
}

// rulesNodeOf checks the rules file src (read from path) and returns it
// as a YAML node.
func rulesNodeOf(src []byte, path string) (*yaml.Node, error) {
	if _, err := rules.Parse(src, path); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the rules file is empty", path)
	}
	return doc.Content[0], nil
}
