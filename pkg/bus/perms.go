package bus

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// Roles of the accounts a shared server gives the pipeline, one user each.
const (
	RolePlanner   = "planner"
	RoleSubmitter = "submitter"
	RoleWatcher   = "watcher"
	RoleCollector = "collector"
	RoleDashboard = "dashboard"
)

// Roles lists them in the order the server configuration prints them.
var Roles = []string{RolePlanner, RoleSubmitter, RoleWatcher, RoleCollector, RoleDashboard}

// InboxPrefix is a role's reply subject prefix. Each user may subscribe only to its own,
// so no stage reads the replies another one gets: the messages its consumer delivers,
// the ledger entries it reads.
func InboxPrefix(role string) string { return "_INBOX_" + role }

const (
	api = "$JS.API."
	// stream names of the buckets
	kvJobs    = "KV_" + BucketJobs
	kvRuns    = "KV_" + BucketRuns
	kvResults = "KV_" + BucketResults
	kvHistory = "KV_" + BucketHistory
)

// kvRead is what reading and watching a bucket takes: its info, direct gets, and
// ordered consumers of its own (watch, list keys) with their flow control.
func kvRead(bucket string) []string {
	s := "KV_" + bucket
	return []string{
		api + "STREAM.INFO." + s,
		api + "DIRECT.GET." + s + ".>",
		api + "STREAM.MSG.GET." + s,
		api + "CONSUMER.CREATE." + s + ".>",
		api + "CONSUMER.DELETE." + s + ".>",
		api + "CONSUMER.INFO." + s + ".>",
		"$JS.FC." + s + ".>",
	}
}

// kvWrite is putting, creating and updating a bucket's entries.
func kvWrite(bucket string) []string { return []string{"$KV." + bucket + ".>"} }

// durable is what a stage's own pull consumer takes: creating or updating it with its
// filter, its info, pulling, and acknowledging.
func durable(name string) []string {
	return []string{
		api + "CONSUMER.CREATE." + events.Stream + "." + name + ".>",
		api + "CONSUMER.DURABLE.CREATE." + events.Stream + "." + name,
		api + "CONSUMER.INFO." + events.Stream + "." + name,
		api + "CONSUMER.MSG.NEXT." + events.Stream + "." + name,
		"$JS.ACK." + events.Stream + "." + name + ".>",
	}
}

// readEvents is reading the event stream through ephemeral ordered consumers whose
// filter is one of the given subjects (following a run, counting results).
func readEvents(filters ...string) []string {
	out := []string{api + "STREAM.INFO." + events.Stream, "$JS.FC." + events.Stream + ".>",
		api + "CONSUMER.DELETE." + events.Stream + ".*", api + "CONSUMER.INFO." + events.Stream + ".*",
		api + "CONSUMER.MSG.NEXT." + events.Stream + ".*"}
	for _, f := range filters {
		out = append(out, api+"CONSUMER.CREATE."+events.Stream+".*."+f)
	}
	return out
}

// Permissions is each role's publish and subscribe allow list on a shared server. A
// stage publishes only its own events and consumes only its own consumer; the planner
// provisions the stream and buckets, publishes runs and batches and reads state; a
// dashboard only reads.
func Permissions() map[string]*server.Permissions {
	info := []string{api + "INFO", api + "STREAM.INFO." + events.Stream, api + "STREAM.INFO." + kvJobs,
		api + "STREAM.INFO." + kvRuns, api + "STREAM.INFO." + kvResults, api + "STREAM.INFO." + kvHistory}
	perm := func(role string, pub ...[]string) *server.Permissions {
		// Ephemeral consumers get generated names, so reading the stream allows any
		// consumer name; the stages' durables are denied to every other role.
		var deny []string
		for _, d := range []string{RoleSubmitter, RoleWatcher, RoleCollector} {
			if d != role {
				deny = append(deny, durable(d)...)
				deny = append(deny, api+"CONSUMER.DELETE."+events.Stream+"."+d)
			}
		}
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: sorted(slices.Concat(append(pub, info)...)), Deny: sorted(deny)},
			Subscribe: &server.SubjectPermission{Allow: []string{InboxPrefix(role) + ".>"}},
		}
	}
	provision := []string{
		api + "STREAM.CREATE." + events.Stream, api + "STREAM.UPDATE." + events.Stream,
		api + "STREAM.CREATE." + kvJobs, api + "STREAM.UPDATE." + kvJobs,
		api + "STREAM.CREATE." + kvRuns, api + "STREAM.UPDATE." + kvRuns,
		api + "STREAM.CREATE." + kvResults, api + "STREAM.UPDATE." + kvResults,
		api + "STREAM.CREATE." + kvHistory, api + "STREAM.UPDATE." + kvHistory,
	}
	return map[string]*server.Permissions{
		RolePlanner: perm(RolePlanner, provision,
			[]string{events.AnyRunStartedSubject, events.BatchFilter, events.JobKindFilter(events.KindCompleted)},
			kvRead(BucketJobs), kvRead(BucketRuns), kvRead(BucketResults), kvRead(BucketHistory), kvWrite(BucketRuns),
			readEvents(events.EveryEventFilter, events.AnyRunFilter, events.AnyRunResultsFilter, events.AnyRunResultsPrefix)),
		RoleSubmitter: perm(RoleSubmitter,
			// state: a submission waiting for quota; problem: sbatch failing transiently
			[]string{events.JobKindFilter(events.KindSubmitted), events.JobKindFilter(events.KindCompleted),
				events.JobKindFilter(events.KindState), events.JobKindFilter(events.KindProblem)},
			durable("submitter"), kvRead(BucketJobs), kvWrite(BucketJobs)),
		RoleWatcher: perm(RoleWatcher,
			// submitted: a test submitted again after NODE_FAIL, BOOT_FAIL or PREEMPTED;
			// problem: the scheduler cannot be asked about a job
			[]string{events.JobKindFilter(events.KindState), events.JobKindFilter(events.KindCompleted),
				events.JobKindFilter(events.KindSubmitted), events.JobKindFilter(events.KindProblem)},
			durable("watcher"), kvRead(BucketJobs), kvWrite(BucketJobs)),
		RoleCollector: perm(RoleCollector,
			// problem: a test whose results cannot be written yet
			[]string{events.AnyRunResultsFilter, events.AnyRunFinishedSubject, events.JobKindFilter(events.KindProblem)},
			durable("collector"), kvRead(BucketRuns), kvWrite(BucketRuns), kvRead(BucketResults), kvWrite(BucketResults),
			kvRead(BucketHistory), kvWrite(BucketHistory),
			readEvents(events.AnyRunResultsFilter, events.JobKindFilter(events.KindCompleted))),
		RoleDashboard: perm(RoleDashboard,
			kvRead(BucketJobs), kvRead(BucketRuns), kvRead(BucketResults), kvRead(BucketHistory),
			readEvents(events.EveryEventFilter, events.AnyRunFilter, events.AnyRunResultsFilter, events.AnyRunResultsPrefix)),
	}
}

func sorted(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// ServerConfigOptions shape the printed server configuration.
type ServerConfigOptions struct {
	Listen   string // host:port, default 0.0.0.0:4222
	StoreDir string // JetStream store, default /data
	// TLS files; with them, clients must present a certificate the CA signed.
	TLSCert, TLSKey, TLSCA string
	// A cluster: this server's unique name, the cluster's name, where it listens for the
	// other servers (host:port) and their route URLs (nats-route://host:port).
	ServerName    string
	ClusterName   string
	ClusterListen string
	Routes        []string
	// HTTPListen is the monitoring endpoint (host:port; "": none).
	HTTPListen string
}

// PasswordVar is the environment variable the printed configuration reads a role's
// password from when the server starts: no secret is in the file.
func PasswordVar(role string) string {
	return "DISAGGBENCH_NATS_" + strings.ToUpper(role) + "_PASSWORD"
}

// ServerConfig is a nats-server configuration for a server shared by many users: one
// user per role with Permissions, passwords from the environment (PasswordVar), and TLS
// with client certificates when the options name the files.
func ServerConfig(o ServerConfigOptions) string {
	var b strings.Builder
	b.WriteString("# disaggbench on a shared NATS server: one user per stage, each allowed only its own\n")
	b.WriteString("# subjects and consumers (printed by `planner nats-config`). Passwords are read from the\n")
	b.WriteString("# environment when the server starts:\n#  ")
	for _, r := range Roles {
		b.WriteString(" " + PasswordVar(r))
	}
	b.WriteString("\n# The planner provisions the stream and buckets: run a planner command once before the stages.\n\n")
	if o.ServerName != "" {
		fmt.Fprintf(&b, "server_name: %q\n", o.ServerName)
	}
	fmt.Fprintf(&b, "listen: %q\n", cmpOr(o.Listen, "0.0.0.0:4222"))
	if o.HTTPListen != "" {
		fmt.Fprintf(&b, "http: %q\n", o.HTTPListen)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", cmpOr(o.StoreDir, "/data"))
	if o.ClusterName != "" {
		// The routes carry JetStream's replication; a client moved between servers
		// learns the others' client URLs from the one it is connected to.
		fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: %q\n  routes: %s\n}\n", o.ClusterName, cmpOr(o.ClusterListen, "0.0.0.0:6222"), list(o.Routes))
	}
	if o.TLSCert != "" {
		fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", o.TLSCert, o.TLSKey, o.TLSCA)
	}
	b.WriteString("authorization {\n  users: [\n")
	perms := Permissions()
	for _, r := range Roles {
		p := perms[r]
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n      permissions: {\n", r, PasswordVar(r))
		fmt.Fprintf(&b, "        publish: {\n          allow: %s\n          deny: %s\n        }\n", list(p.Publish.Allow), list(p.Publish.Deny))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", list(p.Subscribe.Allow))
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

func list(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
