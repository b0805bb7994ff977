package benchclient

import (
	"math"
	"slices"
)

// Summary is the statistics of one metric, in milliseconds.
type Summary struct {
	Mean, Median, Std float64
	Percentiles       map[float64]float64
}

// summarize computes numpy's mean, median, std (population) and percentile (linear
// interpolation) of values given in seconds, in milliseconds; all zero when empty.
func summarize(seconds []float64, percentiles []float64) Summary {
	s := Summary{Percentiles: map[float64]float64{}}
	if len(seconds) == 0 {
		for _, p := range percentiles {
			s.Percentiles[p] = 0
		}
		return s
	}
	v := make([]float64, len(seconds))
	for i, x := range seconds {
		v[i] = x * 1000
	}
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += x
	}
	s.Mean = sum / float64(len(v))
	var sq float64
	for _, x := range v {
		sq += (x - s.Mean) * (x - s.Mean)
	}
	s.Std = math.Sqrt(sq / float64(len(v)))
	s.Median = percentile(v, 50)
	for _, p := range percentiles {
		s.Percentiles[p] = percentile(v, p)
	}
	return s
}

// percentile of sorted values, numpy's default ("linear") method.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	rank := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	if hi >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (sorted[hi]-sorted[lo])*(rank-float64(lo))
}
