package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// exactQuantile is the value of rank ceil(q*n) in sorted vs, the same
// definition Hist.Quantile approximates.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func within(got, want int64, rel float64) bool {
	if want == 0 {
		return got == 0
	}
	return math.Abs(float64(got-want))/float64(want) <= rel
}

func TestBuckets(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, v := range []int64{0, 1, 127, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<20 + 12345, 1 << 37, 1<<38 - 1} {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d, below the previous %d", v, i, prev)
		}
		prev = i
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if lo >= histLinear && float64(hi-lo+1)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d", i, lo, hi, histSub)
		}
	}
	if got := bucketOf(-5); got != 0 {
		t.Fatalf("bucketOf(-5) = %d", got)
	}
	if got := bucketOf(math.MaxInt64); got != histBuckets-1 {
		t.Fatalf("bucketOf(max) = %d, want the last bucket", got)
	}
	// Every bucket's range follows the previous one without a gap.
	for i := 1; i < histBuckets; i++ {
		_, hi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != hi+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, hi)
		}
	}
}

func TestQuantiles(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		gen  func() int64
	}{
		{"uniform 0-100ms", func() int64 { return r.Int64N(100_000) }},
		{"exponential mean 2ms", func() int64 { return int64(r.ExpFloat64() * 2000) }},
		{"lognormal", func() int64 { return int64(math.Exp(r.NormFloat64()*1.5 + 8)) }},
		{"constant 1234us", func() int64 { return 1234 }},
		{"small integers", func() int64 { return r.Int64N(200) }},
		{"bimodal", func() int64 {
			if r.IntN(100) < 95 {
				return 500 + r.Int64N(100)
			}
			return 2_000_000 + r.Int64N(1_000_000)
		}},
	}
	for _, d := range dists {
		vs := make([]int64, 200_000)
		var h Hist
		for i := range vs {
			vs[i] = d.gen()
			h.Record(vs[i])
		}
		slices.Sort(vs)
		for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999} {
			want := exactQuantile(vs, q)
			if got := h.Quantile(q); !within(got, want, 0.01) {
				t.Errorf("%s: q%.4f = %d, exact %d (more than 1%% off)", d.name, q, got, want)
			}
		}
		if h.Max() != vs[len(vs)-1] || h.Min() != vs[0] || h.Count() != uint64(len(vs)) {
			t.Errorf("%s: min/max/count %d/%d/%d, want %d/%d/%d", d.name, h.Min(), h.Max(), h.Count(), vs[0], vs[len(vs)-1], len(vs))
		}
		var sum float64
		for _, v := range vs {
			sum += float64(v)
		}
		if mean := sum / float64(len(vs)); math.Abs(h.Mean()-mean) > 1e-6*mean+1e-9 {
			t.Errorf("%s: mean %f, want %f", d.name, h.Mean(), mean)
		}
	}
}

func TestEmpty(t *testing.T) {
	t.Parallel()
	var h Hist
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram reports values")
	}
	var a AtomicHist
	if s := a.Snapshot(); s.Count() != 0 || s.Quantile(0.99) != 0 {
		t.Fatal("empty atomic histogram reports values")
	}
}

func TestMergeAndJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	var all Hist
	parts := make([]*Hist, 4)
	var vs []int64
	for i := range parts {
		parts[i] = &Hist{}
		for range 10_000 {
			v := int64(r.ExpFloat64() * float64(1000*(i+1)))
			parts[i].Record(v)
			all.Record(v)
			vs = append(vs, v)
		}
	}
	// Merge through the JSON a worker would print.
	var merged Hist
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back Hist
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		merged.Merge(&back)
	}
	merged.Merge(nil)
	merged.Merge(&Hist{})
	slices.Sort(vs)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if merged.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%g: merged %d, direct %d", q, merged.Quantile(q), all.Quantile(q))
		}
		if want := exactQuantile(vs, q); !within(merged.Quantile(q), want, 0.01) {
			t.Errorf("q%g: merged %d, exact %d", q, merged.Quantile(q), want)
		}
	}
	if merged.Count() != all.Count() || merged.Max() != all.Max() || merged.Min() != all.Min() {
		t.Errorf("merged count/min/max %d/%d/%d, direct %d/%d/%d",
			merged.Count(), merged.Min(), merged.Max(), all.Count(), all.Min(), all.Max())
	}
	if math.Abs(merged.Mean()-all.Mean()) > 1e-9*all.Mean() {
		t.Errorf("merged mean %f, direct %f", merged.Mean(), all.Mean())
	}
}

func TestUnmarshalRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"unit":"ms","sub":128,"n":0,"b":[]}`,
		`{"unit":"us","sub":64,"n":0,"b":[]}`,
		`{"unit":"us","sub":128,"n":1,"b":[1]}`,
		`{"unit":"us","sub":128,"n":2,"b":[1,1]}`,
		`{"unit":"us","sub":128,"n":1,"b":[999999,1]}`,
	} {
		var h Hist
		if err := json.Unmarshal([]byte(in), &h); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

func TestAtomicHist(t *testing.T) {
	t.Parallel()
	var a AtomicHist
	var h Hist
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			local := Hist{}
			for range 20_000 {
				v := int64(r.ExpFloat64()*3000) + 7
				a.Record(v)
				local.Record(v)
			}
			mu.Lock()
			h.Merge(&local)
			mu.Unlock()
		})
	}
	wg.Wait()
	s := a.Snapshot()
	if s.Count() != h.Count() || s.Min() != h.Min() || s.Max() != h.Max() {
		t.Fatalf("snapshot count/min/max %d/%d/%d, want %d/%d/%d", s.Count(), s.Min(), s.Max(), h.Count(), h.Min(), h.Max())
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if s.Quantile(q) != h.Quantile(q) {
			t.Errorf("q%g: snapshot %d, want %d", q, s.Quantile(q), h.Quantile(q))
		}
	}
}
