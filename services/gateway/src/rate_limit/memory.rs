//! The in-process backend: one governor keyed limiter per tier. Buckets that have filled back
//! up are indistinguishable from new ones, so [`MemoryLimiter::evict_idle`] (run every minute
//! by the gateway) drops them: memory follows the callers of the last minute, not every caller
//! ever seen.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, FakeRelativeClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::{Budgets, Decision, Tier};

type Keyed<C> = RateLimiter<String, DashMapStateStore<String>, C, StateInformationMiddleware>;

pub struct MemoryLimiter<C: Clock = DefaultClock> {
    clock: C,
    budgets: Budgets,
    auth: Keyed<C>,
    write: Keyed<C>,
    read: Keyed<C>,
}

impl MemoryLimiter<DefaultClock> {
    pub fn new(budgets: Budgets) -> Self {
        Self::with_clock(budgets, DefaultClock::default())
    }
}

impl MemoryLimiter<FakeRelativeClock> {
    /// A limiter on a clock the caller moves (tests).
    pub fn manual(budgets: Budgets) -> (Self, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (Self::with_clock(budgets, clock.clone()), clock)
    }
}

impl<C: Clock + Clone> MemoryLimiter<C> {
    fn with_clock(budgets: Budgets, clock: C) -> Self {
        let keyed = |tier: Tier| {
            let per_minute = NonZeroU32::new(budgets.of(tier)).unwrap_or(NonZeroU32::MIN);
            RateLimiter::dashmap_with_clock(Quota::per_minute(per_minute), clock.clone())
                .with_middleware::<StateInformationMiddleware>()
        };
        MemoryLimiter {
            auth: keyed(Tier::Auth),
            write: keyed(Tier::Write),
            read: keyed(Tier::Read),
            clock,
            budgets,
        }
    }

    fn of(&self, tier: Tier) -> &Keyed<C> {
        match tier {
            Tier::Auth => &self.auth,
            Tier::Write => &self.write,
            Tier::Read => &self.read,
        }
    }

    pub fn check(&self, tier: Tier, key: &str) -> Decision {
        let limit = self.budgets.of(tier);
        let interval = Duration::from_secs(60) / limit;
        match self.of(tier).check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset: interval * (limit - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    // One interval brings one request back; the rest follow at the same pace.
                    reset: wait + interval * (limit - 1),
                    retry_after: wait,
                }
            }
        }
    }

    pub fn evict_idle(&self) {
        for limiter in [&self.auth, &self.write, &self.read] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Buckets held now, over all tiers.
    pub fn len(&self) -> usize {
        self.auth.len() + self.write.len() + self.read.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> Budgets {
        Budgets {
            auth: 5,
            write: 30,
            read: 100,
        }
    }

    #[test]
    fn the_sixth_login_in_a_minute_waits_and_the_headers_count_down() {
        let (limiter, clock) = MemoryLimiter::manual(budgets());
        let remaining: Vec<u32> = (0..5)
            .map(|_| limiter.check(Tier::Auth, "ip:203.0.113.9"))
            .inspect(|d| assert!(d.allowed))
            .map(|d| d.remaining)
            .collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        let refused = limiter.check(Tier::Auth, "ip:203.0.113.9");
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(12));
        // Another address has its own budget.
        assert!(limiter.check(Tier::Auth, "ip:198.51.100.7").allowed);
        // One interval later, one more.
        clock.advance(Duration::from_secs(12));
        assert!(limiter.check(Tier::Auth, "ip:203.0.113.9").allowed);
        assert!(!limiter.check(Tier::Auth, "ip:203.0.113.9").allowed);
    }

    #[test]
    fn memory_stays_bounded_after_a_hundred_thousand_callers() {
        let (limiter, clock) = MemoryLimiter::manual(budgets());
        for n in 0..100_000 {
            assert!(limiter.check(Tier::Read, &format!("ip:{n}")).allowed);
        }
        assert_eq!(limiter.len(), 100_000);
        // One request of 100 a minute comes back after 0.6 s; governor keeps a bucket one more
        // interval after it is whole. Before that every bucket is kept...
        clock.advance(Duration::from_millis(300));
        limiter.evict_idle();
        assert_eq!(limiter.len(), 100_000);
        // ...after it, all go.
        clock.advance(Duration::from_millis(1_000));
        limiter.evict_idle();
        assert_eq!(limiter.len(), 0);
        // The callers still active stay.
        limiter.check(Tier::Read, "ip:still-here");
        limiter.evict_idle();
        assert_eq!(limiter.len(), 1);
    }
}
