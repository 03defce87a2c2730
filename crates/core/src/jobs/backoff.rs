//! Retry delays: exponential with jitter, or what the provider asked for.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// The delay before attempt `attempt + 1`, after `attempt` failures (1-based). Jitter (a
/// uniform pick in `[cap/2, cap]`, "equal jitter") keeps retries of many runs from arriving together while
/// still growing. A provider's `Retry-After` wins when it asks for longer.
pub fn backoff_delay(
    policy: Backoff,
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut fastrand::Rng,
) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let cap = policy
        .base
        .saturating_mul(1u32 << exp.min(20))
        .min(policy.max);
    let half = cap / 2;
    let jittered = half + Duration::from_millis(rng.u64(0..=half.as_millis() as u64));
    match retry_after {
        Some(wait) if wait > jittered => wait,
        _ => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Backoff = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };

    #[test]
    fn grows_exponentially_within_jitter_and_stops_at_the_cap() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (attempt, cap) in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (12, 60)] {
            for _ in 0..50 {
                let d = backoff_delay(P, attempt, None, &mut rng);
                let cap = Duration::from_secs(cap);
                assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let mut rng = fastrand::Rng::with_seed(7);
        let d = backoff_delay(P, 1, Some(Duration::from_secs(30)), &mut rng);
        assert_eq!(d, Duration::from_secs(30));
        let d = backoff_delay(P, 6, Some(Duration::from_secs(1)), &mut rng);
        assert!(d >= Duration::from_secs(30));
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut rng = fastrand::Rng::with_seed(1);
        let picks: std::collections::HashSet<_> = (0..20)
            .map(|_| backoff_delay(P, 4, None, &mut rng))
            .collect();
        assert!(picks.len() > 10);
    }
}
