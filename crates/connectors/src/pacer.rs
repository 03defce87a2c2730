//! Client-side pacing: at most `n` requests per second from one client, spaced evenly, so a
//! sync stays under the provider's limit instead of finding it with 429s.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn per_second(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_to_the_rate() {
        let pacer = Pacer::per_second(25.0);
        let start = Instant::now();
        for _ in 0..51 {
            pacer.wait().await;
        }
        // 51 requests at 25/s: the first at once, the last 50 intervals (2 s) later.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
