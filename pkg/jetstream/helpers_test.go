package jetstream

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
	hostStream   = "AUDIT_HOSTS"
	tenantStream = "AUDIT_TENANTS"
)

// user is one nkey user of the test accounts: its seed file is the
// credentials a Publisher or Consumer is given.
type user struct {
	pub, seedFile string
}

// users are the test accounts' users: the security team's admin, two
// hosts and two tenants.
type users struct {
	admin, hostA, hostB, t1, t2 user
}

func newUser(t testing.TB, dir, name string) user {
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
	return user{pub: pub, seedFile: f}
}

func newUsers(t testing.TB) users {
	dir := t.TempDir()
	return users{
		admin: newUser(t, dir, "admin"),
		hostA: newUser(t, dir, "host-a"),
		hostB: newUser(t, dir, "host-b"),
		t1:    newUser(t, dir, "tenant-t1"),
		t2:    newUser(t, dir, "tenant-t2"),
	}
}

// hostPerms is a host's permissions: publish its own log and its tenants'
// copies from it, receive its acks on its own inboxes. Nothing else.
func hostPerms(host string) string {
	return fmt.Sprintf(`{
          publish: { allow: ["audit.host.%[1]s", "audit.tenant.*.%[1]s"] }
          subscribe: { allow: ["_INBOX_%[1]s.>"] }
        }`, host)
}

// tenantPerms is a tenant's permissions: create and read one durable
// consumer, named as the tenant, whose filter is its own subjects, on its
// own inboxes. Nothing else: no core subscription to audit.>, no other
// consumer, no direct get.
func tenantPerms(tenant string) string {
	return fmt.Sprintf(`{
          publish: { allow: [
            "$JS.API.CONSUMER.CREATE.%[2]s.%[1]s.audit.tenant.%[1]s.>",
            "$JS.API.CONSUMER.INFO.%[2]s.%[1]s",
            "$JS.API.CONSUMER.MSG.NEXT.%[2]s.%[1]s",
            "$JS.ACK.%[2]s.%[1]s.>"
          ] }
          subscribe: { allow: ["_INBOX_%[1]s.>"] }
        }`, tenant, tenantStream)
}

func accountsConf(u users) string {
	return fmt.Sprintf(`
accounts {
  AUDIT {
    jetstream: enabled
    users: [
      { nkey: %s }
      { nkey: %s, permissions: %s }
      { nkey: %s, permissions: %s }
      { nkey: %s, permissions: %s }
      { nkey: %s, permissions: %s }
    ]
  }
  SYS { users: [] }
}
system_account: SYS
`, u.admin.pub, u.hostA.pub, hostPerms("host-a"), u.hostB.pub, hostPerms("host-b"),
		u.t1.pub, tenantPerms("t1"), u.t2.pub, tenantPerms("t2"))
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

// cluster is n nats-servers with JetStream on loopback, in this process.
type cluster struct {
	t       testing.TB
	servers []*server.Server
	urls    []string
}

// startCluster starts n servers (n == 1: no cluster block) with the test
// accounts, and waits until JetStream has a leader.
func startCluster(t testing.TB, n int, u users) *cluster {
	t.Helper()
	dir := t.TempDir()
	ports := make([]int, n)
	cports := make([]int, n)
	for i := range ports {
		ports[i], cports[i] = freePort(t), freePort(t)
	}
	c := &cluster{t: t}
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
		b.WriteString(accountsConf(u))
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
		c.servers = append(c.servers, s)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	t.Cleanup(c.stop)
	for _, s := range c.servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("server %s not ready", s.Name())
		}
	}
	return c
}

func (c *cluster) url() string { return strings.Join(c.urls, ",") }

func (c *cluster) stop() {
	for _, s := range c.servers {
		s.Shutdown()
	}
	for _, s := range c.servers {
		s.WaitForShutdown()
	}
}

// connect connects as u to every server.
func (c *cluster) connect(u user, opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	o, err := nats.NkeyOptionFromSeed(u.seedFile)
	if err != nil {
		c.t.Fatal(err)
	}
	nc, err := nats.Connect(c.url(), append(opts, o, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// addStreams makes the host and tenant streams, with replicas, as the
// admin, retrying while the cluster elects its leader.
func (c *cluster) addStreams(admin user, replicas int) jetstream.JetStream {
	c.t.Helper()
	js, err := jetstream.New(c.connect(admin))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, cfg := range []jetstream.StreamConfig{
		{Name: hostStream, Subjects: []string{"audit.host.>"}},
		{Name: tenantStream, Subjects: []string{"audit.tenant.>"}},
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
