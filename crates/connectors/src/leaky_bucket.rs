//! Shopify's REST rate limit seen from the client: a bucket of `size` calls leaking `leak` per
//! second, mirrored locally so the sync waits *before* a call would overflow it instead of
//! finding the limit with 429s. Every answer's `X-Shopify-Shop-Api-Call-Limit: used/size`
//! corrects the estimate (another worker of ours may be calling the same shop), and a 429
//! fills it.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
struct State {
    used: f64,
    size: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct LeakyBucket {
    leak: f64,
    state: Mutex<State>,
}

impl LeakyBucket {
    pub fn new(size: u32, leak_per_second: f64) -> Self {
        let leak = if leak_per_second.is_finite() && leak_per_second > 0.0 {
            leak_per_second
        } else {
            2.0
        };
        LeakyBucket {
            leak,
            state: Mutex::new(State {
                used: 0.0,
                size: f64::from(size.max(1)),
                at: Instant::now(),
            }),
        }
    }

    fn drain(&self, s: &mut State, now: Instant) {
        s.used = (s.used - now.duration_since(s.at).as_secs_f64() * self.leak).max(0.0);
        s.at = now;
    }

    /// Waits until one more call fits, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                self.drain(&mut s, Instant::now());
                if s.used + 1.0 <= s.size {
                    s.used += 1.0;
                    return;
                }
                Duration::from_secs_f64((s.used + 1.0 - s.size) / self.leak)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes in the shop's own count from `X-Shopify-Shop-Api-Call-Limit` (`used/size`). Our
    /// count includes calls still in flight, so the larger of the two is kept.
    pub async fn observe(&self, header: &str) {
        let Some((used, size)) = header.split_once('/') else {
            return;
        };
        let (Ok(used), Ok(size)) = (used.trim().parse::<f64>(), size.trim().parse::<f64>()) else {
            return;
        };
        let mut s = self.state.lock().await;
        self.drain(&mut s, Instant::now());
        if size >= 1.0 {
            s.size = size;
        }
        s.used = s.used.max(used);
    }

    /// A 429: the bucket is full, whatever we thought.
    pub async fn overflowed(&self) {
        let mut s = self.state.lock().await;
        self.drain(&mut s, Instant::now());
        s.used = s.size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_is_used_at_once_then_calls_follow_the_leak() {
        let bucket = LeakyBucket::new(40, 2.0);
        let start = Instant::now();
        for _ in 0..40 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Ten more at 2 per second: five seconds.
        for _ in 0..10 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_shops_count_and_a_429_correct_the_estimate() {
        let bucket = LeakyBucket::new(40, 2.0);
        bucket.observe("39/40").await;
        let start = Instant::now();
        bucket.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        bucket.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        bucket.overflowed().await;
        let again = Instant::now();
        bucket.acquire().await;
        assert_eq!(again.elapsed(), Duration::from_millis(500));
        // A Plus shop's header enlarges the bucket.
        bucket.observe("1/400").await;
        let plus = Instant::now();
        for _ in 0..300 {
            bucket.acquire().await;
        }
        assert_eq!(plus.elapsed(), Duration::ZERO);
    }
}
