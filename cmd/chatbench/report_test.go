package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sampleReports() []*Report {
	var reps []*Report
	for i, n := range []int{1000, 5000, 10000} {
		h := &Hist{}
		for v := range int64(1000) {
			h.Record(v * int64(i+1) * 10)
		}
		r := &Report{Run: "x<&>", Servers: []string{"http://a"}, Clients: n, Rooms: n / 10, RoomSize: 100, DurationS: 10}
		r.RSSBase = rssSample{bytes: 50 << 20, ok: true, source: "proc"}
		r.RSSEnd = rssSample{bytes: int64(50<<20 + n*20_000), ok: true, source: "proc"}
		res := &Result{Connected: n, Deliveries: int64(n * 100), Acked: int64(n), Latency: h, AckLatency: h}
		if i == 2 { // the last step edits and reacts too
			r.Events = 0.1
			res.EventsSent, res.EditsAcked, res.ReactionsAcked, res.EventsNoop = 1000, 500, 499, 1
			res.EventDeliveries, res.EventsExpected, res.EventsMissing = 99_800, 99_900, 100
			res.EventLatency, res.EventAckLatency = h, h
		}
		r.fill(res)
		if i > 0 { // the first step measured no CPU
			t0 := time.Unix(1000, 0)
			begin := &cpuSample{at: t0, redis: []float64{1, 2}, redisRole: []string{"master", "master"}, redisOK: true,
				server: []float64{3}, serverOK: true, source: "proc", own: 4, ownOK: true}
			end := &cpuSample{at: t0.Add(10 * time.Second), redis: []float64{3, 5}, redisRole: []string{"master", "master"}, redisOK: true,
				server: []float64{8}, serverOK: true, source: "proc", own: 5, ownOK: true}
			r.fillCPU(&config{redisAddrs: []string{"a:1", "b:2"}}, begin, end, 1)
		}
		reps = append(reps, r)
	}
	return reps
}

func TestSVGWellFormed(t *testing.T) {
	t.Parallel()
	for i, reps := range [][]*Report{sampleReports(), sampleReports()[:1], {{}}, sampleReports(), sampleReports()[:1], {{}}} {
		var buf bytes.Buffer
		byRooms := i >= 3
		if err := writeSVG(&buf, reps, `title with <tags> & "quotes"`, byRooms); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{false: "deliveries/s", true: "Redis CPU"}[byRooms && len(reps) > 1]; !strings.Contains(buf.String(), ">"+want+"<") {
			t.Fatalf("byRooms %v: no %q series:\n%s", byRooms, want, buf.String())
		}
		d := xml.NewDecoder(&buf)
		var root string
		elems := map[string]int{}
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if root == "" {
					root = se.Name.Local
					if se.Name.Space != "http://www.w3.org/2000/svg" {
						t.Fatalf("root namespace %q", se.Name.Space)
					}
				}
				elems[se.Name.Local]++
				for _, a := range se.Attr {
					if strings.Contains(a.Value, "NaN") || strings.Contains(a.Value, "Inf") {
						t.Fatalf("<%s %s=%q>", se.Name.Local, a.Name.Local, a.Value)
					}
				}
			}
		}
		if root != "svg" {
			t.Fatalf("root element %q", root)
		}
		if elems["polyline"] != 3 || elems["circle"] != 3*len(reps) {
			t.Fatalf("%d polylines and %d circles for %d points", elems["polyline"], elems["circle"], len(reps))
		}
	}
}

func TestCSVWellFormed(t *testing.T) {
	t.Parallel()
	reps := sampleReports()
	var buf bytes.Buffer
	if err := writeCSV(&buf, reps); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(reps)+1 {
		t.Fatalf("%d rows, want %d", len(rows), len(reps)+1)
	}
	for i, row := range rows {
		if len(row) != len(csvHeader) {
			t.Fatalf("row %d has %d fields, want %d", i, len(row), len(csvHeader))
		}
		if i == 0 {
			continue
		}
		for j, f := range row {
			if f == "" && i == 1 && strings.Contains(csvHeader[j], "cpu") {
				continue // the first step measured no CPU: empty, not 0
			}
			if f == "" && i < 3 && strings.HasPrefix(csvHeader[j], "event_p") {
				continue // the first steps sent no events
			}
			if _, err := strconv.ParseFloat(f, 64); err != nil {
				t.Fatalf("row %d column %s: %q is not a number", i, csvHeader[j], f)
			}
		}
		if i == 2 && row[slices.Index(csvHeader, "redis_cpu_ms_per_1000_deliveries")] != "10" {
			t.Fatalf("row 2: Redis CPU per 1,000 deliveries %s, want 10 ms (5 s for 500,000)", row[slices.Index(csvHeader, "redis_cpu_ms_per_1000_deliveries")])
		}
		if i == 3 && (row[slices.Index(csvHeader, "events_acked")] != "999" || row[slices.Index(csvHeader, "events_missing")] != "100") {
			t.Fatalf("row 3: events acked %s, missing %s; want 999, 100", row[slices.Index(csvHeader, "events_acked")], row[slices.Index(csvHeader, "events_missing")])
		}
		if row[0] != strconv.Itoa(reps[i-1].Clients) {
			t.Fatalf("row %d clients %s", i, row[0])
		}
	}
}

func TestReportOutputs(t *testing.T) {
	t.Parallel()
	r := sampleReports()[1]
	if r.ServerRSSPerConnBytes != 20_000 {
		t.Fatalf("RSS per connection %v, want 20000", r.ServerRSSPerConnBytes)
	}
	var buf bytes.Buffer
	if err := r.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Fatal("JSON result is not one line")
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"deliveries", "deliveries_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
		"ack_p50_ms", "ack_p99_ms", "sent", "acked", "skipped", "lost", "dups", "reorders", "disconnects", "server_rss_per_conn_bytes",
		"rooms_per_client", "redis_cpu", "redis_cpu_ms_per_1000_deliveries", "server_cpu_s_each", "generator_cpu_ms_per_1000_acked", "generator_cpu_share"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %s", k)
		}
	}
	buf.Reset()
	if err := r.writeTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"latency ms", "p99.9", "server RSS", "19.5 KiB per connection",
		"redis CPU", "5.000 s in 10.0 s (0.50 cores), 10 ms per 1,000 deliveries: a:1 master 2.000 s (40%), b:2 master 3.000 s (60%)",
		"server CPU", "5.000 s (0.50 cores), 10 ms per 1,000 deliveries; each 5.000 s (from proc)",
		"chatbench CPU", "1.000 s (0.10 cores), 200 ms per 1,000 acked sends; 9% of the CPU measured (chatbench, servers, Redis)"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}
}

// TestReportEvents checks the event figures of a run with --events: in
// the JSON line, in the table, and that missing events fail the run.
func TestReportEvents(t *testing.T) {
	t.Parallel()
	r := sampleReports()[2]
	if r.EventsAcked != 999 || r.EventDeliveriesPerS != 9980 || !r.failed() {
		t.Fatalf("events acked %d, %v deliveries/s, failed %v; want 999, 9980, true", r.EventsAcked, r.EventDeliveriesPerS, r.failed())
	}
	var buf bytes.Buffer
	if err := r.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"events": 0.1, "events_sent": 1000, "events_acked": 999, "edits_acked": 500,
		"reactions_acked": 499, "events_noop": 1, "event_deliveries": 99_800, "events_expected": 99_900, "events_missing": 100,
		"event_deliveries_per_s": 9980, "event_p50_ms": r.P50Ms, "event_p99_ms": r.P99Ms, "event_ack_p99_ms": r.AckP99Ms} {
		if m[k] != want {
			t.Errorf("JSON %s = %v, want %v", k, m[k], want)
		}
	}
	buf.Reset()
	if err := r.writeTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"0.1 of the slots: sent 1000  acked 999 (500 edits, 499 reactions)  unchanged 1  rejected 0  unacked 0",
		"99800 (9980.0/s) of 99900 expected; missing 100 (stayed connected), 0 (reconnected); dups 0  reorders 0",
		"event ms", "event ack ms",
	} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}
	// Without --events neither the JSON line nor the table mention them.
	r = sampleReports()[1]
	buf.Reset()
	_ = r.writeJSON(&buf)
	_ = r.writeTable(&buf)
	if strings.Contains(buf.String(), "event") {
		t.Fatalf("a run without events reports them:\n%s", buf.String())
	}
}

func TestParseRSS(t *testing.T) {
	t.Parallel()
	status := "Name:\tchatd\nVmPeak:\t  9999 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	if b, err := parseVmRSS(strings.NewReader(status)); err != nil || b != 12345*1024 {
		t.Fatalf("parseVmRSS = %d, %v", b, err)
	}
	metrics := "# HELP process_resident_memory_bytes Resident memory size in bytes.\n" +
		"# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_total 1\n" +
		"process_resident_memory_bytes 2.4576e+07\n"
	if b, err := parseMetricsRSS(strings.NewReader(metrics)); err != nil || b != 24576000 {
		t.Fatalf("parseMetricsRSS = %d, %v", b, err)
	}
	if _, err := parseMetricsRSS(strings.NewReader("go_goroutines 3\n")); err == nil {
		t.Fatal("missing metric accepted")
	}
}

func TestNiceTicks(t *testing.T) {
	t.Parallel()
	for _, hi := range []float64{0, 0.7, 1, 9.3, 47, 1000, 12345} {
		ts := niceTicks(hi, 5)
		if ts[0] != 0 || ts[len(ts)-1] < hi || len(ts) > 12 {
			t.Errorf("niceTicks(%g) = %v", hi, ts)
		}
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	var errBuf bytes.Buffer
	cfg, err := parseFlags([]string{"--servers", "http://a:1/,https://b", "--source-addrs", "127.0.0.1-127.0.0.3,10.0.0.9",
		"--server-pid", "12,13", "--sweep", "10,20", "--user-prefix", "Bench_"}, &errBuf)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.servers) != 2 || cfg.servers[0] != "http://a:1" || len(cfg.sourceAddrs) != 4 ||
		cfg.sourceAddrs[2].String() != "127.0.0.3" || len(cfg.serverPIDs) != 2 || len(cfg.sweep) != 2 || cfg.userPrefix != "bench_" {
		t.Fatalf("parsed %+v", cfg)
	}
	for _, args := range [][]string{
		{"--servers", "ftp://x"},
		{"--clients", "0"},
		{"--source-addrs", "127.0.0.9-127.0.0.1"},
		{"--user-prefix", "has space"},
		{"--password", "short"},
		{"--rate", "-1"},
		{"--events", "-0.1"},
		{"--events", "1"},
		{"--events", "NaN"},
		{"extra"},
		{"--nope"},
	} {
		_, err := parseFlags(args, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
	c := &config{clients: 5, rooms: 2, roomSize: 6, rate: 10}
	if err := c.resolve(); err == nil {
		t.Error("room size above clients accepted")
	}
	c = &config{clients: 100, rooms: 4, roomSize: 10, rate: 200}
	if err := c.resolve(); err != nil || c.senders != 20 {
		t.Errorf("auto senders = %d, %v; want 20", c.senders, err)
	}
}
