//! The circuit breaker in front of ActionKit.
//!
//! When ActionKit keeps failing (5xx, timeouts, broken or refused connections), more
//! requests only add load to a struggling instance and make every client wait for its
//! own timeout. After `failure_threshold` *consecutive* unhealthy attempts the breaker
//! opens: for `open_for` no request is sent and callers get [`Error::CircuitOpen`]
//! at once. Then it lets exactly one probe through (half-open): a healthy answer closes
//! it, an unhealthy one opens it again for twice as long (capped at `max_open_for`).
//!
//! What counts: an attempt that got no answer (timeout, connect or transport error) or
//! a 5xx. What does not: 429 (a concurrency signal, handled by retries with backoff),
//! other 4xx (the request's fault, not the instance's) and malformed bodies (the
//! instance answered). Any other answer is healthy and resets the count. Consecutive
//! failures, not a rate, so that a partly faulty instance (some 500s among successes)
//! keeps being used with retries and normal operation never changes the calls sent.
//!
//! State is process-wide (one breaker per [`Client`](super::Client) and its clones)
//! and exported as the gauge `gateway_upstream_breaker_state` (0 closed, 1 open,
//! 2 half-open) with the counters `gateway_upstream_breaker_transitions_total{to}` and
//! `gateway_upstream_breaker_rejected_total`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The breaker's settings.
#[derive(Debug, Clone)]
pub struct BreakerPolicy {
    /// Consecutive unhealthy attempts that open the breaker; 0 disables it. Default 20.
    pub failure_threshold: u32,
    /// How long the breaker stays open the first time. Default 5 s.
    pub open_for: Duration,
    /// Longest open period (it doubles after each failed probe). Default 60 s.
    pub max_open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 20,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(60),
        }
    }
}

/// The breaker's state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }

    fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    /// While open: when a probe may go.
    open_until: Instant,
    /// The open period used last (doubles after a failed probe).
    open_for: Duration,
    /// While half-open: whether the one probe is out.
    probe_out: bool,
}

/// A circuit breaker (see the module docs).
#[derive(Debug)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
}

/// How an attempt went, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Healthy,
    Unhealthy,
    /// Says nothing about the instance (429, a deadline passed while waiting, ...).
    Neutral,
}

/// Leave to send one attempt. Report how it went with [`Ticket::record`]; dropping it
/// unrecorded (the caller gave up) frees a half-open probe slot without a verdict.
pub(crate) struct Ticket<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy) -> Breaker {
        metrics::gauge!("gateway_upstream_breaker_state").set(0.0);
        Breaker {
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                open_until: Instant::now(),
                open_for: policy.open_for,
                probe_out: false,
            }),
            policy,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state (an open breaker whose time is up reads as half-open).
    pub(crate) fn state(&self) -> BreakerState {
        let s = self.lock();
        if s.state == BreakerState::Open && Instant::now() >= s.open_until {
            BreakerState::HalfOpen
        } else {
            s.state
        }
    }

    /// Leave to send, or `None` while the breaker is open (or half-open with its probe
    /// already out).
    pub(crate) fn admit(&self) -> Option<Ticket<'_>> {
        if self.policy.failure_threshold == 0 {
            return Some(self.ticket(false));
        }
        let mut s = self.lock();
        match s.state {
            BreakerState::Closed => Some(self.ticket(false)),
            BreakerState::Open if Instant::now() < s.open_until => {
                drop(s);
                metrics::counter!("gateway_upstream_breaker_rejected_total").increment(1);
                None
            }
            BreakerState::Open | BreakerState::HalfOpen => {
                if s.probe_out {
                    drop(s);
                    metrics::counter!("gateway_upstream_breaker_rejected_total").increment(1);
                    return None;
                }
                if s.state == BreakerState::Open {
                    transition(&mut s, BreakerState::HalfOpen);
                }
                s.probe_out = true;
                Some(self.ticket(true))
            }
        }
    }

    fn ticket(&self, probe: bool) -> Ticket<'_> {
        Ticket {
            breaker: self,
            probe,
            recorded: false,
        }
    }

    fn record(&self, probe: bool, health: Health) {
        if self.policy.failure_threshold == 0 {
            return;
        }
        let mut s = self.lock();
        if probe {
            s.probe_out = false;
        }
        match health {
            Health::Neutral => {}
            Health::Healthy => {
                s.consecutive_failures = 0;
                if s.state != BreakerState::Closed {
                    s.open_for = self.policy.open_for;
                    transition(&mut s, BreakerState::Closed);
                    tracing::info!("ActionKit answers again; circuit breaker closed");
                }
            }
            Health::Unhealthy => {
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                match s.state {
                    BreakerState::Closed
                        if s.consecutive_failures >= self.policy.failure_threshold =>
                    {
                        s.open_for = self.policy.open_for;
                        s.open_until = Instant::now() + s.open_for;
                        transition(&mut s, BreakerState::Open);
                        tracing::warn!(
                            failures = s.consecutive_failures,
                            open_ms = s.open_for.as_millis() as u64,
                            "ActionKit keeps failing; circuit breaker open"
                        );
                    }
                    BreakerState::HalfOpen if probe => {
                        s.open_for = (s.open_for * 2).min(self.policy.max_open_for);
                        s.open_until = Instant::now() + s.open_for;
                        transition(&mut s, BreakerState::Open);
                        tracing::warn!(
                            open_ms = s.open_for.as_millis() as u64,
                            "ActionKit probe failed; circuit breaker open again"
                        );
                    }
                    _ => {}
                }
            }
        }
    }
}

fn transition(s: &mut Inner, to: BreakerState) {
    s.state = to;
    metrics::gauge!("gateway_upstream_breaker_state").set(to.gauge());
    metrics::counter!("gateway_upstream_breaker_transitions_total", "to" => to.label())
        .increment(1);
}

impl Ticket<'_> {
    pub(crate) fn record(mut self, health: Health) {
        self.recorded = true;
        self.breaker.record(self.probe, health);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.lock().probe_out = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, with margins of hundreds of milliseconds for a busy machine.
    fn breaker(threshold: u32, open_ms: u64) -> Breaker {
        Breaker::new(BreakerPolicy {
            failure_threshold: threshold,
            open_for: Duration::from_millis(open_ms),
            max_open_for: Duration::from_millis(open_ms * 2),
        })
    }

    fn fail(b: &Breaker, n: u32) {
        for _ in 0..n {
            b.admit().expect("admitted").record(Health::Unhealthy);
        }
    }

    fn sleep_ms(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    #[test]
    fn opens_after_consecutive_failures_probes_and_closes() {
        let b = breaker(3, 300);
        fail(&b, 2);
        b.admit().unwrap().record(Health::Healthy);
        fail(&b, 2);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "a success resets the count"
        );
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit().is_none());
        sleep_ms(350);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.admit().expect("one probe");
        assert!(b.admit().is_none(), "only one probe at a time");
        probe.record(Health::Healthy);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_some());
    }

    #[test]
    fn a_failed_probe_doubles_the_open_period_up_to_the_cap() {
        let b = breaker(1, 300);
        fail(&b, 1);
        sleep_ms(350);
        for open_ms in [600u64, 600] {
            b.admit().expect("probe").record(Health::Unhealthy);
            sleep_ms(350);
            assert!(b.admit().is_none(), "still open within {open_ms} ms");
            sleep_ms(open_ms - 300);
            assert_eq!(b.state(), BreakerState::HalfOpen, "after {open_ms} ms");
        }
    }

    #[test]
    fn an_abandoned_probe_frees_its_slot_and_neutral_outcomes_change_nothing() {
        let b = breaker(2, 100);
        fail(&b, 1);
        b.admit().unwrap().record(Health::Neutral);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        sleep_ms(150);
        drop(b.admit().expect("probe"));
        let p = b.admit().expect("the slot is free again");
        p.record(Health::Healthy);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_zero_threshold_disables_the_breaker() {
        let b = breaker(0, 1000);
        fail(&b, 100);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_some());
    }
}
