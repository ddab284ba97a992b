package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
)

// The histogram is log-linear in the manner of HdrHistogram: values below
// histLinear each have their own bucket, and every power of two above that
// is split into histSub equal buckets. A bucket is therefore at most 1/128
// of its lower bound wide, and reporting its midpoint is within 0.4% of any
// value it holds. Values are microseconds; histMaxShift covers 2^38 µs
// (about three days), and anything larger lands in the last bucket.
const (
	histSubBits  = 7
	histSub      = 1 << histSubBits // buckets per power of two
	histLinear   = 2 * histSub      // values recorded exactly
	histMaxShift = 30
	histBuckets  = histLinear + histMaxShift*histSub
)

// bucketOf returns the bucket index of v; negative values count as 0.
func bucketOf(v int64) int {
	if v < histLinear {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1) // v>>shift is in [histSub, 2*histSub)
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return histLinear + (shift-1)*histSub + int(v>>shift) - histSub
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < histLinear {
		return int64(i), int64(i)
	}
	k := i - histLinear
	shift := k/histSub + 1
	m := int64(k%histSub + histSub)
	lo = m << shift
	return lo, lo + 1<<shift - 1
}

// Hist is a mergeable latency histogram in microseconds with about 0.4%
// relative error. The zero value is an empty histogram ready to use. It is
// not safe for concurrent use; see AtomicHist.
type Hist struct {
	counts []uint64 // dense, only as long as the highest bucket used
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// Record adds one value.
func (h *Hist) Record(v int64) { h.RecordN(v, 1) }

// RecordN adds the value v n times.
func (h *Hist) RecordN(v int64, n uint64) {
	if n == 0 {
		return
	}
	if v < 0 {
		v = 0
	}
	i := bucketOf(v)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i] += n
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n += n
	h.sum += float64(v) * float64(n)
}

// Merge adds every value of o to h.
func (h *Hist) Merge(o *Hist) {
	if o == nil || o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]uint64, len(o.counts)-len(h.counts))...)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Max returns the largest value recorded, 0 when empty.
func (h *Hist) Max() int64 { return h.max }

// Min returns the smallest value recorded, 0 when empty.
func (h *Hist) Min() int64 { return h.min }

// Mean returns the average value, 0 when empty.
func (h *Hist) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value below or at which a fraction q of the values
// lie (q in [0, 1]); 0 when empty. The answer is the midpoint of the bucket
// that holds the value of that rank, clamped to the recorded min and max.
func (h *Hist) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	switch {
	case q <= 0:
		return h.min
	case q >= 1:
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// histJSON is the serialised form: B lists non-empty buckets as pairs of
// index and count, so a histogram of a narrow distribution stays small.
type histJSON struct {
	Unit string   `json:"unit"`
	Sub  int      `json:"sub"`
	N    uint64   `json:"n"`
	Sum  float64  `json:"sum"`
	Min  int64    `json:"min"`
	Max  int64    `json:"max"`
	B    []uint64 `json:"b"`
}

// MarshalJSON implements json.Marshaler.
func (h *Hist) MarshalJSON() ([]byte, error) {
	j := histJSON{Unit: "us", Sub: histSub, N: h.n, Sum: h.sum, Min: h.min, Max: h.max, B: []uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			j.B = append(j.B, uint64(i), c)
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler. It refuses a histogram of a
// different layout or with counts that do not add up.
func (h *Hist) UnmarshalJSON(p []byte) error {
	var j histJSON
	if err := json.Unmarshal(p, &j); err != nil {
		return err
	}
	if j.Unit != "us" || j.Sub != histSub {
		return fmt.Errorf("histogram: layout %s/%d, want us/%d", j.Unit, j.Sub, histSub)
	}
	if len(j.B)%2 != 0 {
		return errors.New("histogram: odd bucket list")
	}
	*h = Hist{}
	var n uint64
	for k := 0; k < len(j.B); k += 2 {
		i, c := j.B[k], j.B[k+1]
		if i >= histBuckets {
			return fmt.Errorf("histogram: bucket %d out of range", i)
		}
		if int(i) >= len(h.counts) {
			h.counts = append(h.counts, make([]uint64, int(i)+1-len(h.counts))...)
		}
		h.counts[i] += c
		n += c
	}
	if n != j.N {
		return fmt.Errorf("histogram: buckets hold %d values, header says %d", n, j.N)
	}
	h.n, h.sum, h.min, h.max = j.N, j.Sum, j.Min, j.Max
	return nil
}

// AtomicHist is a fixed-size histogram that many goroutines may record into
// at once without a lock; Snapshot turns it into a Hist. The zero value is
// ready to use. All methods are safe for concurrent use.
type AtomicHist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // microseconds; 2^64 µs is far beyond any run
	min    atomic.Int64  // stored as value+1 so that 0 means "unset"
	max    atomic.Int64
}

// Record adds one value.
func (a *AtomicHist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	a.counts[bucketOf(v)].Add(1)
	a.n.Add(1)
	a.sum.Add(uint64(v))
	for {
		m := a.min.Load()
		if m != 0 && m-1 <= v {
			break
		}
		if a.min.CompareAndSwap(m, v+1) {
			break
		}
	}
	for {
		m := a.max.Load()
		if m >= v {
			break
		}
		if a.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Snapshot returns a copy of what has been recorded so far. Values
// recorded while it runs may be partly included.
func (a *AtomicHist) Snapshot() *Hist {
	h := &Hist{}
	var n uint64
	last := -1
	for i := range a.counts {
		if a.counts[i].Load() != 0 {
			last = i
		}
	}
	h.counts = make([]uint64, last+1)
	for i := range h.counts {
		c := a.counts[i].Load()
		h.counts[i] = c
		n += c
	}
	h.n = n
	h.sum = float64(a.sum.Load())
	if m := a.min.Load(); m > 0 {
		h.min = m - 1
	}
	h.max = a.max.Load()
	return h
}
