//! Rate limits: a token bucket (GCRA, the `governor` crate) per caller, and a ceiling
//! per key over all of its callers.
//!
//! Who a caller is (see [`Bucket`]): a `self` key's member (key and member), an
//! anonymous or `submit` caller's client address (key and address), else the key.
//! A key shared by many callers (`self` in every member's browser, `submit` in a
//! public page) thus gives each of them its own bucket, and the key as a whole its
//! ceiling, which is set above one caller's rate.
//!
//! Memory: buckets that have refilled are indistinguishable from new ones and are
//! forgotten ([`RateLimiter::housekeeping`], every few thousand checks and whenever
//! more than [`MAX_CALLERS`] are remembered), so what is remembered is the callers of
//! the last few seconds, not every caller ever seen.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

/// Checks between two sweeps of refilled buckets.
const SWEEP_EVERY: u64 = 4_096;

/// Remembered callers beyond which a check sweeps refilled buckets at once.
pub const MAX_CALLERS: usize = 100_000;

/// Governor's keyed limiter over a concurrent map, with the clock `C`.
type Keyed<C> = governor::RateLimiter<
    Arc<str>,
    DashMapStateStore<Arc<str>>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// A token bucket per caller, forgotten once it has refilled.
pub struct RateLimiter<C: Clock + Clone = DefaultClock> {
    buckets: Keyed<C>,
    clock: C,
    checks: AtomicU64,
}

impl RateLimiter<DefaultClock> {
    /// `per_minute` sustained (at least 1), `burst` at once (at least 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// Like [`RateLimiter::new`] with the clock given (tests use a fake one).
    pub fn with_clock(per_minute: u32, burst: u32, clock: C) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        RateLimiter {
            buckets: governor::RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one token from `caller`'s bucket, or says how long until one is there.
    pub fn check(&self, caller: &Arc<str>) -> Result<(), Duration> {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if (n + 1).is_multiple_of(SWEEP_EVERY) || (n.is_multiple_of(64) && self.len() > MAX_CALLERS)
        {
            self.housekeeping();
        }
        self.buckets
            .check_key(caller)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets the buckets that have refilled (they are the same as new ones).
    pub fn housekeeping(&self) {
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }

    /// Callers remembered now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no caller is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The bucket a request is counted in: its key, and who behind that key it comes
/// from when the key is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The key's name (`anonymous` without a key, `jwt:<sub>` for a token).
    pub key: Arc<str>,
    /// The caller's own bucket: the key itself, `<key>#<member>` for a `self` key,
    /// `<key>@<address>` for an anonymous or `submit` caller.
    pub caller: Arc<str>,
}

impl Bucket {
    /// Whether the key is shared by several callers (each with its own bucket).
    pub fn shared(&self) -> bool {
        self.caller != self.key
    }
}

/// The rate limits of `/graphql`: one bucket per caller and, for keys shared by
/// several callers, a ceiling per key. [`RateLimits::decide`] is the one place the
/// guard asks; another backend (a limit shared between gateway processes) adds its
/// check there.
pub struct RateLimits<C: Clock + Clone = DefaultClock> {
    callers: RateLimiter<C>,
    keys: RateLimiter<C>,
}

impl RateLimits<DefaultClock> {
    /// `per_minute`/`burst` per caller; `key_per_minute` (burst scaled alike) per
    /// shared key.
    pub fn new(per_minute: u32, burst: u32, key_per_minute: u32) -> Self {
        Self::with_clock(per_minute, burst, key_per_minute, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Like [`RateLimits::new`] with the clock given.
    pub fn with_clock(per_minute: u32, burst: u32, key_per_minute: u32, clock: C) -> Self {
        let key_burst = u64::from(burst) * u64::from(key_per_minute) / u64::from(per_minute.max(1));
        RateLimits {
            callers: RateLimiter::with_clock(per_minute, burst, clock.clone()),
            keys: RateLimiter::with_clock(
                key_per_minute,
                u32::try_from(key_burst).unwrap_or(u32::MAX).max(burst),
                clock,
            ),
        }
    }

    /// Whether a request in `bucket` may go now: `Err(wait)` when the caller's bucket
    /// or its key's ceiling is empty.
    pub fn decide(&self, bucket: &Bucket) -> Result<(), Duration> {
        self.callers.check(&bucket.caller)?;
        if bucket.shared() {
            self.keys.check(&bucket.key)?;
        }
        Ok(())
    }

    /// Callers remembered now (their buckets have not refilled yet).
    pub fn callers_remembered(&self) -> usize {
        self.callers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn bucket(key: &str, caller: &str) -> Bucket {
        Bucket {
            key: key.into(),
            caller: caller.into(),
        }
    }

    #[test]
    fn token_bucket_runs_dry_and_refills() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(60, 2, clock.clone());
        let k: Arc<str> = "web".into();
        assert!(l.check(&k).is_ok());
        assert!(l.check(&k).is_ok());
        let wait = l.check(&k).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another key has its own bucket.
        assert!(l.check(&"other".into()).is_ok());
        clock.advance(Duration::from_millis(1001));
        assert!(l.check(&k).is_ok());
        assert!(l.check(&k).is_err());
    }

    #[test]
    fn callers_of_a_shared_key_have_their_own_buckets_under_a_ceiling() {
        let clock = FakeRelativeClock::default();
        // 2 a minute per caller (burst 2), 6 a minute for the key (burst 6).
        let l = RateLimits::with_clock(2, 2, 6, clock.clone());
        let m1 = bucket("member", "member#1");
        let m2 = bucket("member", "member#2");
        assert!(l.decide(&m1).is_ok());
        assert!(l.decide(&m1).is_ok());
        assert!(l.decide(&m1).is_err(), "one member's bucket is empty");
        assert!(l.decide(&m2).is_ok(), "another member is not refused");
        assert!(l.decide(&m2).is_ok());
        let (m3, m4) = (bucket("member", "member#3"), bucket("member", "member#4"));
        assert!(l.decide(&m3).is_ok());
        assert!(l.decide(&m3).is_ok());
        // Six went through for the key: its ceiling holds for a new member too.
        assert!(l.decide(&m4).is_err(), "the key's ceiling");
        // A key of its own (not shared) is its caller's bucket only.
        let web = bucket("web", "web");
        assert!(l.decide(&web).is_ok());
        assert!(l.decide(&web).is_ok());
        assert!(l.decide(&web).is_err());
    }

    #[test]
    fn a_million_distinct_callers_leave_only_the_recent_ones_remembered() {
        // A million callers, one request each, 10,000 new ones a (fake) second: at 600
        // a minute a bucket refills 100 ms after one request and is forgotten at the
        // next sweep (every 4,096 checks), so a few thousand are remembered at any
        // time, not a million.
        let clock = FakeRelativeClock::default();
        let l = RateLimits::with_clock(600, 100, 12_000, clock.clone());
        let mut peak = 0;
        for i in 0..1_000_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let caller: Arc<str> = format!("anonymous@{ip}").into();
            let b = Bucket {
                key: "anonymous".into(),
                caller,
            };
            // The key's ceiling (12,000 a minute = 200 a second) refuses most of them;
            // each caller's own bucket is still taken from first.
            let _ = l.decide(&b);
            clock.advance(Duration::from_micros(100));
            if i % 1_000 == 0 {
                peak = peak.max(l.callers_remembered());
            }
        }
        assert!(peak <= 2_000 + SWEEP_EVERY as usize, "peak {peak}");
        assert!(peak >= 500, "the test did not exercise the limiter: {peak}");
    }
}
