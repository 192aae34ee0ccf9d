package herokufake

import "time"

// limits describe a token bucket: capacity tokens, refilled at refill tokens
// per period.
type limits struct {
	capacity int64
	refill   int64
	per      time.Duration
}

// full is a full bucket's level in bucket units.
func (l limits) full() int64 { return l.capacity * int64(l.per) }

// bucket is a token bucket that refills continuously, like Heroku's GCRA.
// The level counts tokens times the period in nanoseconds, so refilling for
// any elapsed time is exact integer arithmetic with no drift and no ticker.
type bucket struct {
	level int64
	last  time.Time
}

func newBucket(l limits, now time.Time) *bucket {
	return &bucket{level: l.full(), last: now}
}

// fill adds what has refilled since the last call. A clock that goes back
// adds nothing.
func (b *bucket) fill(l limits, now time.Time) {
	elapsed := now.Sub(b.last)
	if elapsed <= 0 {
		return
	}
	b.last = now
	if int64(elapsed) >= l.full()/l.refill { // also keeps the product below from overflowing
		b.level = l.full()
		return
	}
	b.level = min(l.full(), b.level+int64(elapsed)*l.refill)
}

// take spends one token and reports whether there was one.
func (b *bucket) take(l limits, now time.Time) bool {
	b.fill(l, now)
	if b.level < int64(l.per) {
		return false
	}
	b.level -= int64(l.per)
	return true
}

// remaining is the number of whole tokens left.
func (b *bucket) remaining(l limits, now time.Time) int {
	b.fill(l, now)
	return int(b.level / int64(l.per))
}

// bucketKey names the bucket a call authenticated as owner draws on.
func (f *Fake) bucketKey(owner string) string {
	if f.set.perAddon {
		return owner
	}
	return ""
}

// take spends one token of the bucket key and reports whether there was one.
func (f *Fake) take(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bucket(key).take(f.set.limits, f.now())
}

// remaining is what RateLimit-Remaining says for the bucket key.
func (f *Fake) remaining(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bucket(key).remaining(f.set.limits, f.now())
}

// bucket returns the bucket key, creating it full. The caller holds f.mu.
func (f *Fake) bucket(key string) *bucket {
	b, ok := f.buckets[key]
	if !ok {
		b = newBucket(f.set.limits, f.now())
		f.buckets[key] = b
	}
	return b
}

// Remaining returns the tokens left in the account's bucket, or with
// WithPerAddonBuckets in the bucket of addonID (empty means the account).
func (f *Fake) Remaining(addonID string) int {
	return f.remaining(f.bucketKey(addonID))
}
