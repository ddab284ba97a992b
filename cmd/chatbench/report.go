package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// rssSample is the servers' resident memory at one moment.
type rssSample struct {
	bytes  int64
	ok     bool
	source string // "proc" or "metrics"
}

// Report is the outcome of one run, printed as a table and as one JSON
// line. Latencies are in milliseconds; message counts cover the
// measurement window only (warmup excluded).
type Report struct {
	Run                string   `json:"run"`
	Servers            []string `json:"servers"`
	Clients            int      `json:"clients"`
	Connected          int      `json:"connected"`
	ConnectFailed      int      `json:"connect_failed"`
	Rooms              int      `json:"rooms"`
	RoomSize           int      `json:"room_size"`
	RoomsPerClient     int      `json:"rooms_per_client"` // the most rooms one socket joined
	ClientsInRooms     int      `json:"clients_in_rooms"`
	Spread             bool     `json:"spread"` // every room's members spread evenly over the servers
	Senders            int      `json:"senders"`
	Rate               float64  `json:"rate"`
	DurationS          float64  `json:"duration_s"`
	WarmupS            float64  `json:"warmup_s"`
	Batch              bool     `json:"batch"`
	Idle               bool     `json:"idle"`
	Workers            int      `json:"workers"`
	Logins             int      `json:"logins"`
	Deliveries         int64    `json:"deliveries"`
	DeliveriesPerS     float64  `json:"deliveries_per_s"`
	P50Ms              float64  `json:"p50_ms"`
	P90Ms              float64  `json:"p90_ms"`
	P99Ms              float64  `json:"p99_ms"`
	P999Ms             float64  `json:"p999_ms"`
	MaxMs              float64  `json:"max_ms"`
	MeanMs             float64  `json:"mean_ms"`
	AckP50Ms           float64  `json:"ack_p50_ms"`
	AckP99Ms           float64  `json:"ack_p99_ms"`
	AckMaxMs           float64  `json:"ack_max_ms"`
	Sent               int64    `json:"sent"`
	Acked              int64    `json:"acked"`
	Skipped            int64    `json:"skipped"`
	Rejected           int64    `json:"rejected"`
	Unacked            int64    `json:"unacked"`
	Expected           int64    `json:"expected"`
	Lost               int64    `json:"lost"`
	LostReconnected    int64    `json:"lost_reconnected"`
	Dups               int64    `json:"dups"`
	Reorders           int64    `json:"reorders"`
	Disconnects        int64    `json:"disconnects"`
	ReconnectedClients int64    `json:"reconnected_clients"`
	Unrecovered        int64    `json:"unrecovered"`
	Foreign            int64    `json:"foreign"`
	BadFrames          int64    `json:"bad_frames"`

	// Edits and reactions, with --events: the share of slots, the counts,
	// and rates and latencies derived as for messages (event latency runs
	// from when the event was due to its arrival at a member).
	Events float64 `json:"events,omitempty"`
	EventCounts
	EventsAcked         int64   `json:"events_acked,omitempty"` // edits and reactions acked with an event ID
	EventDeliveriesPerS float64 `json:"event_deliveries_per_s,omitempty"`
	EventP50Ms          float64 `json:"event_p50_ms,omitempty"`
	EventP99Ms          float64 `json:"event_p99_ms,omitempty"`
	EventMaxMs          float64 `json:"event_max_ms,omitempty"`
	EventAckP50Ms       float64 `json:"event_ack_p50_ms,omitempty"`
	EventAckP99Ms       float64 `json:"event_ack_p99_ms,omitempty"`
	EventAckMaxMs       float64 `json:"event_ack_max_ms,omitempty"`

	ErrCodes   map[string]int64 `json:"error_codes,omitempty"`
	CloseCodes map[string]int64 `json:"close_codes,omitempty"`
	LostSample []string         `json:"lost_sample,omitempty"`

	ServerRSSBytes        int64   `json:"server_rss_bytes,omitempty"`
	ServerRSSBaseBytes    int64   `json:"server_rss_base_bytes,omitempty"`
	ServerRSSPerConnBytes float64 `json:"server_rss_per_conn_bytes,omitempty"`
	ServerRSSSource       string  `json:"server_rss_source,omitempty"`

	// CPU time over the measured window (WindowS seconds between the
	// samples), and per 1,000 measured deliveries or acked sends, in ms.
	WindowS               float64    `json:"window_s,omitempty"`
	RedisCPU              []RedisCPU `json:"redis_cpu,omitempty"`
	RedisCPUS             float64    `json:"redis_cpu_s,omitempty"`
	RedisCPUMsPer1000     float64    `json:"redis_cpu_ms_per_1000_deliveries,omitempty"`
	ServerCPU             []float64  `json:"server_cpu_s_each,omitempty"`
	ServerCPUS            float64    `json:"server_cpu_s,omitempty"`
	ServerCPUSource       string     `json:"server_cpu_source,omitempty"`
	ServerCPUMsPer1000    float64    `json:"server_cpu_ms_per_1000_deliveries,omitempty"`
	GeneratorCPUS         float64    `json:"generator_cpu_s,omitempty"`
	GeneratorCores        float64    `json:"generator_cores,omitempty"`
	GeneratorCPUMsPer1000 float64    `json:"generator_cpu_ms_per_1000_acked,omitempty"`
	// GeneratorShare is chatbench's share of the CPU time measured, its
	// own, the servers' and Redis's together, when any of theirs was: on
	// one machine, what the generator takes the servers cannot have.
	GeneratorShare float64 `json:"generator_cpu_share,omitempty"`

	RSSBase, RSSReady, RSSEnd rssSample `json:"-"`
	Start                     time.Time `json:"-"`
}

func newReport(cfg *config) *Report {
	rate := cfg.rate
	if cfg.idle {
		rate = 0
	}
	return &Report{
		Run:       cfg.runID,
		Servers:   cfg.servers,
		Clients:   cfg.clients,
		Rooms:     cfg.rooms,
		RoomSize:  cfg.roomSize,
		Senders:   cfg.senders,
		Rate:      rate,
		DurationS: cfg.duration.Seconds(),
		WarmupS:   cfg.warmup.Seconds(),
		Batch:     cfg.batch,
		Idle:      cfg.idle,
		Events:    cfg.events,
	}
}

func ms(us int64) float64 { return math.Round(float64(us)) / 1e3 }

// fill copies the merged result into the report and derives rates,
// percentiles and memory per connection.
func (r *Report) fill(res *Result) {
	r.Connected = res.Connected
	r.ConnectFailed = res.ConnectFailed
	r.Deliveries = res.Deliveries
	if r.DurationS > 0 {
		r.DeliveriesPerS = math.Round(float64(res.Deliveries)/r.DurationS*10) / 10
	}
	h := res.Latency
	if h == nil {
		h = &Hist{}
	}
	r.P50Ms, r.P90Ms, r.P99Ms = ms(h.Quantile(0.5)), ms(h.Quantile(0.9)), ms(h.Quantile(0.99))
	r.P999Ms, r.MaxMs = ms(h.Quantile(0.999)), ms(h.Max())
	r.MeanMs = math.Round(h.Mean()) / 1e3
	a := res.AckLatency
	if a == nil {
		a = &Hist{}
	}
	r.AckP50Ms, r.AckP99Ms, r.AckMaxMs = ms(a.Quantile(0.5)), ms(a.Quantile(0.99)), ms(a.Max())
	r.Sent, r.Acked, r.Skipped, r.Rejected, r.Unacked = res.Sent, res.Acked, res.Skipped, res.Rejected, res.Unacked
	r.Expected, r.Lost, r.LostReconnected = res.Expected, res.Lost, res.LostReconnected
	r.Dups, r.Reorders = res.Dups, res.Reorders
	r.Disconnects, r.ReconnectedClients, r.Unrecovered = res.Disconnects, res.ReconnectedClients, res.Unrecovered
	r.Foreign, r.BadFrames = res.Foreign, res.BadFrames
	r.ErrCodes, r.CloseCodes, r.LostSample = res.ErrCodes, res.CloseCodes, res.LostSample

	r.EventCounts = res.EventCounts
	r.EventsAcked = res.EditsAcked + res.ReactionsAcked
	if r.DurationS > 0 {
		r.EventDeliveriesPerS = math.Round(float64(res.EventDeliveries)/r.DurationS*10) / 10
	}
	if e := res.EventLatency; e != nil {
		r.EventP50Ms, r.EventP99Ms, r.EventMaxMs = ms(e.Quantile(0.5)), ms(e.Quantile(0.99)), ms(e.Max())
	}
	if e := res.EventAckLatency; e != nil {
		r.EventAckP50Ms, r.EventAckP99Ms, r.EventAckMaxMs = ms(e.Quantile(0.5)), ms(e.Quantile(0.99)), ms(e.Max())
	}

	end := r.RSSEnd
	if !end.ok {
		end = r.RSSReady
	}
	if end.ok {
		r.ServerRSSBytes = end.bytes
		r.ServerRSSSource = end.source
		if r.RSSBase.ok {
			r.ServerRSSBaseBytes = r.RSSBase.bytes
			if r.Connected > 0 && end.bytes > r.RSSBase.bytes {
				r.ServerRSSPerConnBytes = math.Round(float64(end.bytes-r.RSSBase.bytes) / float64(r.Connected))
			}
		}
	}
}

// failed reports whether the run saw loss or duplicates, of messages or
// of edits and reactions.
func (r *Report) failed() bool {
	return r.Lost > 0 || r.LostReconnected > 0 || r.Dups > 0 ||
		r.EventsMissing > 0 || r.EventsMissingReconnected > 0 || r.EventDups > 0
}

// writeJSON prints r as one line.
func (r *Report) writeJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeTable prints r for people.
func (r *Report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", name, fmt.Sprintf(format, args...))
	}
	onOff := map[bool]string{true: "on", false: "off"}
	row("run", "%s", r.Run)
	row("servers", "%s", strings.Join(r.Servers, ", "))
	row("clients", "%d (%d connected, %d failed) in %d worker(s); %d logins", r.Clients, r.Connected, r.ConnectFailed, r.Workers, r.Logins)
	spread := ""
	if len(r.Servers) > 1 && r.Rooms > 0 {
		spread = map[bool]string{true: ", members spread over the servers", false: ", members NOT spread evenly over the servers"}[r.Spread]
	}
	row("rooms", "%d × %d, up to %d per client (%d clients in rooms%s)", r.Rooms, r.RoomSize, r.RoomsPerClient, r.ClientsInRooms, spread)
	if r.Idle {
		row("mode", "idle for %gs", r.DurationS)
	} else {
		row("rate", "%g msg/s from %d senders, batch %s", r.Rate, r.Senders, onOff[r.Batch])
		row("duration", "%gs after %gs warmup", r.DurationS, r.WarmupS)
		row("deliveries", "%d (%.1f/s) of %d expected", r.Deliveries, r.DeliveriesPerS, r.Expected)
		row("latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f", r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms, r.MaxMs)
		row("ack ms", "p50 %.3f  p99 %.3f  max %.3f", r.AckP50Ms, r.AckP99Ms, r.AckMaxMs)
		row("sends", "sent %d  acked %d  skipped %d  rejected %d  unacked %d", r.Sent, r.Acked, r.Skipped, r.Rejected, r.Unacked)
		row("lost", "%d (clients that stayed connected), %d (clients that reconnected)", r.Lost, r.LostReconnected)
		row("dups", "%d", r.Dups)
		row("reorders", "%d", r.Reorders)
		if r.Events > 0 {
			row("events", "%g of the slots: sent %d  acked %d (%d edits, %d reactions)  unchanged %d  rejected %d  unacked %d",
				r.Events, r.EventsSent, r.EventsAcked, r.EditsAcked, r.ReactionsAcked, r.EventsNoop, r.EventsRejected, r.EventsUnacked)
			row("event deliveries", "%d (%.1f/s) of %d expected; missing %d (stayed connected), %d (reconnected); dups %d  reorders %d",
				r.EventDeliveries, r.EventDeliveriesPerS, r.EventsExpected, r.EventsMissing, r.EventsMissingReconnected, r.EventDups, r.EventReorders)
			row("event ms", "p50 %.3f  p99 %.3f  max %.3f", r.EventP50Ms, r.EventP99Ms, r.EventMaxMs)
			row("event ack ms", "p50 %.3f  p99 %.3f  max %.3f", r.EventAckP50Ms, r.EventAckP99Ms, r.EventAckMaxMs)
		}
	}
	row("disconnects", "%d (%d clients reconnected, %d rejoins unrecovered)", r.Disconnects, r.ReconnectedClients, r.Unrecovered)
	if len(r.ErrCodes) > 0 {
		row("error frames", "%s", formatCounts(r.ErrCodes))
	}
	if len(r.CloseCodes) > 0 {
		row("close codes", "%s", formatCounts(r.CloseCodes))
	}
	if r.ServerRSSBytes > 0 {
		s := fmt.Sprintf("%s (from %s)", formatBytes(float64(r.ServerRSSBytes)), r.ServerRSSSource)
		if r.ServerRSSBaseBytes > 0 {
			s += fmt.Sprintf(", %s before connecting: %s per connection",
				formatBytes(float64(r.ServerRSSBaseBytes)), formatBytes(r.ServerRSSPerConnBytes))
		}
		row("server RSS", "%s", s)
		if r.Logins > 0 {
			row("", "(%d logins in this run may still inflate it: argon2id; rerun with --token-cache for a clean figure)", r.Logins)
		}
	}
	r.writeCPU(row)
	for _, s := range r.LostSample {
		row("lost sample", "%s", s)
	}
	return tw.Flush()
}

// writeCPU prints the CPU rows of the table.
func (r *Report) writeCPU(row func(name, format string, args ...any)) {
	if r.WindowS <= 0 {
		return
	}
	per := func(ms float64, what string) string {
		if ms <= 0 {
			return ""
		}
		return fmt.Sprintf(", %.3g ms per 1,000 %s", ms, what)
	}
	if len(r.RedisCPU) > 0 {
		parts := make([]string, len(r.RedisCPU))
		for i, c := range r.RedisCPU {
			role := ""
			if c.Role != "" {
				role = " " + c.Role
			}
			parts[i] = fmt.Sprintf("%s%s %.3f s (%.0f%%)", c.Addr, role, c.Seconds, 100*c.Share)
		}
		row("redis CPU", "%.3f s in %.1f s (%.2f cores)%s: %s", r.RedisCPUS, r.WindowS, r.RedisCPUS/r.WindowS,
			per(r.RedisCPUMsPer1000, "deliveries"), strings.Join(parts, ", "))
	}
	if len(r.ServerCPU) > 0 {
		each := make([]string, len(r.ServerCPU))
		for i, v := range r.ServerCPU {
			each[i] = strconv.FormatFloat(v, 'f', 3, 64)
		}
		row("server CPU", "%.3f s (%.2f cores)%s; each %s s (from %s)", r.ServerCPUS, r.ServerCPUS/r.WindowS,
			per(r.ServerCPUMsPer1000, "deliveries"), strings.Join(each, ", "), r.ServerCPUSource)
	}
	if r.GeneratorCPUS > 0 {
		share := ""
		if r.GeneratorShare > 0 {
			share = fmt.Sprintf("; %.0f%% of the CPU measured (chatbench, servers, Redis)", 100*r.GeneratorShare)
		}
		row("chatbench CPU", "%.3f s (%.2f cores)%s%s", r.GeneratorCPUS, r.GeneratorCores, per(r.GeneratorCPUMsPer1000, "acked sends"), share)
	}
}

func formatCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func formatBytes(b float64) string {
	switch a := math.Abs(b); {
	case a >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case a >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// csvHeader names the columns of sweep.csv and sweep-rooms.csv. An empty
// cell is a figure that was not measured.
var csvHeader = []string{
	"clients", "connected", "deliveries", "deliveries_per_s",
	"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "ack_p50_ms", "ack_p99_ms",
	"sent", "acked", "skipped", "lost", "lost_reconnected", "dups", "reorders",
	"disconnects", "server_rss_bytes", "server_rss_per_conn_bytes",
	"rooms", "room_size", "rooms_per_client", "clients_in_rooms",
	"redis_cpu_s", "redis_cpu_ms_per_1000_deliveries", "server_cpu_s", "server_cpu_ms_per_1000_deliveries",
	"generator_cpu_s", "generator_cpu_ms_per_1000_acked",
	"events", "events_acked", "event_deliveries", "events_missing", "event_dups", "event_p50_ms", "event_p99_ms",
}

// writeCSV writes one row per sweep step.
func writeCSV(w io.Writer, reps []*Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	opt := func(v float64) string { // empty: not measured
		if v > 0 {
			return f(v)
		}
		return ""
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, r := range reps {
		row := []string{
			strconv.Itoa(r.Clients), strconv.Itoa(r.Connected), i(r.Deliveries), f(r.DeliveriesPerS),
			f(r.P50Ms), f(r.P90Ms), f(r.P99Ms), f(r.P999Ms), f(r.MaxMs), f(r.AckP50Ms), f(r.AckP99Ms),
			i(r.Sent), i(r.Acked), i(r.Skipped), i(r.Lost), i(r.LostReconnected), i(r.Dups), i(r.Reorders),
			i(r.Disconnects), i(r.ServerRSSBytes), opt(r.ServerRSSPerConnBytes),
			strconv.Itoa(r.Rooms), strconv.Itoa(r.RoomSize), strconv.Itoa(r.RoomsPerClient), strconv.Itoa(r.ClientsInRooms),
			opt(r.RedisCPUS), opt(r.RedisCPUMsPer1000), opt(r.ServerCPUS), opt(r.ServerCPUMsPer1000),
			opt(r.GeneratorCPUS), opt(r.GeneratorCPUMsPer1000),
			f(r.Events), i(r.EventsAcked), i(r.EventDeliveries), i(r.EventsMissing + r.EventsMissingReconnected), i(r.EventDups),
			opt(r.EventP50Ms), opt(r.EventP99Ms),
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// niceTicks returns about n round tick values from 0 to at least hi.
func niceTicks(hi float64, n int) []float64 {
	if hi <= 0 || math.IsNaN(hi) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := 0.0; ; v += step {
		out = append(out, v)
		if v >= hi {
			break
		}
	}
	return out
}

func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// writeSVG draws p50 and p99 delivery latency (left axis) and a second
// figure (right axis) against connections, or with byRooms against rooms
// on a log scale, one point per sweep step. The second figure is Redis CPU
// per 1,000 deliveries for a room sweep that measured it, else deliveries
// per second.
func writeSVG(w io.Writer, reps []*Report, title string, byRooms bool) error {
	const (
		width, height            = 880, 520
		left, right, top, bottom = 80, 90, 50, 70
		pw, ph                   = width - left - right, height - top - bottom
	)
	xOf := func(r *Report) float64 { return float64(r.Connected) }
	xLabel := "connections"
	rightName, rightLabel := "deliveries/s", "deliveries per second"
	rightOf := func(r *Report) float64 { return r.DeliveriesPerS }
	if byRooms {
		xOf, xLabel = func(r *Report) float64 { return float64(r.Rooms) }, "rooms (log scale)"
		if slices.ContainsFunc(reps, func(r *Report) bool { return r.RedisCPUMsPer1000 > 0 }) {
			rightName, rightLabel = "Redis CPU", "Redis CPU ms per 1,000 deliveries"
			rightOf = func(r *Report) float64 { return r.RedisCPUMsPer1000 }
		}
	}
	var maxX, maxLat, maxRight float64
	minX := math.Inf(1)
	for _, r := range reps {
		maxX, minX = max(maxX, xOf(r)), min(minX, xOf(r))
		maxLat = max(maxLat, r.P99Ms, r.P50Ms)
		maxRight = max(maxRight, rightOf(r))
	}
	lt, rt := niceTicks(maxLat, 5), niceTicks(maxRight, 5)
	latMax, rightMax := lt[len(lt)-1], rt[len(rt)-1]
	var xt []float64
	var x func(float64) float64
	if byRooms {
		lo, hi := 0.0, 1.0
		if maxX >= 1 {
			lo = math.Floor(math.Log10(max(minX, 1)))
			hi = max(lo+1, math.Ceil(math.Log10(maxX)))
		}
		for e := lo; e <= hi; e++ {
			xt = append(xt, math.Pow(10, e))
		}
		x = func(v float64) float64 { return left + (math.Log10(max(v, 1))-lo)/(hi-lo)*pw }
	} else {
		xt = niceTicks(maxX, 6)
		xMax := xt[len(xt)-1]
		x = func(v float64) float64 { return left + v/xMax*pw }
	}
	yl := func(v float64) float64 { return top + ph - v/latMax*ph }
	yr := func(v float64) float64 { return top + ph - v/rightMax*ph }

	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="28" font-size="16" text-anchor="middle">%s</text>`+"\n", width/2, html.EscapeString(title))
	// Grid and axes.
	for _, v := range lt {
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, yl(v), left+pw, yl(v))
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yl(v)+4, fmtTick(v))
	}
	for _, v := range rt {
		p(`<text x="%d" y="%.1f" text-anchor="start" fill="#2a7d2a">%s</text>`+"\n", left+pw+6, yr(v)+4, fmtTick(v))
	}
	for _, v := range xt {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e5e5"/>`+"\n", x(v), top, x(v), top+ph)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(v), top+ph+18, fmtTick(v))
	}
	p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	p(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", left+pw/2, top+ph+40, xLabel)
	p(`<text transform="translate(22 %d) rotate(-90)" text-anchor="middle">delivery latency (ms)</text>`+"\n", top+ph/2)
	p(`<text transform="translate(%d %d) rotate(90)" text-anchor="middle" fill="#2a7d2a">%s</text>`+"\n", width-22, top+ph/2, html.EscapeString(rightLabel))

	series := []struct {
		name, color string
		val         func(*Report) float64
		y           func(float64) float64
	}{
		{"p50 latency", "#1f5fbf", func(r *Report) float64 { return r.P50Ms }, yl},
		{"p99 latency", "#c0392b", func(r *Report) float64 { return r.P99Ms }, yl},
		{rightName, "#2a7d2a", rightOf, yr},
	}
	for i, s := range series {
		pts := make([]string, len(reps))
		for j, r := range reps {
			pts[j] = fmt.Sprintf("%.1f,%.1f", x(xOf(r)), s.y(s.val(r)))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		for _, pt := range pts {
			xy := strings.SplitN(pt, ",", 2)
			p(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], s.color)
		}
		// The legend runs along the bottom, clear of the data.
		lx, ly := left+i*150, height-8
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", lx, ly-4, lx+24, ly-4, s.color)
		p(`<text x="%d" y="%d">%s</text>`+"\n", lx+30, ly, html.EscapeString(s.name))
	}
	p("</svg>\n")
	return bw.Flush()
}

// sampleRSS reads the servers' resident memory: from /proc for the PIDs
// of --server-pid, or else from each server's /metrics. It reports !ok
// when any source does not answer.
func sampleRSS(ctx context.Context, cfg *config) rssSample {
	if len(cfg.serverPIDs) > 0 {
		var total int64
		for _, pid := range cfg.serverPIDs {
			b, err := procRSS(pid)
			if err != nil {
				return rssSample{}
			}
			total += b
		}
		return rssSample{bytes: total, ok: true, source: "proc"}
	}
	var total int64
	hc := &http.Client{Timeout: 3 * time.Second}
	for _, s := range cfg.servers {
		b, err := metricValue(ctx, hc, s, "process_resident_memory_bytes")
		if err != nil {
			return rssSample{}
		}
		total += int64(b)
	}
	return rssSample{bytes: total, ok: true, source: "metrics"}
}

// procRSS returns VmRSS of a process in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb * 1024, err
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// parseMetricsRSS reads process_resident_memory_bytes from /metrics text.
func parseMetricsRSS(r io.Reader) (int64, error) {
	v, err := parseMetric(r, "process_resident_memory_bytes")
	return int64(v), err
}
