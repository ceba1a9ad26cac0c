package api

import (
	"sync"
	"time"

	xrate "golang.org/x/time/rate"
)

// limiters are the per-identity token buckets.
type limiters struct {
	r     xrate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*xrate.Limiter
}

func newLimiters(perSecond float64, burst int) *limiters {
	return &limiters{r: xrate.Limit(perSecond), burst: burst, m: map[string]*xrate.Limiter{}}
}

// maxLimiters bounds the table; beyond it the idle ones are dropped.
const maxLimiters = 10000

// allow takes a token for key; when none is left, how long until one is.
func (l *limiters) allow(key string) (time.Duration, bool) {
	if l.r <= 0 {
		return 0, true
	}
	l.mu.Lock()
	lim := l.m[key]
	if lim == nil {
		if len(l.m) >= maxLimiters {
			for k, v := range l.m {
				if v.Tokens() >= float64(l.burst) {
					delete(l.m, k) // full bucket: forgetting it changes nothing
				}
			}
			if len(l.m) >= maxLimiters {
				clear(l.m)
			}
		}
		lim = xrate.NewLimiter(l.r, l.burst)
		l.m[key] = lim
	}
	l.mu.Unlock()
	now := time.Now()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}
