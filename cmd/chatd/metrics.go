package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport"
)

// metrics is chatd's Prometheus registry. Label values come from small
// fixed sets (codes, reasons, shard numbers): none grows with users or rooms.
type metrics struct {
	reg         *prometheus.Registry
	ack         prometheus.Histogram
	delivery    prometheus.Histogram
	stored      prometheus.Counter
	errorFrames *prometheus.CounterVec
	authFail    *prometheus.CounterVec
	limited     *prometheus.CounterVec
	closes      *prometheus.CounterVec
	redisErrs   prometheus.Counter
	redisDials  prometheus.Counter

	hookAttempts *prometheus.CounterVec
	hookSeconds  prometheus.Histogram
	hookRetries  prometheus.Counter
	hookDropped  *prometheus.CounterVec
}

// latencyBuckets span 250 µs to 10 s.
var latencyBuckets = []float64{.00025, .0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.ack = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_send_ack_seconds",
		Help: "Time from a send frame's arrival to its ack (message stored in Redis).", Buckets: latencyBuckets})
	m.delivery = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_delivery_seconds",
		Help: "Time from a message's stream ID (stored in Redis) to its write on a local socket.", Buckets: latencyBuckets})
	m.stored = prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_messages_stored_total",
		Help: "Messages this instance stored for its socket clients (acked sends)."})
	m.errorFrames = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_error_frames_total",
		Help: "Error frames sent to clients, by code."}, []string{"code"})
	m.authFail = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_auth_failures_total",
		Help: "Refused logins and tokens, by reason."}, []string{"reason"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_rate_limited_total",
		Help: "Requests refused by a rate or count limit, by limit."}, []string{"limit"})
	m.closes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_socket_closes_total",
		Help: "Closed WebSocket connections, by close code."}, []string{"code"})
	m.redisErrs = prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_redis_errors_total",
		Help: "Redis commands that failed (not counting empty replies)."})
	m.redisDials = prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_redis_dials_total",
		Help: "Connections dialled to Redis; growth after startup means reconnects."})
	m.hookAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_webhook_deliveries_total",
		Help: "Webhook POSTs by outcome: delivered (2xx), redirect (3xx), rejected (4xx), failed (other status), timeout, network."}, []string{"outcome"})
	m.hookSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_webhook_post_seconds",
		Help: "Time a webhook POST took, whatever its outcome.", Buckets: latencyBuckets})
	m.hookRetries = prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_webhook_retries_total",
		Help: "Webhook POSTs made after a failed one of the same event."})
	m.hookDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_webhook_dropped_total",
		Help: "Webhook events given up: max_age (retried until CHAT_WEBHOOK_MAX_AGE), trimmed (removed by retention before delivery)."}, []string{"reason"})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ack, m.delivery, m.stored, m.errorFrames, m.authFail, m.limited, m.closes, m.redisErrs, m.redisDials,
		m.hookAttempts, m.hookSeconds, m.hookRetries, m.hookDropped)
	return m
}

// webhookObserver feeds the webhook deliverer's events into the registry.
func (m *metrics) webhookObserver() transport.WebhookObserver {
	return transport.WebhookObserver{
		Attempt: func(outcome string, took time.Duration) {
			m.hookAttempts.WithLabelValues(outcome).Inc()
			m.hookSeconds.Observe(took.Seconds())
		},
		Retry:   func() { m.hookRetries.Inc() },
		Dropped: func(reason string, n int) { m.hookDropped.WithLabelValues(reason).Add(float64(n)) },
	}
}

// watchWebhooks registers the gauges read from the webhook deliverer.
func (m *metrics) watchWebhooks(w *transport.Webhooks) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chat_webhook_oldest_pending_seconds",
		Help: "Age of the oldest webhook event this instance knows to be undelivered (0: none)."},
		func() float64 { return w.OldestPending().Seconds() }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chat_webhook_rooms_delivering",
		Help: "Rooms whose webhook events this instance delivers now (it holds their lease)."},
		func() float64 { return float64(w.Delivering()) }))
}

// observer feeds transport's events into the registry.
func (m *metrics) observer() transport.Observer {
	return transport.Observer{
		Ack:         func(d time.Duration) { m.ack.Observe(d.Seconds()); m.stored.Inc() },
		Delivery:    func(d time.Duration) { m.delivery.Observe(d.Seconds()) },
		ErrorFrame:  func(code string) { m.errorFrames.WithLabelValues(code).Inc() },
		AuthFailure: func(reason string) { m.authFail.WithLabelValues(reason).Inc() },
		RateLimited: func(kind string) { m.limited.WithLabelValues(kind).Inc() },
		Closed:      func(code int) { m.closes.WithLabelValues(strconv.Itoa(code)).Inc() },
	}
}

// watch registers the gauges and counters read from the engine and the
// transport server.
func (m *metrics) watch(eng *engine.Engine, srv *transport.Server) {
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("chat_sockets_open", "Open WebSocket connections.", func() float64 { return float64(srv.Conns()) })
	gauge("chat_rooms_watched", "Rooms with local sessions, whose notices this instance receives.", func() float64 { return float64(eng.Stats().Rooms) })
	gauge("chat_room_joins", "Joined (socket, room) pairs.", func() float64 { return float64(eng.Stats().Subscriptions) })
	gauge("chat_rooms_repairing", "Rooms being read from their stream position (a missed notice, a resync).", func() float64 { return float64(eng.Stats().Repairing) })
	counter("chat_entries_noticed_total", "Stream entries that arrived as pub/sub notices.", func() float64 { return float64(eng.Counters().Noticed) })
	counter("chat_entries_repaired_total", "Stream entries read from room streams to repair missed notices.", func() float64 { return float64(eng.Counters().Repaired) })
	counter("chat_messages_delivered_total", "Entry frames queued to local sockets.", func() float64 { return float64(eng.Counters().Delivered) })
	counter("chat_slow_consumer_disconnects_total", "Sockets closed with 1013 for not keeping up.", func() float64 { return float64(eng.Counters().SlowKicks) })
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// redisHook counts Redis errors and dials.
type redisHook struct{ m *metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.m.redisDials.Inc()
		c, err := next(ctx, network, addr)
		if err != nil {
			h.m.redisErrs.Inc()
		}
		return c, err
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.count(err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.count(err)
		return err
	}
}

func (h redisHook) count(err error) {
	if err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "NOSCRIPT") {
		h.m.redisErrs.Inc()
	}
}
