package guard

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the guard's Prometheus collectors.
type Metrics struct {
	verdicts *prometheus.CounterVec
	latency  prometheus.Histogram
}

// NewMetrics creates the collectors and registers them on reg (nil: not registered). Registering
// twice on the same registry reuses the collectors already there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medassist_guard_verdicts_total",
			Help: "Guard verdicts by verdict (allow, emergency, out_of_domain, invalid) and reason code.",
		}, []string{"verdict", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "medassist_guard_check_seconds",
			Help:    "Time the guard took to check one message.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 10),
		}),
	}
	if reg != nil {
		m.verdicts = register(reg, m.verdicts)
		m.latency = register(reg, m.latency)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a collector of another shape under the same name: a programming error
	}
	return c
}

// Observe counts one verdict and how long the check took.
func (m *Metrics) Observe(v Verdict, took time.Duration) {
	if m == nil {
		return
	}
	m.verdicts.WithLabelValues(v.Kind.String(), v.Code).Inc()
	m.latency.Observe(took.Seconds())
}

// RegisterMetrics creates the guard's metrics on reg; the middleware records into them from then on.
func (g *Guard) RegisterMetrics(reg prometheus.Registerer) *Metrics {
	m := NewMetrics(reg)
	g.metrics.Store(m)
	return m
}
