// Package natstest starts real nats-servers with JetStream for tests, in
// the test's process: one server or a cluster on loopback, with the
// accounts and permissions docs/jetstream.md gives (a security team's
// admin, two hosts, two tenants), each User an nkey whose seed file is the
// credentials a publisher or consumer is given.
package natstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Streams the tests' servers hold, as docs/jetstream.md sets them up.
const (
	HostStream   = "AUDIT_HOSTS"
	TenantStream = "AUDIT_TENANTS"
)

// User is one nkey User of the test accounts: its seed file is the
// credentials a Publisher or Consumer is given.
type User struct {
	Pub, SeedFile string
}

// Users are the test accounts' Users: the security team's admin, two
// hosts and two tenants.
type Users struct {
	Admin, HostA, HostB, T1, T2 User
}

func newUser(t testing.TB, dir, name string) User {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	f := filepath.Join(dir, name+".nk")
	if err := os.WriteFile(f, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return User{Pub: pub, SeedFile: f}
}

// NewUsers makes the users, their seeds in a temporary directory.
func NewUsers(t testing.TB) Users {
	dir := t.TempDir()
	return Users{
		Admin: newUser(t, dir, "admin"),
		HostA: newUser(t, dir, "host-a"),
		HostB: newUser(t, dir, "host-b"),
		T1:    newUser(t, dir, "tenant-t1"),
		T2:    newUser(t, dir, "tenant-t2"),
	}
}

// HostPerms is a host's permissions: publish its own log and its tenants'
// copies from it, receive its acks on its own inboxes. Nothing else.
func HostPerms(host string) string {
	return fmt.Sprintf(`{
          publish: { allow: ["audit.host.%[1]s", "audit.tenant.*.%[1]s"] }
          subscribe: { allow: ["_INBOX_%[1]s.>"] }
        }`, host)
}

// TenantPerms is a tenant's permissions: create and read one durable
// consumer, named as the tenant, whose filter is its own subjects, on its
// own inboxes. Nothing else: no core subscription to audit.>, no other
// consumer, no direct get.
func TenantPerms(tenant string) string {
	return fmt.Sprintf(`{
          publish: { allow: [
            "$JS.API.CONSUMER.CREATE.%[2]s.%[1]s.audit.tenant.%[1]s.>",
            "$JS.API.CONSUMER.INFO.%[2]s.%[1]s",
            "$JS.API.CONSUMER.MSG.NEXT.%[2]s.%[1]s",
            "$JS.ACK.%[2]s.%[1]s.>"
          ] }
          subscribe: { allow: ["_INBOX_%[1]s.>"] }
        }`, tenant, TenantStream)
}

// AccountsConf is the accounts block of every server's config.
func AccountsConf(u Users) string {
	return fmt.Sprintf(`
accounts {
  AUDIT {
    jetstream: enabled
    Users: [
      { nkey: %s }
      { nkey: %s, permissions: %s }
      { nkey: %s, permissions: %s }
      { nkey: %s, permissions: %s }
      { nkey: %s, permissions: %s }
    ]
  }
  SYS { Users: [] }
}
system_account: SYS
`, u.Admin.Pub, u.HostA.Pub, HostPerms("host-a"), u.HostB.Pub, HostPerms("host-b"),
		u.T1.Pub, TenantPerms("t1"), u.T2.Pub, TenantPerms("t2"))
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Cluster is n nats-servers with JetStream on loopback, in this process.
type Cluster struct {
	t       testing.TB
	Servers []*server.Server
	urls    []string
}

// Start starts n servers (n == 1: no cluster block) with the test
// accounts, and waits until JetStream has a leader.
func Start(t testing.TB, n int, u Users) *Cluster {
	t.Helper()
	dir := t.TempDir()
	ports := make([]int, n)
	cports := make([]int, n)
	for i := range ports {
		ports[i], cports[i] = freePort(t), freePort(t)
	}
	c := &Cluster{t: t}
	for i := 0; i < n; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: n%d\nlisten: 127.0.0.1:%d\n", i+1, ports[i])
		fmt.Fprintf(&b, "jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 2GB }\n", filepath.Join(dir, fmt.Sprintf("n%d", i+1)))
		if n > 1 {
			var routes []string
			for j := 0; j < n; j++ {
				if j != i {
					routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cports[j]))
				}
			}
			fmt.Fprintf(&b, "cluster { name: audit, listen: 127.0.0.1:%d, routes: [%s] }\n", cports[i], strings.Join(routes, ", "))
		}
		b.WriteString(AccountsConf(u))
		f := filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))
		if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		opts.NoSigs = true
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		c.Servers = append(c.Servers, s)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	t.Cleanup(c.Stop)
	for _, s := range c.Servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("server %s not ready", s.Name())
		}
	}
	return c
}

// URL lists every server, comma-separated.
func (c *Cluster) URL() string { return strings.Join(c.urls, ",") }

// URLs are the servers' URLs, one each.
func (c *Cluster) URLs() []string { return c.urls }

// Stop shuts every server down.
func (c *Cluster) Stop() {
	for _, s := range c.Servers {
		s.Shutdown()
	}
	for _, s := range c.Servers {
		s.WaitForShutdown()
	}
}

// Connect connects as u to every server.
func (c *Cluster) Connect(u User, opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	o, err := nats.NkeyOptionFromSeed(u.SeedFile)
	if err != nil {
		c.t.Fatal(err)
	}
	nc, err := nats.Connect(c.URL(), append(opts, o, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// AddStreams makes the host and tenant streams, with replicas, as the
// admin, retrying while the cluster elects its leader.
func (c *Cluster) AddStreams(admin User, replicas int) jetstream.JetStream {
	c.t.Helper()
	js, err := jetstream.New(c.Connect(admin))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, cfg := range []jetstream.StreamConfig{
		{Name: HostStream, Subjects: []string{"audit.host.>"}},
		{Name: TenantStream, Subjects: []string{"audit.tenant.>"}},
	} {
		cfg.Replicas = replicas
		cfg.Storage = jetstream.FileStorage
		cfg.Duplicates = 10 * time.Minute
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := js.CreateStream(ctx, cfg)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("creating stream %s: %v", cfg.Name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return js
}
