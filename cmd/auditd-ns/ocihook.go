package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// The OCI annotations the hook reads; docs/control.md describes them.
const annotationPrefix = "org.auditd-ns."

var ociAnnotations = []string{
	"contid", "name", "parent", "cgroup", "deliver.file", "deliver.remote", "deliver.netns",
	"rules", "memory", "spool", "required", "drain-timeout",
}

// ociState is the container state an OCI runtime writes on a hook's
// stdin (runtime-spec config.md, "State").
type ociState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	PID         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
}

// hook is one run of the OCI hook.
type hook struct {
	state    ociState
	ann      map[string]string // org.auditd-ns.* annotations, prefix cut
	proc     string
	sock     string
	timeout  time.Duration
	required bool
}

// ociHookCmd runs `auditd-ns oci-hook [--socket PATH] [STAGE]` with the
// OCI state on stdin. Failures fail the hook (and so the container start)
// only when the container's org.auditd-ns.required annotation is "true";
// otherwise they are written to warn and the hook succeeds.
func ociHookCmd(args []string, stdin io.Reader, warn io.Writer) error {
	fs := flag.NewFlagSet("oci-hook", flag.ContinueOnError)
	sock := fs.String("socket", envOr("AUDITD_NS_SOCKET", defaultSocket), "control socket")
	proc := fs.String("proc", "/proc", "procfs mount")
	timeout := fs.Duration("timeout", 10*time.Second, "give up reaching the daemon after this long")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("unexpected argument %q", pos[1])
	}
	h := &hook{proc: *proc, sock: *sock, timeout: *timeout}
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
	case "creating", "created":
		return "createRuntime"
	case "stopped":
		return "poststop"
	}
	return "status " + strconv.Quote(h.state.Status)
}

func (h *hook) run(stage string) error {
	if err := h.checkAnnotations(); err != nil {
		return err
	}
	if h.ann["deliver.file"] == "" && h.ann["deliver.remote"] == "" {
		return nil // not a container auditd-ns is asked to serve
	}
	switch stage {
	case "createRuntime", "prestart":
		return h.create()
	case "poststop":
		return h.poststop()
	}
	return fmt.Errorf("unknown hook stage %s (known: createRuntime, prestart, poststop)", stage)
}

func (h *hook) checkAnnotations() error {
	var unknown []string
	for k := range h.ann {
		if !containsString(ociAnnotations, k) {
			unknown = append(unknown, annotationPrefix+k)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		return fmt.Errorf("unknown annotations %s (known: %s*: %s)", strings.Join(unknown, ", "), annotationPrefix, strings.Join(ociAnnotations, ", "))
	}
	if r := h.ann["required"]; r != "" && r != "true" && r != "false" {
		return fmt.Errorf("annotation %srequired is %q: use true or false", annotationPrefix, r)
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

func (h *hook) name() string {
	if n := h.ann["name"]; n != "" {
		return n
	}
	return h.state.ID
}

// create gives the container's first process a contid (patched kernel)
// or finds its cgroup (stock kernel), then registers the container.
func (h *hook) create() error {
	if h.state.PID <= 0 {
		return fmt.Errorf("the OCI state has no pid (%d)", h.state.PID)
	}
	spec := containerSpec{
		Name: h.name(), Parent: h.ann["parent"],
		File: h.ann["deliver.file"], Remote: h.ann["deliver.remote"], NetNS: h.ann["deliver.netns"],
		RulesFile: h.ann["rules"], Memory: h.ann["memory"], Spool: h.ann["spool"],
	}
	idFile := filepath.Join(h.proc, strconv.Itoa(h.state.PID), "audit_containerid")
	if _, err := os.Stat(idFile); err == nil {
		id, err := h.contid()
		if err != nil {
			return err
		}
		if err := setContid(idFile, id); err != nil {
			return err
		}
		spec.ID = strconv.FormatUint(id, 10)
	} else if spec.Cgroup = h.ann["cgroup"]; spec.Cgroup == "" {
		if spec.Cgroup, err = cgroupOf(h.proc, h.state.PID); err != nil {
			return err
		}
	}
	src, err := spec.yaml()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	return withClient(ctx, h.sock, func(c *control.Client) error {
		_, err := c.Register(ctx, "OCI annotations of "+h.state.ID, src, false)
		return err
	})
}

// contid is the annotation's, else derived from the container id.
func (h *hook) contid() (uint64, error) {
	s := h.ann["contid"]
	if s == "" {
		return deriveContid(h.state.ID), nil
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == record.Unset {
		return 0, fmt.Errorf("annotation %scontid %q is not an audit container ID (a decimal u64 below 18446744073709551615)", annotationPrefix, s)
	}
	return id, nil
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
		return fmt.Errorf("setting the audit container ID %d in %s: %w", id, path, err)
	}
	return nil
}

// cgroupOf returns the cgroup v2 directory of pid, from PROC/PID/cgroup
// and the cgroup2 mount in PROC/self/mountinfo.
func cgroupOf(proc string, pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
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
		return "", fmt.Errorf("finding the container's cgroup: no cgroup v2 line in %s/%d/cgroup: give the annotation %scgroup", proc, pid, annotationPrefix)
	}
	mnt, err := cgroup2Mount(filepath.Join(proc, "self", "mountinfo"))
	if err != nil {
		return "", err
	}
	return filepath.Join(mnt, rel), nil
}

func cgroup2Mount(mountinfo string) (string, error) {
	b, err := os.ReadFile(mountinfo)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("finding the cgroup2 mount: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup2" {
			return unescapeMount(f[4]), nil
		}
	}
	return "", fmt.Errorf("finding the cgroup2 mount: none in %s: give the annotation %scgroup", mountinfo, annotationPrefix)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// poststop unregisters the container once its queue is delivered (or the
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
		_, err := c.Unregister(ctx, h.name(), control.ModeDrain, wait)
		if errors.Is(err, control.ErrNotFound) {
			return nil
		}
		return err
	})
}
