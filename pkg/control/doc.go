// Package control is the control API of a running auditd-ns: a versioned
// request/response protocol on a unix stream socket, the Server that
// answers it on behalf of a Backend (the daemon), a Client, the scope
// checks of the sockets given to nested orchestrators, and the Prometheus
// metrics endpoint.
//
// # Wire format
//
// A connection carries any number of requests, one after the other. A
// request is one JSON object on one line (at most MaxRequest bytes with
// its newline); the answer is one JSON object on one line. Both carry
// "v": 1 (Version). A request names its operation in "op":
//
//	{"v":1,"op":"register","file":"web.yaml","source":"name: web\nid: 42\n...","replace":false}
//	{"v":1,"op":"unregister","name":"web","mode":"drain","timeout_ms":30000}
//	{"v":1,"op":"rules-push","name":"web","file":"web-rules.yaml","source":"- keep: {type: EXECVE}\n"}
//	{"v":1,"op":"containers"}
//	{"v":1,"op":"status"}
//
// An answer has "ok" and, when ok is false, an "error" naming the
// operation, a code and a message saying what was wrong and where (a
// container file's errors say FILE:LINE:COL):
//
//	{"v":1,"ok":true,"container":{"name":"web","id":"42",...}}
//	{"v":1,"ok":false,"error":{"op":"register","code":"invalid","message":"web.yaml:3:1: deliver is missing (file: PATH, or remote: HOST:PORT)"}}
//
// Unknown fields in a request are refused, so that a field a newer client
// relies on is never silently ignored. A request with another "v" gets the
// code "version" and the connection stays open; a line that is not JSON
// gets "malformed"; a request longer than MaxRequest gets "too-large" and
// the connection is closed, since the rest of the line cannot be told from
// the next request.
//
// # Scopes
//
// A Server with a Scope serves a socket given to a nested orchestrator:
// through it a caller may register, unregister and push rules only for
// containers strictly inside the scope's container, never the scope
// itself; see CheckScope and CheckPeer for every rule. The host admin's
// ScopePolicy (Server.Policy) adds what no scope's own registration can
// grant: the remote destinations allowed, whether a scope without a
// network namespace may have remote targets, the default quota, and the
// source of contid chains that decides whether an id is inside the scope.
// The Backend runs the checks, once, on the current tree under its lock.
//
// # What it is not
//
// The package holds no container state and does not route or deliver
// records: the daemon implements Backend. It never talks to the kernel's
// audit subsystem; it reads /proc/PID/audit_containerid of a scoped
// socket's peer, nothing more.
package control
