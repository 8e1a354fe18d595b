package pipeline

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
)

// Metrics are the node's Prometheus metrics, on their own registry (no
// global state: two nodes in one test process do not share counters).
type Metrics struct {
	Registry *prometheus.Registry

	Associations     prometheus.Counter
	Instances        *prometheus.CounterVec // by channel ("none": not routed)
	NotSegmented     *prometheus.CounterVec // by reason (routing rule, no_rule)
	Implausible      *prometheus.CounterVec // by channel, reason (plausibility guard)
	Bytes            prometheus.Counter
	Inference        *prometheus.HistogramVec // by channel, provider
	Segmentation     *prometheus.HistogramVec // by channel, provider
	SegmentFailures  *prometheus.CounterVec   // by channel
	DeliveryAttempts *prometheus.CounterVec   // by destination
	DeliveryFailures *prometheus.CounterVec   // by destination
	EndToEnd         *prometheus.HistogramVec // by channel

	// Activity is what the console shows beside the counters (activity.go).
	Activity *Activity
}

// NewMetrics registers the metrics, and the process and Go collectors, on a
// new registry.
func NewMetrics() *Metrics {
	latency := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Activity: NewActivity(),
		Associations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espnode_associations_total",
			Help: "DICOM connections accepted (each carries at most one association).",
		}),
		Instances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espnode_instances_received_total",
			Help: "Instances stored from C-STORE, by the channel routing gave them (none: not segmented).",
		}, []string{"channel"}),
		NotSegmented: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espnode_instances_not_segmented_total",
			Help: "Instances stored without segmentation, by reason: the reason of the routing rule that said none (xray_not_chest...), or no_rule.",
		}, []string{"reason"}),
		Implausible: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espnode_implausible_instances_total",
			Help: "Instances the plausibility guard judged implausible (foreground share or patch confidence outside the model's bounds for the channel), by channel and reason; their SEG is withheld when model.reject_implausible is on.",
		}, []string{"channel", "reason"}),
		Bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "espnode_received_bytes_total",
			Help: "Bytes of the instances stored from C-STORE, file meta included.",
		}),
		Inference: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "espnode_inference_seconds",
			Help:    "Time in the model per segmented instance or series, batching waits included.",
			Buckets: latency,
		}, []string{"channel", "provider"}),
		Segmentation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "espnode_segmentation_seconds",
			Help:    "Decode, inference, post-processing and SEG encoding per segmented instance or series.",
			Buckets: latency,
		}, []string{"channel", "provider"}),
		SegmentFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espnode_segmentation_failures_total",
			Help: "Segmentation attempts that failed, by channel.",
		}, []string{"channel"}),
		DeliveryAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espnode_delivery_attempts_total",
			Help: "C-STORE deliveries of SEGs attempted, by destination (AET@HOST:PORT).",
		}, []string{"destination"}),
		DeliveryFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "espnode_delivery_failures_total",
			Help: "C-STORE deliveries of SEGs that failed, by destination.",
		}, []string{"destination"}),
		EndToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "espnode_end_to_end_seconds",
			Help:    "From storing the (last) source instance to the destination accepting its SEG, by channel.",
			Buckets: latency,
		}, []string{"channel"}),
	}
	m.Registry.MustRegister(m.Associations, m.Instances, m.NotSegmented, m.Implausible, m.Bytes, m.Inference, m.Segmentation,
		m.SegmentFailures, m.DeliveryAttempts, m.DeliveryFailures, m.EndToEnd,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// jobCollector reports the jobs per kind and state at each scrape, from the
// queue.
type jobCollector struct {
	queue store.Queue
	desc  *prometheus.Desc
	log   zerolog.Logger
}

func newJobCollector(q store.Queue, log zerolog.Logger) *jobCollector {
	return &jobCollector{queue: q, log: log, desc: prometheus.NewDesc("espnode_jobs",
		"Jobs by kind and state (discarded: dead letters; cancelled: not retried, e.g. undecodable).",
		[]string{"kind", "state"}, nil)}
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.queue.JobCounts(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics: counting jobs")
		return
	}
	for _, kind := range []string{KindSegment, KindSegmentSeries, KindDeliver} {
		for _, state := range jobStates {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue,
				float64(counts[store.JobKey{Kind: kind, State: state}]), kind, string(state))
		}
	}
}
