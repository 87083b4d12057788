package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// handle answers one request line.
func (s *Server) handle(ctx context.Context, pid int, line []byte) *Response {
	req, e := decodeRequest(line)
	if e != nil {
		return &Response{Error: e}
	}
	if s.Scope != "" {
		if err := CheckPeer(s.proc(), pid, s.Backend.Tree(), s.Scope); err != nil {
			return &Response{Error: toError(req.Op, err)}
		}
	}
	resp, err := s.dispatch(ctx, req)
	if err != nil {
		return &Response{Error: toError(req.Op, err)}
	}
	resp.OK = true
	return resp
}

// decodeRequest reads the version and op leniently, so that a request of
// another version is told so rather than refused for its fields, then
// the whole request strictly.
func decodeRequest(line []byte) (*Request, *Error) {
	var head struct {
		V  *int   `json:"v"`
		Op string `json:"op"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return nil, errorf("", CodeMalformed, "the request is not a JSON object on one line: %v", err)
	}
	switch {
	case head.V == nil:
		return nil, errorf(head.Op, CodeVersion, `"v" is missing: this server speaks version %d`, Version)
	case *head.V != Version:
		return nil, errorf(head.Op, CodeVersion, "version %d is not supported: this server speaks version %d", *head.V, Version)
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, errorf(head.Op, CodeMalformed, "%v", err)
	}
	return &req, nil
}

func (s *Server) dispatch(ctx context.Context, req *Request) (*Response, error) {
	switch req.Op {
	case OpRegister:
		return s.register(ctx, req)
	case OpUnregister:
		return s.unregister(ctx, req)
	case OpRulesPush:
		return s.pushRules(ctx, req)
	case OpContainers:
		cs, err := s.Backend.Containers(ctx)
		return &Response{Containers: s.visible(cs)}, err
	case OpStatus:
		return s.status(ctx)
	case "":
		return nil, errorf("", CodeUnknownOp, `"op" is missing (known: register, unregister, rules-push, containers, status)`)
	}
	return nil, errorf(req.Op, CodeUnknownOp, "unknown op %q (known: register, unregister, rules-push, containers, status)", req.Op)
}

func (s *Server) register(ctx context.Context, req *Request) (*Response, error) {
	if req.Source == "" {
		return nil, errorf(req.Op, CodeBadRequest, `"source" (the container file's text) is missing`)
	}
	c, err := registry.Parse([]byte(req.Source), fileName(req.File, "container file"))
	if err != nil {
		return nil, errorf(req.Op, CodeInvalid, "%v", err)
	}
	o := RegisterOptions{Replace: req.Replace}
	if s.Scope != "" && c.Owner != "" {
		return nil, errorf(req.Op, CodeForbidden, "owner %q: only the host's socket registers containers on behalf of a tool", c.Owner)
	}
	if s.Scope != "" {
		if c, err = Confine(s.Backend.Tree(), s.Scope, c); err != nil {
			return nil, errorf(req.Op, CodeInvalid, "%v", err)
		}
		p := s.policy().withChainOf(c.ID)
		if c, err = p.FitMemory(s.Backend.Tree(), s.Scope, c); err != nil {
			return nil, errorf(req.Op, CodeInvalid, "%v", err)
		}
		o.Guard = func(t *registry.Tree) error { return CheckScope(t, s.Scope, c, p) }
	}
	info, err := s.Backend.Register(ctx, c, o)
	if err != nil {
		return nil, err
	}
	s.log().Info("control: registered a container", "name", c.Name, "target", c.Deliver.String(), "scope", s.Scope)
	return &Response{Container: &info}, nil
}

func (s *Server) unregister(ctx context.Context, req *Request) (*Response, error) {
	if req.Name == "" {
		return nil, errorf(req.Op, CodeBadRequest, `"name" is missing`)
	}
	o := UnregisterOptions{Mode: req.Mode, Timeout: DefaultDrainTimeout, Owner: req.Owner}
	switch req.Mode {
	case "":
		o.Mode = ModeDrain
	case ModeDrain, ModeSpool:
	default:
		return nil, errorf(req.Op, CodeBadRequest, "mode %q: use %q or %q", req.Mode, ModeDrain, ModeSpool)
	}
	if req.TimeoutMS < 0 || time.Duration(req.TimeoutMS)*time.Millisecond > MaxDrainTimeout {
		return nil, errorf(req.Op, CodeBadRequest, "timeout_ms %d: give 1 to %d", req.TimeoutMS, MaxDrainTimeout.Milliseconds())
	}
	if req.TimeoutMS > 0 {
		o.Timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	o.Guard = s.guardName(req.Name)
	res, err := s.Backend.Unregister(ctx, req.Name, o)
	if err != nil {
		return nil, err
	}
	s.log().Info("control: unregistered a container", "name", req.Name, "mode", o.Mode, "drained", res.Drained, "spooled", res.Spooled, "dropped", res.Dropped)
	return &Response{Unregistered: &res}, nil
}

func (s *Server) pushRules(ctx context.Context, req *Request) (*Response, error) {
	if req.Name == "" {
		return nil, errorf(req.Op, CodeBadRequest, `"name" is missing`)
	}
	if req.Source == "" {
		return nil, errorf(req.Op, CodeBadRequest, `"source" (the rules file's text) is missing; to keep every event, push "[]"`)
	}
	file := fileName(req.File, "rules file")
	prog, err := rules.Parse([]byte(req.Source), file)
	if err != nil {
		return nil, errorf(req.Op, CodeInvalid, "%v", err)
	}
	u := RulesUpdate{Rules: prog, Source: []byte(req.Source), File: file}
	u.Guard = s.guardName(req.Name)
	info, err := s.Backend.PushRules(ctx, req.Name, u)
	if err != nil {
		return nil, err
	}
	s.log().Info("control: pushed rules", "name", req.Name, "rules", prog.Len(), "scope", s.Scope)
	return &Response{Container: &info}, nil
}

// guardName returns the scope check of a change to the container called
// name for a scoped server, nil for the host's. The Backend runs it on
// the current tree under its lock.
func (s *Server) guardName(name string) Guard {
	if s.Scope == "" {
		return nil
	}
	return func(t *registry.Tree) error { return CheckScopeName(t, s.Scope, name) }
}

// policy returns the host admin's policy for this request.
func (s *Server) policy() *ScopePolicy {
	if s.Policy != nil {
		if p := s.Policy(); p != nil {
			return p
		}
	}
	return &ScopePolicy{}
}

func (s *Server) status(ctx context.Context) (*Response, error) {
	st, err := s.Backend.Status(ctx)
	if err != nil {
		return nil, err
	}
	if s.Scope != "" {
		st.Kernel, st.HostLog, st.Router, st.Tracker, st.Plugins, st.Export, st.Consume = nil, nil, nil, nil, nil, nil, nil
	}
	st.Containers = s.visible(st.Containers)
	if st.Containers == nil {
		st.Containers = []ContainerInfo{}
	}
	return &Response{Status: &st}, nil
}

// visible keeps the containers a caller of this socket may see: all for
// the host's, the scope and its subtree for a scoped one.
func (s *Server) visible(cs []ContainerInfo) []ContainerInfo {
	if s.Scope == "" {
		return cs
	}
	t := s.Backend.Tree()
	var out []ContainerInfo
	for _, c := range cs {
		if t.Within(c.Name, s.Scope) {
			out = append(out, c)
		}
	}
	return out
}

func fileName(f, what string) string {
	if f == "" {
		return fmt.Sprintf("(%s)", what)
	}
	return f
}
