// Package obs is what every long-running service shows of itself over HTTP: /healthz
// (the process is alive), /readyz (connected to NATS, the stream and the stage's
// consumers bound) and /metrics, the pipeline's Prometheus series, all named
// disaggbench_*. The stages record into the package's registry; Serve exposes it.
package obs

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Registry holds every series the services expose.
var Registry = prometheus.NewRegistry()

// Outcomes of a handled event.
const (
	OK        = "ok"        // done and acknowledged
	Retry     = "retry"     // handed back to be redelivered later
	Malformed = "malformed" // terminated: no delivery makes it valid
	Poison    = "poison"    // terminated: delivered too many times without being settled
	Stopping  = "stopping"  // handed back because the stage is stopping
	Failed    = "failed"    // done, and the test failed
)

var (
	eventsHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "disaggbench_events_handled_total",
		Help: "Events a stage handled, by stage and outcome (ok, failed, retry, malformed, stopping).",
	}, []string{"stage", "outcome"})
	stageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "disaggbench_stage_duration_seconds",
		Help: "Time a stage spent on one event: a batch submitted, a job watched from submission to its end, a completion collected.",
		// 5 ms to about 11 hours
		Buckets: prometheus.ExponentialBuckets(0.005, 3, 15),
	}, []string{"stage"})
	jobsByState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "disaggbench_jobs",
		Help: "Jobs the watchers of this process hold, by their last scheduler state.",
	}, []string{"state"})
	schedulerCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "disaggbench_scheduler_calls_total",
		Help: "Scheduler calls by command (submit, status, queue, cancel, find, reasons, comment) and outcome (ok, transient, quota, permanent, error).",
	}, []string{"command", "outcome"})
	schedulerSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "disaggbench_scheduler_call_duration_seconds",
		Help:    "Duration of scheduler calls by command.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"command"})
	parseFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "disaggbench_parse_failures_total",
		Help: "Inputs that could not be parsed: kind event (a malformed message) or log (a job's log judged unreadable).",
	}, []string{"stage", "kind"})
	submitRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "disaggbench_submit_retries_total",
		Help: "Job submissions retried after a transient scheduler error or a quota limit.",
	})
	pendingDesc = prometheus.NewDesc("disaggbench_consumer_pending",
		"Messages of the consumer's filter not yet delivered to any instance.", []string{"consumer"}, nil)
	ackPendingDesc = prometheus.NewDesc("disaggbench_consumer_ack_pending",
		"Messages delivered to an instance of the consumer and not yet acknowledged.", []string{"consumer"}, nil)
	redeliveredDesc = prometheus.NewDesc("disaggbench_consumer_redelivered",
		"Messages of the consumer delivered more than once and not yet acknowledged.", []string{"consumer"}, nil)
	natsConnected = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "disaggbench_nats_connections",
		Help: "The process's NATS connections that are up (0 while a server is being reconnected to).",
	}, connectedCount)

	consumers = &consumerCollector{set: map[string]ConsumerSource{}}
)

func init() {
	Registry.MustRegister(eventsHandled, stageDuration, jobsByState, schedulerCalls, schedulerSeconds,
		parseFailures, submitRetries, consumers, natsConnected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Event counts one event a stage handled, with its outcome.
func Event(stage, outcome string) { eventsHandled.WithLabelValues(stage, outcome).Inc() }

// Duration records how long a stage spent on one event.
func Duration(stage string, d time.Duration) {
	stageDuration.WithLabelValues(stage).Observe(d.Seconds())
}

// ParseFailure counts an input of the given kind ("event" or "log") that a stage could
// not read.
func ParseFailure(stage, kind string) { parseFailures.WithLabelValues(stage, kind).Inc() }

// SubmitRetry counts a job submission put off to be retried.
func SubmitRetry() { submitRetries.Inc() }

// SchedulerCall records one scheduler call of the given command, started at start,
// with its error.
func SchedulerCall(command string, start time.Time, err error) {
	outcome := OK
	switch {
	case err == nil:
	case errors.Is(err, scheduler.ErrQuota):
		outcome = "quota"
	case errors.Is(err, scheduler.ErrTransient):
		outcome = "transient"
	case errors.Is(err, scheduler.ErrPermanent):
		outcome = "permanent"
	default:
		outcome = "error"
	}
	schedulerCalls.WithLabelValues(command, outcome).Inc()
	schedulerSeconds.WithLabelValues(command).Observe(time.Since(start).Seconds())
}

// Jobs sets the number of held jobs per scheduler state (states absent count 0).
func Jobs(byState map[string]int) {
	jobsByState.Reset()
	for s, n := range byState {
		jobsByState.WithLabelValues(s).Set(float64(n))
	}
}

var (
	connMu sync.Mutex
	conns  []*nats.Conn
)

// connectedCount counts the tracked connections that are up, forgetting closed ones.
func connectedCount() float64 {
	connMu.Lock()
	defer connMu.Unlock()
	n := 0
	kept := conns[:0]
	for _, nc := range conns {
		if nc.IsClosed() {
			continue
		}
		kept = append(kept, nc)
		if nc.IsConnected() {
			n++
		}
	}
	conns = kept
	return float64(n)
}

// TrackConnection makes disaggbench_nats_connections count nc while it is up.
func TrackConnection(nc *nats.Conn) {
	connMu.Lock()
	defer connMu.Unlock()
	conns = append(conns, nc)
}

// ConsumerCounts are a durable consumer's counts as its server reports them.
type ConsumerCounts struct {
	Pending     uint64 // not yet delivered to any instance
	AckPending  uint64 // delivered and not yet acknowledged
	Redelivered uint64 // delivered more than once and not yet acknowledged
}

// ConsumerSource asks the server for a consumer's counts.
type ConsumerSource interface {
	Counts(ctx context.Context) (ConsumerCounts, error)
}

// TrackConsumer reports the consumer's pending and ack-pending counts on every scrape
// (one info request each, bounded to two seconds); the returned function stops it.
func TrackConsumer(name string, c ConsumerSource) func() {
	consumers.mu.Lock()
	defer consumers.mu.Unlock()
	consumers.set[name] = c
	return func() {
		consumers.mu.Lock()
		defer consumers.mu.Unlock()
		if consumers.set[name] == c {
			delete(consumers.set, name)
		}
	}
}

type consumerCollector struct {
	mu  sync.Mutex
	set map[string]ConsumerSource
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- ackPendingDesc
	ch <- redeliveredDesc
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	set := make(map[string]ConsumerSource, len(c.set))
	for k, v := range c.set {
		set[k] = v
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name, cons := range set {
		n, err := cons.Counts(ctx)
		if err != nil {
			continue // not known now: no sample rather than a wrong one
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n.Pending), name)
		ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(n.AckPending), name)
		ch <- prometheus.MustNewConstMetric(redeliveredDesc, prometheus.GaugeValue, float64(n.Redelivered), name)
	}
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Names lists the metric families the registry can expose (those of the pipeline and
// of the Go runtime and process), whether or not they have samples yet.
func Names() []string {
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range []prometheus.Collector{eventsHandled, stageDuration, jobsByState, schedulerCalls, schedulerSeconds,
			parseFailures, submitRetries, consumers, natsConnected,
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
			c.Describe(ch)
		}
		close(ch)
	}()
	var out []string
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
