// Package metrics holds Loft's Prometheus metrics: one registry per
// server (never Prometheus's global default), the series every protocol
// reports to, and the HTTP handler that serves them.
//
// Protocol packages take a *Protocol from Metrics.Protocol and call it at
// the moments that matter (a command done, a delivery decided, a login
// failed). A nil *Metrics and a nil *Protocol do nothing, so that every
// package works, and its tests run, without metrics.
//
// Label values come from fixed sets: a command the protocol does not
// know, an SASL mechanism it does not offer, is counted as "other". A
// client cannot grow the number of series by sending made-up names.
package metrics

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Other is the label value of a command or mechanism outside the
// protocol's known set.
const Other = "other"

// Outcome is what became of a message for one recipient: the value of
// the outcome label of loft_deliveries_total.
type Outcome string

// Delivery outcomes.
const (
	Accepted            Outcome = "accepted"              // stored (250)
	RejectedQuota       Outcome = "rejected-quota"        // mailbox full (552 5.2.2)
	RejectedUnknownUser Outcome = "rejected-unknown-user" // no such account (550 5.1.1)
	RejectedSize        Outcome = "rejected-size"         // over smtp.max_message_size (552 5.3.4)
	RejectedRelay       Outcome = "rejected-relay"        // not a local domain (554 5.7.1)
	TempFailure         Outcome = "temp-failure"          // 4xx: try again later
)

// latencyBuckets are the bounds, in seconds, of the command and commit
// latency histograms: most commands take well under a millisecond, a
// large FETCH or a delivery's fsync a few, a search of a big mailbox up
// to seconds.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Usage is what the store holds in all: the quota figures of every
// account summed.
type Usage struct {
	Accounts int64
	Messages int64
	Bytes    int64
}

// Options configure Metrics.
type Options struct {
	// Usage, if set, is asked on every scrape for the store's totals. It
	// should be cheap: one indexed query, not a walk of the mail.
	Usage func(context.Context) (Usage, error)
}

// Metrics is one server's set of metrics, with its own registry.
type Metrics struct {
	reg *prometheus.Registry

	connsOpen  *prometheus.GaugeVec
	connsTotal *prometheus.CounterVec
	refused    *prometheus.CounterVec
	bytesIn    *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	commands   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	deliveries *prometheus.CounterVec
	authFailed *prometheus.CounterVec
	commit     prometheus.Histogram
}

// New returns a Metrics with every series registered on a registry of its
// own, together with the Go runtime's and the process's.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "loft_connections_open",
			Help: "Connections open now, by listener.",
		}, []string{"listener"}),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loft_connections_total",
			Help: "Connections accepted (within the connection limits), by listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loft_connections_refused_total",
			Help: "Connections refused at accept, by listener and reason: per_ip and total (limits.max_connections_per_ip, limits.max_connections), blocked (too many failed logins from the address).",
		}, []string{"listener", "reason"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loft_received_bytes_total",
			Help: "Bytes read from clients, as on the wire (TLS and compression included), by listener.",
		}, []string{"listener"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loft_sent_bytes_total",
			Help: "Bytes written to clients, as on the wire (TLS and compression included), by listener.",
		}, []string{"listener"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loft_commands_total",
			Help: "Commands run, by protocol and command (\"other\": unknown ones).",
		}, []string{"proto", "command"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "loft_command_duration_seconds",
			Help:    "Time from a command's line read to its response written, by protocol and command.",
			Buckets: latencyBuckets,
		}, []string{"proto", "command"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loft_deliveries_total",
			Help: "Messages offered for delivery, one per recipient, by protocol and outcome.",
		}, []string{"proto", "outcome"}),
		authFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loft_auth_failures_total",
			Help: "Failed logins (wrong password or unknown account), by protocol and mechanism.",
		}, []string{"proto", "mechanism"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "loft_store_commit_duration_seconds",
			Help:    "Duration of the store's group commits, fsyncs included.",
			Buckets: latencyBuckets,
		}),
	}
	m.reg.MustRegister(m.connsOpen, m.connsTotal, m.refused, m.bytesIn, m.bytesOut, m.commands, m.latency,
		m.deliveries, m.authFailed, m.commit,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Usage != nil {
		m.reg.MustRegister(usageCollector(opts.Usage))
	}
	return m
}

// Handler serves the metrics in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Registry is the registry the metrics are on, for tests and for adding
// a collector of one's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveCommit records one group commit of the store that took d. It is
// the store's commit observer (store.Options.ObserveCommit).
func (m *Metrics) ObserveCommit(d time.Duration) {
	if m == nil {
		return
	}
	m.commit.Observe(d.Seconds())
}

// ProtocolSpec names a protocol and the label values it may use.
type ProtocolSpec struct {
	// Name is the proto label: "smtp", "lmtp", "imap" or "pop3".
	Name string
	// Commands are the command names the protocol counts by name, as it
	// will pass them to Command (upper-case by convention).
	Commands []string
	// Mechanisms are the login mechanisms it may pass to AuthFailed: the
	// SASL mechanisms it offers and its password command ("LOGIN" for
	// IMAP, "USER" for POP3).
	Mechanisms []string
}

// Protocol is one protocol's view of the metrics.
type Protocol struct {
	name       string
	commands   map[string]commandSeries
	mechanisms map[string]prometheus.Counter
	deliveries *prometheus.CounterVec
}

// commandSeries are one command's counter and latency histogram.
type commandSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// Protocol returns the view of spec's protocol. Every series of its known
// commands and mechanisms is created at once, at zero, so that a rate
// over them is defined before the first use. Two servers of one protocol
// (imap and imaps) may each take one: they count together.
func (m *Metrics) Protocol(spec ProtocolSpec) *Protocol {
	if m == nil {
		return nil
	}
	p := &Protocol{
		name:       spec.Name,
		commands:   make(map[string]commandSeries, len(spec.Commands)+1),
		mechanisms: make(map[string]prometheus.Counter, len(spec.Mechanisms)+1),
		deliveries: m.deliveries,
	}
	for _, c := range slices.Concat(spec.Commands, []string{Other}) {
		p.commands[c] = commandSeries{
			count:   m.commands.WithLabelValues(spec.Name, c),
			latency: m.latency.WithLabelValues(spec.Name, c),
		}
	}
	for _, mech := range slices.Concat(spec.Mechanisms, []string{Other}) {
		p.mechanisms[mech] = m.authFailed.WithLabelValues(spec.Name, mech)
	}
	return p
}

// Command records a command named name that began at start and is done.
func (p *Protocol) Command(name string, start time.Time) {
	if p == nil {
		return
	}
	s, ok := p.commands[name]
	if !ok {
		s = p.commands[Other]
	}
	s.count.Inc()
	s.latency.Observe(time.Since(start).Seconds())
}

// AuthFailed records a failed login with mechanism mech.
func (p *Protocol) AuthFailed(mech string) {
	if p == nil {
		return
	}
	c, ok := p.mechanisms[mech]
	if !ok {
		c = p.mechanisms[Other]
	}
	c.Inc()
}

// Delivery records the outcome of a message for n recipients.
func (p *Protocol) Delivery(outcome Outcome, n int) {
	if p == nil || n <= 0 {
		return
	}
	p.deliveries.WithLabelValues(p.name, string(outcome)).Add(float64(n))
}

// usageTimeout bounds the store query of one scrape.
const usageTimeout = 5 * time.Second

// usageCollector reports the store's totals, asked at each scrape: the
// figures are the store's own, so they cannot drift from it.
type usageCollector func(context.Context) (Usage, error)

var (
	accountsDesc = prometheus.NewDesc("loft_accounts", "Accounts in the store.", nil, nil)
	messagesDesc = prometheus.NewDesc("loft_quota_messages", "Messages stored, all accounts and mailboxes together.", nil, nil)
	bytesDesc    = prometheus.NewDesc("loft_quota_used_bytes", "Quota usage of all accounts together, in bytes (a copy counts again).", nil, nil)
)

func (u usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- accountsDesc
	ch <- messagesDesc
	ch <- bytesDesc
}

func (u usageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), usageTimeout)
	defer cancel()
	usage, err := u(ctx)
	if err != nil {
		// The scrape reports the error (HTTP 500 with it) rather than
		// serve figures it does not have.
		ch <- prometheus.NewInvalidMetric(bytesDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(accountsDesc, prometheus.GaugeValue, float64(usage.Accounts))
	ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.GaugeValue, float64(usage.Messages))
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(usage.Bytes))
}
