package latency

import (
	"slices"
	"time"
)

// Quantile is the q-th sample of ds in order (nearest rank: the smallest
// sample at or above a fraction q of them), 0 for no samples. ds is not
// reordered.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Millis is d in milliseconds, for benchmark metrics and tables.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
