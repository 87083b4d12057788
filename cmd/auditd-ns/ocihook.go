package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// The OCI annotations the hook reads; docs/control.md describes them.
// Whoever writes a container's config writes its annotations: they choose
// only among what the admin's hook config (hookconfig.go) allows.
const annotationPrefix = "org.auditd-ns."

var ociAnnotations = []string{
	"parent", "deliver.file", "deliver.remote", "rules", "memory", "spool", "required", "drain-timeout",
}

// refusedAnnotations were read before the hook had a trust model: each
// let the annotation author choose a host fact. They are refused, saying
// what the hook uses instead.
var refusedAnnotations = map[string]string{
	"name":          "the container's name is its OCI id",
	"cgroup":        "the hook registers the cgroup of the container's own process (/proc/PID/cgroup)",
	"deliver.netns": "a remote target is dialled from the container's own network namespace (/proc/PID/ns/net)",
	"contid":        "the audit container ID is derived from the OCI id",
}

// hookOwner marks the containers the hook registered (registry owner:):
// poststop unregisters only those.
const hookOwner = "oci-hook"

// hook is one run of the OCI hook.
type hook struct {
	state    specs.State
	ann      map[string]string // org.auditd-ns.* annotations, prefix cut
	proc     string
	sock     string
	config   string // the admin's hook config file
	timeout  time.Duration
	required bool
}

func newOCIHookCmd() *cobra.Command {
	h := &hook{}
	cmd := &cobra.Command{
		Use:   "oci-hook [--socket PATH] [--config FILE] [createRuntime|poststop]",
		Short: "OCI runtime hook: register a container under its OCI id (OCI state on stdin)",
		Long: `The OCI runtime hook (runc, crun, podman's hooks.d): at createRuntime it
registers the container under its OCI id, with the target its
org.auditd-ns.* annotations choose among what the admin's hook config
allows; at poststop it unregisters it. The OCI state is read on stdin; the
stage is the argument, else inferred from the state's status.

A failure fails the hook (and so the container's start) only when the
container's org.auditd-ns.required annotation is "true"; otherwise it is
written to stderr and the hook succeeds.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("unexpected argument %q: oci-hook takes at most a STAGE", args[1])
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, pos []string) error {
			return h.main(pos, cmd.InOrStdin(), cmd.ErrOrStderr())
		}),
	}
	f := cmd.Flags()
	f.StringVar(&h.sock, "socket", envOr("AUDITD_NS_SOCKET", defaultSocket), "the daemon's control socket")
	f.StringVar(&h.config, "config", defaultHookConfig, "the admin's hook config: what annotations may choose")
	f.StringVar(&h.proc, "proc", "/proc", "procfs mount")
	f.DurationVar(&h.timeout, "timeout", 10*time.Second, "give up reaching the daemon after this long")
	return cmd
}

// ociHookCmd runs `auditd-ns oci-hook ARGS` with stdin as the OCI state
// and warn as its stderr.
func ociHookCmd(args []string, stdin io.Reader, warn io.Writer) error {
	_, err := runCLI(append([]string{"oci-hook"}, args...), stdin, io.Discard, warn)
	return err
}

// main is one run of the hook with the positional arguments pos.
func (h *hook) main(pos []string, stdin io.Reader, warn io.Writer) error {
	if err := h.readState(stdin); err != nil {
		return err
	}
	stage := h.stage(pos)
	if err := h.run(stage); err != nil {
		err = fmt.Errorf("%s of container %q: %w", stage, h.state.ID, err)
		if h.required {
			return err
		}
		fmt.Fprintf(warn, "auditd-ns oci-hook: %v (the container goes on: %srequired is not \"true\")\n", err, annotationPrefix)
	}
	return nil
}

func (h *hook) readState(r io.Reader) error {
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(r, 4<<20)))
	if err := dec.Decode(&h.state); err != nil {
		return fmt.Errorf("reading the OCI state on stdin: %w", err)
	}
	if h.state.ID == "" {
		return errors.New("reading the OCI state on stdin: no container id")
	}
	h.ann = map[string]string{}
	for k, v := range h.state.Annotations {
		if name, ok := strings.CutPrefix(k, annotationPrefix); ok {
			h.ann[name] = v
		}
	}
	h.required = h.ann["required"] == "true"
	return nil
}

// stage is the hook's argument (runc passes the args of the hook's
// entry in config.json), else inferred from the state's status.
func (h *hook) stage(pos []string) string {
	if len(pos) == 1 {
		return pos[0]
	}
	switch h.state.Status {
	case specs.StateCreating, specs.StateCreated:
		return "createRuntime"
	case specs.StateStopped:
		return "poststop"
	}
	return "status " + strconv.Quote(string(h.state.Status))
}

func (h *hook) run(stage string) error {
	if err := h.checkAnnotations(); err != nil {
		return err
	}
	if h.ann["deliver.file"] == "" && h.ann["deliver.remote"] == "" {
		return nil // not a container auditd-ns is asked to serve
	}
	if err := checkOCIID(h.state.ID); err != nil {
		return err
	}
	switch stage {
	case "createRuntime", "prestart":
		cfg, err := loadHookConfig(h.config)
		if err != nil {
			return err
		}
		return h.create(cfg)
	case "poststop":
		return h.poststop()
	}
	return fmt.Errorf("unknown hook stage %s (known: createRuntime, prestart, poststop)", stage)
}

func (h *hook) checkAnnotations() error {
	var unknown, refused []string
	for k := range h.ann {
		if why, ok := refusedAnnotations[k]; ok {
			refused = append(refused, fmt.Sprintf("%s%s (%s)", annotationPrefix, k, why))
		} else if !containsString(ociAnnotations, k) {
			unknown = append(unknown, annotationPrefix+k)
		}
	}
	sort.Strings(unknown)
	sort.Strings(refused)
	if len(refused) > 0 {
		return fmt.Errorf("annotations not accepted: %s", strings.Join(refused, "; "))
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown annotations %s (known: %s*: %s)", strings.Join(unknown, ", "), annotationPrefix, strings.Join(ociAnnotations, ", "))
	}
	if r := h.ann["required"]; r != "" && r != "true" && r != "false" {
		return fmt.Errorf("annotation %srequired is %q: use true or false", annotationPrefix, r)
	}
	return nil
}

// checkOCIID checks that the OCI id can name the container: the daemon
// names its spool after it, and a container name is letters, digits, '-',
// '_' and '.', at most 128 of them.
func checkOCIID(id string) error {
	ok := len(id) <= 128 && id != "." && id != ".."
	for i, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && strings.ContainsRune("-_.", r)) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("the OCI id %q cannot name a container: use at most 128 letters, digits, '-', '_' and '.', starting with a letter or digit", id)
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// create registers the container under its OCI id, with the cgroup of its
// own process (stock kernel) or a contid derived from its id (patched
// kernel), and a target that the admin's config allows.
func (h *hook) create(cfg *hookConfig) error {
	if h.state.Pid <= 0 {
		return fmt.Errorf("the OCI state has no pid (%d)", h.state.Pid)
	}
	spec := containerSpec{Name: h.state.ID, Parent: h.ann["parent"], Owner: hookOwner}
	if err := h.target(cfg, &spec); err != nil {
		return err
	}
	if err := h.queue(cfg, &spec); err != nil {
		return err
	}
	if r := h.ann["rules"]; r != "" {
		n, err := cfg.rulesNode(r)
		if err != nil {
			return err
		}
		spec.rules = n
	}
	if p := spec.Parent; p != "" && !containsString(cfg.Parents, p) {
		return fmt.Errorf("annotation %sparent %q: not among the parents the hook config %s allows (%s)", annotationPrefix, p, h.config, listOrNone(cfg.Parents))
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	return withClient(ctx, h.sock, func(c *control.Client) error {
		// Nothing is written to the container's process before its name
		// (and target file) is known to be free.
		cs, err := c.Containers(ctx)
		if err != nil {
			return err
		}
		for _, o := range cs {
			switch {
			case o.Name == spec.Name:
				return fmt.Errorf("a container named %q is already registered (%s): not registering another", o.Name, ownerText(o.Owner))
			case spec.File != "" && o.Target == "file:"+spec.File:
				return fmt.Errorf("annotation %sdeliver.file %q: container %q delivers there already", annotationPrefix, spec.File, o.Name)
			}
		}
		idFile := filepath.Join(h.proc, strconv.Itoa(h.state.Pid), "audit_containerid")
		if _, err := os.Stat(idFile); err == nil {
			id := deriveContid(h.state.ID)
			for _, o := range cs {
				if o.ID != nil && *o.ID == id {
					return fmt.Errorf("the contid %d derived from the OCI id is used by container %q", id, o.Name)
				}
			}
			if err := setContid(idFile, id); err != nil {
				return err
			}
			spec.ID = strconv.FormatUint(id, 10)
		} else if spec.Cgroup, err = h.cgroup(); err != nil {
			return err
		}
		src, err := spec.yaml()
		if err != nil {
			return err
		}
		_, err = c.Register(ctx, "OCI hook, container "+h.state.ID, src, false)
		return err
	})
}

func ownerText(owner string) string {
	if owner == "" {
		return "by the host admin"
	}
	return "by " + owner
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// cgroup is the cgroup of the container's own process. The cgroup root,
// or the hook's own cgroup (the runtime's), holds host processes: neither
// is the container's.
func (h *hook) cgroup() (string, error) {
	cg, err := cgroupOf(h.proc, h.state.Pid)
	if err != nil {
		return "", err
	}
	mnt, err := cgroup2Mount(filepath.Join(h.proc, "self", "mountinfo"))
	if err != nil {
		return "", err
	}
	if filepath.Clean(cg) == filepath.Clean(mnt) {
		return "", fmt.Errorf("the container's process %d is in the root cgroup %s: refusing to claim every host event", h.state.Pid, cg)
	}
	if self, err := cgroupOf(h.proc, 0); err == nil && self == cg {
		return "", fmt.Errorf("the container's process %d is in the runtime's own cgroup %s: refusing to claim the host's events", h.state.Pid, cg)
	}
	return cg, nil
}

// target sets spec's target from the annotations, as the config allows.
func (h *hook) target(cfg *hookConfig, spec *containerSpec) error {
	file, remote := h.ann["deliver.file"], h.ann["deliver.remote"]
	if file != "" && remote != "" {
		return fmt.Errorf("annotations %sdeliver.file and %sdeliver.remote are both given: give one", annotationPrefix, annotationPrefix)
	}
	if file != "" {
		// A user-namespaced container's root gets its directory and
		// file, so that it can read them.
		owner, err := containerRoot(h.proc, h.state.Pid)
		if err != nil {
			return err
		}
		path, base, err := cfg.fileTarget(file, h.state.ID, owner)
		if err != nil {
			return fmt.Errorf("annotation %sdeliver.file %q: %w", annotationPrefix, file, err)
		}
		spec.File, spec.Beneath = path, base
		if owner != nil {
			spec.FileOwner = fmt.Sprintf("%d:%d", owner.uid, owner.gid)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(remote)
	if err != nil || host == "" {
		return fmt.Errorf("annotation %sdeliver.remote %q is not HOST:PORT", annotationPrefix, remote)
	}
	n, err := strconv.Atoi(port)
	if err != nil || !containsInt(cfg.Remote.Ports, n) {
		return fmt.Errorf("annotation %sdeliver.remote %q: port %s is not among the ports the hook config %s allows (%s)", annotationPrefix, remote, port, h.config, intsOrNone(cfg.Remote.Ports))
	}
	netns := filepath.Join(h.proc, strconv.Itoa(h.state.Pid), "ns", "net")
	own, err := os.Stat(netns)
	if err != nil {
		return fmt.Errorf("the container's network namespace: %w", err)
	}
	if hostNS, err := os.Stat(filepath.Join(h.proc, "self", "ns", "net")); err == nil && os.SameFile(own, hostNS) && !cfg.Remote.HostNetns {
		return fmt.Errorf("annotation %sdeliver.remote: the container shares the host's network namespace, and the hook config %s does not allow remote targets there (remote: {host_netns: true})", annotationPrefix, h.config)
	}
	spec.Remote, spec.NetNS = remote, netns
	return nil
}

func containsInt(l []int, n int) bool {
	for _, v := range l {
		if v == n {
			return true
		}
	}
	return false
}

func intsOrNone(l []int) string {
	var s []string
	for _, v := range l {
		s = append(s, strconv.Itoa(v))
	}
	return listOrNone(s)
}

// queue sets spec's queue limits: the config's defaults, or the
// annotations' up to the config's maxima.
func (h *hook) queue(cfg *hookConfig, spec *containerSpec) error {
	for _, q := range []struct {
		key      string
		def, max int64
		out      *string
	}{{"memory", cfg.memory, cfg.maxMemory, &spec.Memory}, {"spool", cfg.spool, cfg.maxSpool, &spec.Spool}} {
		n := q.def
		if s := h.ann[q.key]; s != "" {
			v, err := registry.ParseSize(s)
			if err != nil {
				return fmt.Errorf("annotation %s%s: %w", annotationPrefix, q.key, err)
			}
			if v > q.max {
				return fmt.Errorf("annotation %s%s %q: more than the %d bytes the hook config %s allows (queue: {max_%s: ...})", annotationPrefix, q.key, s, q.max, h.config, q.key)
			}
			n = v
		}
		*q.out = strconv.FormatInt(n, 10)
	}
	return nil
}

// deriveContid is the contid of a container whose annotations give none:
// the first 8 bytes of SHA-256("auditd-ns contid\x00" + id), big-endian,
// shifted right by 11 bits so that it stays below 2^53 (exact in JSON
// tools that read numbers as doubles), and 1 instead of 0.
func deriveContid(id string) uint64 {
	sum := sha256.Sum256([]byte("auditd-ns contid\x00" + id))
	v := binary.BigEndian.Uint64(sum[:8]) >> 11
	if v == 0 {
		v = 1
	}
	return v
}

// setContid writes id to a task's audit_containerid. A task that has it
// already (EEXIST) is fine when the value is the same.
func setContid(path string, id uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0) // O_TRUNC as a shell's echo >; procfs ignores it
	if err != nil {
		return fmt.Errorf("setting the audit container ID: %w", err)
	}
	_, err = f.Write([]byte(strconv.FormatUint(id, 10)))
	err = errors.Join(err, f.Close())
	if errors.Is(err, syscall.EEXIST) {
		if b, rerr := os.ReadFile(path); rerr == nil && strings.TrimSpace(string(b)) == strconv.FormatUint(id, 10) {
			return nil
		}
	}
	if err != nil {
		return contidWriteError(id, path, err)
	}
	return nil
}

// cgroupOf returns the cgroup v2 directory of pid, from PROC/PID/cgroup
// and the cgroup2 mount in PROC/self/mountinfo.
func cgroupOf(proc string, pid int) (string, error) {
	task := strconv.Itoa(pid)
	if pid == 0 {
		task = "self"
	}
	b, err := os.ReadFile(filepath.Join(proc, task, "cgroup"))
	if err != nil {
		return "", fmt.Errorf("finding the container's cgroup: %w", err)
	}
	var rel string
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = p
		}
	}
	if rel == "" {
		return "", fmt.Errorf("finding the container's cgroup: no cgroup v2 line in %s/%s/cgroup (the hook needs cgroup v2 on a stock kernel)", proc, task)
	}
	mnt, err := cgroup2Mount(filepath.Join(proc, "self", "mountinfo"))
	if err != nil {
		return "", err
	}
	return filepath.Join(mnt, rel), nil
}

func cgroup2Mount(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("finding the cgroup2 mount: no %s", path)
	}
	if err != nil {
		return "", fmt.Errorf("finding the cgroup2 mount: %w", err)
	}
	defer f.Close()
	mounts, err := mountinfo.GetMountsFromReader(f, mountinfo.FSTypeFilter("cgroup2"))
	if err != nil {
		return "", fmt.Errorf("finding the cgroup2 mount in %s: %w", path, err)
	}
	if len(mounts) == 0 {
		return "", fmt.Errorf("finding the cgroup2 mount: none in %s (the hook needs cgroup v2 on a stock kernel)", path)
	}
	return mounts[0].Mountpoint, nil
}

// poststop unregisters the container the hook registered (the daemon
// refuses one of the same name registered otherwise) once its queue is delivered (or the
// drain timeout passed: the rest stays spooled).
func (h *hook) poststop() error {
	wait := control.DefaultDrainTimeout
	if s := h.ann["drain-timeout"]; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > control.MaxDrainTimeout {
			return fmt.Errorf("annotation %sdrain-timeout %q: give a duration like 30s, at most %s", annotationPrefix, s, control.MaxDrainTimeout)
		}
		wait = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout+wait)
	defer cancel()
	return withClient(ctx, h.sock, func(c *control.Client) error {
		_, err := c.UnregisterOwned(ctx, h.state.ID, hookOwner, control.ModeDrain, wait)
		switch {
		case errors.Is(err, control.ErrNotFound):
			return nil
		case errors.Is(err, control.ErrConflict):
			return fmt.Errorf("left registered: %w", err)
		}
		return err
	})
}
