package main

import (
	"bufio"
	"context"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redstream/chat/store/storetest"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// A command name with spaces and parentheses, utime 250 and stime 125 ticks.
	stat := "4242 (chat d) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 125 0 0 20 0 12 0 99 1000 200 18446744073709551615\n"
	if sec, err := parseProcStat(stat); err != nil || sec != 3.75 {
		t.Fatalf("parseProcStat = %v, %v; want 3.75 s", sec, err)
	}
	for _, bad := range []string{"", "4242 chatd S 1", "4242 (chatd) S 1 2 3", "1 (c) S 1 1 1 0 -1 0 0 0 0 0 x 1 0"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

// TestProcCPU reads this process's CPU time from /proc and compares it
// with getrusage.
func TestProcCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/PID/stat is Linux's")
	}
	t.Parallel()
	deadline := time.Now().Add(300 * time.Millisecond)
	for x := 0.0; time.Now().Before(deadline); x++ {
		_ = math.Sqrt(x)
	}
	proc, err := procCPU(os.Getpid())
	own, ok := ownCPU()
	if err != nil || !ok {
		t.Fatalf("procCPU: %v, ownCPU ok %v", err, ok)
	}
	if proc < 0.2 || math.Abs(proc-own) > 0.1 {
		t.Fatalf("/proc says %.3f s, getrusage %.3f s, after 0.3 s of spinning", proc, own)
	}
}

func TestParseMetric(t *testing.T) {
	t.Parallel()
	text := "# HELP process_cpu_seconds_total x\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total_extra 9\nprocess_cpu_seconds_total 12.5\n"
	if v, err := parseMetric(strings.NewReader(text), "process_cpu_seconds_total"); err != nil || v != 12.5 {
		t.Fatalf("parseMetric = %v, %v", v, err)
	}
	if _, err := parseMetric(strings.NewReader("go_goroutines 3\n"), "process_cpu_seconds_total"); err == nil {
		t.Fatal("a missing metric was found")
	}
}

// fakeRedis answers AUTH and INFO the way Redis does, for one connection,
// and sends the commands it read on cmds.
func fakeRedis(tb testing.TB, password string, cmds chan<- []string) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				authed := password == ""
				for {
					args, err := readCommand(br)
					if err != nil {
						return
					}
					cmds <- args
					switch {
					case strings.EqualFold(args[0], "AUTH") && args[len(args)-1] == password:
						authed = true
						c.Write([]byte("+OK\r\n"))
					case strings.EqualFold(args[0], "AUTH"):
						c.Write([]byte("-WRONGPASS invalid username-password pair or user is disabled.\r\n"))
					case !authed:
						c.Write([]byte("-NOAUTH Authentication required.\r\n"))
					case args[1] == "cpu":
						body := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.000000\r\n"
						c.Write(appendBulk(nil, body))
					case args[1] == "replication":
						c.Write(appendBulk(nil, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"))
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func appendBulk(dst []byte, s string) []byte {
	return append(append(dst, "$"+strconv.Itoa(len(s))+"\r\n"...), s+"\r\n"...)
}

// readCommand reads one RESP array of bulk strings.
func readCommand(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "*") {
		return nil, err
	}
	var args []string
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, err
	}
	for range n {
		if _, err := br.ReadString('\n'); err != nil { // $len
			return nil, err
		}
		v, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		args = append(args, strings.TrimSuffix(v, "\r\n"))
	}
	return args, nil
}

func TestRedisCPUFake(t *testing.T) {
	t.Parallel()
	cmds := make(chan []string, 16)
	addr := fakeRedis(t, "s3cret", cmds)
	ctx := context.Background()
	sec, role, err := redisCPU(ctx, addr, "s3cret")
	if err != nil || sec != 3.75 || role != "master" {
		t.Fatalf("redisCPU = %v, %q, %v; want 3.75 s (user + sys, not the children), master", sec, role, err)
	}
	if got := <-cmds; len(got) != 2 || got[0] != "AUTH" || got[1] != "s3cret" {
		t.Fatalf("first command %q, want AUTH s3cret", got)
	}
	if _, _, err := redisCPU(ctx, addr, "wrong"); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, _, err := redisCPU(ctx, addr, ""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("no password: %v", err)
	}
	if _, _, err := redisCPU(ctx, "127.0.0.1:1", ""); err == nil {
		t.Fatal("a closed port answered")
	}
}

// TestRedisCPUReal samples a real redis-server, with and without a
// password, and sees its CPU time grow under work.
func TestRedisCPUReal(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	srv.RequireReal(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	before, role, err := redisCPU(ctx, srv.Addr, "")
	if err != nil || role != "master" {
		t.Fatalf("redisCPU: %v, role %q", err, role)
	}
	for range 3 {
		pipe := rdb.Pipeline()
		for i := range 20000 {
			pipe.Set(ctx, "k"+strconv.Itoa(i), i, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.ConfigSet(ctx, "requirepass", "pw-for-the-test").Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := redisCPU(ctx, srv.Addr, ""); err == nil {
		t.Fatal("INFO without the password answered")
	}
	after, _, err := redisCPU(ctx, srv.Addr, "pw-for-the-test")
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("CPU time %v s before 60,000 SETs, %v s after", before, after)
	}
}

func TestFillCPU(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	cfg := &config{redisAddrs: []string{"a:1", "b:2", "c:3"}}
	begin := &cpuSample{at: t0, redis: []float64{10, 20, 30}, redisRole: []string{"master", "master", "slave"}, redisOK: true,
		server: []float64{1, 2}, serverOK: true, source: "metrics", own: 7, ownOK: true}
	end := &cpuSample{at: t0.Add(4 * time.Second), redis: []float64{13, 21, 30}, redisRole: []string{"master", "master", "slave"}, redisOK: true,
		server: []float64{3, 5}, serverOK: true, source: "metrics", own: 9, ownOK: true}
	r := &Report{Deliveries: 200_000, Acked: 100_000}
	r.fillCPU(cfg, begin, end, 2)
	if r.WindowS != 4 || r.RedisCPUS != 4 || r.RedisCPUMsPer1000 != 20 || len(r.RedisCPU) != 3 {
		t.Fatalf("window %v s, Redis %v s, %v ms per 1,000, %d addresses", r.WindowS, r.RedisCPUS, r.RedisCPUMsPer1000, len(r.RedisCPU))
	}
	if a := r.RedisCPU[0]; a.Addr != "a:1" || a.Role != "master" || a.Seconds != 3 || a.Share != 0.75 {
		t.Fatalf("first address %+v, want a:1 master 3 s, 75%%", a)
	}
	if r.ServerCPUS != 5 || len(r.ServerCPU) != 2 || r.ServerCPU[1] != 3 || r.ServerCPUMsPer1000 != 25 || r.ServerCPUSource != "metrics" {
		t.Fatalf("server CPU %v s %v, %v ms per 1,000, from %s", r.ServerCPUS, r.ServerCPU, r.ServerCPUMsPer1000, r.ServerCPUSource)
	}
	if r.GeneratorCPUS != 2 || r.GeneratorCores != 0.5 || r.GeneratorCPUMsPer1000 != 20 || r.GeneratorShare != 0.182 {
		t.Fatalf("generator %v s, %v cores, %v ms per 1,000 acked, share %v (want 2 of 2+5+4 s)",
			r.GeneratorCPUS, r.GeneratorCores, r.GeneratorCPUMsPer1000, r.GeneratorShare)
	}
	// A source that did not answer at one end is left out, not guessed.
	r = &Report{Deliveries: 10}
	end.redisOK = false
	r.fillCPU(cfg, begin, end, math.NaN())
	if r.RedisCPU != nil || r.RedisCPUS != 0 || r.GeneratorCPUS != 0 || r.ServerCPUS != 5 {
		t.Fatalf("with Redis unanswered and no generator figure: %+v", r)
	}
}
