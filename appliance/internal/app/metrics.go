package app

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the appliance's own Prometheus metrics. Each function
// registers its own on the same registry.
type metrics struct {
	reloads    *prometheus.CounterVec
	generation prometheus.Gauge
	lastReload prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, a *App, version string) *metrics {
	m := &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seccloud_config_reloads_total", Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seccloud_config_generation", Help: "Config generation in force.",
		}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "seccloud_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful reload.",
		}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "seccloud_build_info", Help: "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	tenants := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "seccloud_tenants", Help: "Tenants in the directory in force.",
	}, func() float64 {
		if s := a.live.Load(); s != nil {
			return float64(len(s.Tenants()))
		}
		return 0
	})
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.reloads, m.generation, m.lastReload, build, tenants,
	)
	return m
}
