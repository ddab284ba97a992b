package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuSample is the CPU time, in seconds, the measured processes had used
// at one moment: each --redis-addrs Redis, each server and this process.
// A source that did not answer is missing from it (ok false).
type cpuSample struct {
	at        time.Time
	redis     []float64 // per --redis-addrs entry
	redisRole []string  // "master", "slave", …, from INFO replication
	redisOK   bool
	server    []float64 // per --server-pid, or else per --servers
	serverOK  bool
	source    string // where server came from: "proc" or "metrics"
	own       float64
	ownOK     bool
}

// sampleCPU reads every CPU counter the run reports; it takes a few
// milliseconds per source.
func sampleCPU(ctx context.Context, cfg *config) *cpuSample {
	s := &cpuSample{at: time.Now()}
	s.own, s.ownOK = ownCPU()
	if len(cfg.redisAddrs) > 0 {
		s.redisOK = true
		for _, addr := range cfg.redisAddrs {
			sec, role, err := redisCPU(ctx, addr, cfg.redisPassword)
			if err != nil {
				s.redisOK = false
				break
			}
			s.redis, s.redisRole = append(s.redis, sec), append(s.redisRole, role)
		}
	}
	s.server, s.source, s.serverOK = serverCPU(ctx, cfg)
	return s
}

// serverCPU reads each server's CPU seconds: from /proc for the PIDs of
// --server-pid, or else process_cpu_seconds_total from each /metrics.
func serverCPU(ctx context.Context, cfg *config) ([]float64, string, bool) {
	var out []float64
	if len(cfg.serverPIDs) > 0 {
		for _, pid := range cfg.serverPIDs {
			sec, err := procCPU(pid)
			if err != nil {
				return nil, "", false
			}
			out = append(out, sec)
		}
		return out, "proc", true
	}
	hc := &http.Client{Timeout: 3 * time.Second}
	for _, srv := range cfg.servers {
		v, err := metricValue(ctx, hc, srv, "process_cpu_seconds_total")
		if err != nil {
			return nil, "", false
		}
		out = append(out, v)
	}
	return out, "metrics", true
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100 on
// every Linux architecture Go runs on.
const userHZ = 100

// procCPU returns the user plus system CPU seconds of a process, from
// /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat returns utime + stime, in seconds, of a /proc/PID/stat
// line. The command name, field 2, is in parentheses and may hold spaces
// and parentheses itself, so the fields are counted from the last ')'.
func parseProcStat(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 { // state is field 3; utime and stime are 14 and 15
		return 0, fmt.Errorf("stat: %d fields after the command name", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q, stime %q", f[11], f[12])
	}
	return float64(utime+stime) / userHZ, nil
}

// redisCPU returns used_cpu_user + used_cpu_sys of the Redis at addr and
// its role, over a connection of its own in plain RESP.
func redisCPU(ctx context.Context, addr, password string) (seconds float64, role string, err error) {
	info, err := redisInfo(ctx, addr, password, "cpu", "replication")
	if err != nil {
		return 0, "", err
	}
	user, err1 := strconv.ParseFloat(info["used_cpu_user"], 64)
	sys, err2 := strconv.ParseFloat(info["used_cpu_sys"], 64)
	if err1 != nil || err2 != nil {
		return 0, "", fmt.Errorf("redis %s: INFO cpu has no used_cpu_user and used_cpu_sys", addr)
	}
	return user + sys, info["role"], nil
}

// redisInfo sends INFO for each section (after AUTH, with a password) and
// returns the fields of the replies.
func redisInfo(ctx context.Context, addr, password string, sections ...string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var req []byte
	if password != "" {
		req = appendCommand(req, "AUTH", password)
	}
	for _, s := range sections {
		req = appendCommand(req, "INFO", s)
	}
	if _, err := conn.Write(req); err != nil {
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	br := bufio.NewReader(conn)
	if password != "" {
		if _, err := readReply(br); err != nil {
			return nil, fmt.Errorf("redis %s: AUTH: %w", addr, err)
		}
	}
	info := make(map[string]string)
	for _, s := range sections {
		text, err := readReply(br)
		if err != nil {
			return nil, fmt.Errorf("redis %s: INFO %s: %w", addr, s, err)
		}
		for _, line := range strings.Split(text, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
				info[k] = v
			}
		}
	}
	return info, nil
}

// appendCommand appends a RESP command: an array of bulk strings.
func appendCommand(dst []byte, args ...string) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, "\r\n"...)
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, "\r\n"...)
		dst = append(dst, a...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// maxReply bounds a bulk reply readReply accepts; INFO is a few KiB.
const maxReply = 1 << 20

// readReply reads one RESP reply that is a simple string, an integer or a
// bulk string and returns its text; an error reply is returned as an error.
func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		switch {
		case err != nil || n > maxReply:
			return "", fmt.Errorf("bad bulk length %q", line)
		case n < 0:
			return "", errors.New("nil reply")
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// metricValue reads one unlabelled sample from a server's /metrics.
func metricValue(ctx context.Context, hc *http.Client, server, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	return parseMetric(resp.Body, name)
}

// parseMetric returns the value of the first sample of the metric name in
// Prometheus text format.
func parseMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		return strconv.ParseFloat(f[0], 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s", name)
}

// RedisCPU is one Redis's CPU time over the measured window.
type RedisCPU struct {
	Addr    string  `json:"addr"`
	Role    string  `json:"role,omitempty"`
	Seconds float64 `json:"cpu_s"`
	Share   float64 `json:"share"` // of all the listed addresses' CPU time
}

// fillCPU derives the report's CPU figures from the samples at the start
// and the end of the measured window; generator is this process's and its
// workers' CPU seconds in the window, or NaN if unknown.
func (r *Report) fillCPU(cfg *config, begin, end *cpuSample, generator float64) {
	if begin == nil || end == nil {
		return
	}
	window := end.at.Sub(begin.at).Seconds()
	if window <= 0 {
		return
	}
	r.WindowS = round3(window)
	per1000 := func(sec float64, n int64) float64 {
		if n <= 0 {
			return 0
		}
		return round3(sec * 1e3 / (float64(n) / 1e3)) // ms per 1,000
	}
	if begin.redisOK && end.redisOK && len(begin.redis) == len(end.redis) {
		used := make([]float64, len(end.redis))
		var total float64
		for i := range end.redis {
			used[i] = math.Max(0, end.redis[i]-begin.redis[i])
			total += used[i]
		}
		for i, d := range used {
			c := RedisCPU{Addr: cfg.redisAddrs[i], Role: end.redisRole[i], Seconds: round3(d)}
			if total > 0 {
				c.Share = round3(d / total)
			}
			r.RedisCPU = append(r.RedisCPU, c)
		}
		r.RedisCPUS = round3(total)
		r.RedisCPUMsPer1000 = per1000(total, r.Deliveries)
	}
	if begin.serverOK && end.serverOK && len(begin.server) == len(end.server) && begin.source == end.source {
		var total float64
		for i := range end.server {
			d := math.Max(0, end.server[i]-begin.server[i])
			total += d
			r.ServerCPU = append(r.ServerCPU, round3(d))
		}
		r.ServerCPUS, r.ServerCPUSource = round3(total), end.source
		r.ServerCPUMsPer1000 = per1000(total, r.Deliveries)
	}
	if !math.IsNaN(generator) {
		r.GeneratorCPUS = round3(generator)
		r.GeneratorCores = round3(generator / window)
		r.GeneratorCPUMsPer1000 = per1000(generator, r.Acked+r.EventsAcked+r.EventsNoop)
		if others := r.RedisCPUS + r.ServerCPUS; others > 0 && generator > 0 {
			r.GeneratorShare = round3(generator / (generator + others))
		}
	}
}

func round3(v float64) float64 { return math.Round(v*1e3) / 1e3 }
