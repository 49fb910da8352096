//! When a binding runs next: the interval with jitter, retry backoff, and the no-hot-loop rule.
//!
//! Pure logic: every function takes the current time (a `tokio::time::Instant`, the loop's
//! clock) and, where jitter applies, a random number in `[0, 1)` drawn by the caller, so the
//! tests drive it with an explicit clock.
//!
//! # Rules
//! - After a success the next run is one `interval` later, jittered by ±`jitter` (a fraction), so
//!   that replicas and bindings spread out.
//! - After a failure the next run is `retry_interval · 2^(n-1)` later (also jittered), where `n`
//!   counts consecutive failures **on the same input**, capped at `interval`
//!   (or at `retry_interval` if that is larger). A success resets `n`.
//! - The input is the config digest and the source digest. A failure on an input different from
//!   the previous failing one starts the backoff over (`n = 1`): new data is not punished for
//!   the old data's failure, while the same failing input is retried ever less often, never in a
//!   hot loop.
//! - A change of the config or a manual request makes the binding due at once, whatever its
//!   backoff (a new config is new input; a manual request is an operator's decision).

use std::time::Duration;

use tokio::time::Instant;

/// Timing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Time between runs of a healthy binding.
    pub interval: Duration,
    /// First wait after a failure.
    pub retry_interval: Duration,
    /// Spread of every wait, as a fraction (`0.1` is ±10 %); clamped to `[0, 0.5]`.
    pub jitter: f64,
}

impl Policy {
    /// `base` spread by ±`jitter`, with `unit` a random number in `[0, 1)`.
    #[must_use]
    pub fn jittered(&self, base: Duration, unit: f64) -> Duration {
        let spread = self.jitter.clamp(0.0, 0.5);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        base.mul_f64(1.0 + spread * (2.0 * unit - 1.0))
    }

    /// The unjittered wait after `failures` consecutive failures on one input (`failures ≥ 1`).
    #[must_use]
    pub fn backoff(&self, failures: u32) -> Duration {
        let cap = self.interval.max(self.retry_interval);
        let doublings = failures.saturating_sub(1).min(31);
        self.retry_interval
            .checked_mul(1u32 << doublings)
            .unwrap_or(cap)
            .min(cap)
    }
}

/// What a run read: the config it used and the source data it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// SHA-256 of the config file.
    pub config_digest: String,
    /// The reconciler's digest of the source data, when it knows one.
    pub source_digest: Option<String>,
}

impl Input {
    /// Whether two failing inputs are known to be the same. An unknown source digest counts as
    /// the same data (nothing says it changed), so it cannot defeat the backoff.
    fn same_as(&self, other: &Self) -> bool {
        self.config_digest == other.config_digest
            && match (&self.source_digest, &other.source_digest) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// One binding's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    next: Option<Instant>,
    failures: u32,
    failed_input: Option<Input>,
}

impl Schedule {
    /// A schedule that is due at `now`.
    #[must_use]
    pub fn due_at(now: Instant) -> Self {
        Self {
            next: Some(now),
            failures: 0,
            failed_input: None,
        }
    }

    /// A schedule with no run planned (a suspended binding, or `--once` after its run).
    #[must_use]
    pub fn idle() -> Self {
        Self {
            next: None,
            failures: 0,
            failed_input: None,
        }
    }

    /// When the next run is planned.
    #[must_use]
    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Whether a run is due at `now`.
    #[must_use]
    pub fn is_due(&self, now: Instant) -> bool {
        self.next.is_some_and(|next| next <= now)
    }

    /// Consecutive failures on the current failing input.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether `input` is known to differ from the input of the current failures (`false` when
    /// the binding is not failing, or when nothing says the data changed).
    #[must_use]
    pub fn is_new_input(&self, input: &Input) -> bool {
        self.failures > 0
            && self
                .failed_input
                .as_ref()
                .is_some_and(|failed| !failed.same_as(input))
    }

    /// Run at `now` (config change, manual request, start), whatever the backoff says.
    pub fn run_now(&mut self, now: Instant) {
        self.next = Some(now);
    }

    /// Plan nothing (suspended; `--once` done).
    pub fn clear(&mut self) {
        self.next = None;
    }

    /// A run succeeded at `now`: reset the backoff; next run one jittered interval later.
    /// Returns the wait.
    pub fn succeeded(&mut self, now: Instant, policy: &Policy, unit: f64) -> Duration {
        self.failures = 0;
        self.failed_input = None;
        let wait = policy.jittered(policy.interval, unit);
        self.next = Some(now + wait);
        wait
    }

    /// A run was skipped at `now` because another process holds the lease until `until`: no
    /// backoff; look again at `until` (just after the holder's lease would lapse), or one
    /// jittered interval later if that is sooner. Returns the wait.
    pub fn held(&mut self, now: Instant, until: Instant, policy: &Policy, unit: f64) -> Duration {
        let wait = self
            .succeeded(now, policy, unit)
            .min(until.saturating_duration_since(now));
        self.next = Some(now + wait);
        wait
    }

    /// A run failed at `now` on `input`: back off (further if the input is the one that failed
    /// before, from the start if it is new). Returns the wait.
    pub fn failed(&mut self, now: Instant, policy: &Policy, input: Input, unit: f64) -> Duration {
        let same = self
            .failed_input
            .as_ref()
            .is_some_and(|previous| previous.same_as(&input));
        self.failures = if same {
            self.failures.saturating_add(1)
        } else {
            1
        };
        self.failed_input = Some(input);
        let wait = policy.jittered(policy.backoff(self.failures), unit);
        self.next = Some(now + wait);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn policy() -> Policy {
        Policy {
            interval: 15 * MIN,
            retry_interval: Duration::from_secs(30),
            jitter: 0.0,
        }
    }

    fn input(config: &str, source: Option<&str>) -> Input {
        Input {
            config_digest: config.to_owned(),
            source_digest: source.map(str::to_owned),
        }
    }

    #[test]
    fn backoff_doubles_from_retry_interval_up_to_the_interval() {
        let p = policy();
        let waits: Vec<u64> = (1..=8).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(p.backoff(u32::MAX), 15 * MIN, "no overflow");
    }

    #[test]
    fn retry_interval_longer_than_interval_is_the_cap() {
        let p = Policy {
            interval: Duration::from_secs(10),
            retry_interval: Duration::from_secs(40),
            jitter: 0.0,
        };
        assert_eq!(p.backoff(1), Duration::from_secs(40));
        assert_eq!(p.backoff(5), Duration::from_secs(40));
    }

    #[test]
    fn jitter_spreads_both_ways_and_is_clamped() {
        let p = Policy {
            jitter: 0.1,
            ..policy()
        };
        let base = Duration::from_secs(100);
        assert_eq!(p.jittered(base, 0.0), Duration::from_secs(90));
        assert_eq!(p.jittered(base, 0.5), Duration::from_secs(100));
        assert_eq!(p.jittered(base, 1.0), Duration::from_secs(110));
        assert_eq!(p.jittered(base, f64::NAN), base);
        let wild = Policy {
            jitter: 7.0,
            ..policy()
        };
        assert_eq!(wild.jittered(base, 0.0), Duration::from_secs(50));
    }

    #[test]
    fn same_failing_input_backs_off_further_and_success_resets() {
        let p = policy();
        let mut clock = Instant::now();
        let mut s = Schedule::due_at(clock);
        assert!(s.is_due(clock));
        let same = input("c1", Some("s1"));
        let mut waits = Vec::new();
        for _ in 0..4 {
            let wait = s.failed(clock, &p, same.clone(), 0.5);
            waits.push(wait.as_secs());
            assert!(!s.is_due(clock), "not retried at once");
            clock += wait - Duration::from_millis(1);
            assert!(!s.is_due(clock), "not before the backoff");
            clock += Duration::from_millis(1);
            assert!(s.is_due(clock));
        }
        assert_eq!(waits, [30, 60, 120, 240]);
        assert_eq!(s.failures(), 4);

        let wait = s.succeeded(clock, &p, 0.5);
        assert_eq!(wait, 15 * MIN);
        assert_eq!(s.failures(), 0);
        assert!(!s.is_due(clock + 15 * MIN - Duration::from_millis(1)));
        assert!(s.is_due(clock + 15 * MIN));
        let wait = s.failed(clock, &p, same, 0.5);
        assert_eq!(wait.as_secs(), 30, "backoff starts over after a success");
    }

    #[test]
    fn new_source_data_restarts_the_backoff() {
        let p = policy();
        let mut s = Schedule::due_at(Instant::now());
        for _ in 0..3 {
            s.failed(Instant::now(), &p, input("c1", Some("s1")), 0.5);
        }
        assert_eq!(s.failures(), 3);
        let wait = s.failed(Instant::now(), &p, input("c1", Some("s2")), 0.5);
        assert_eq!((s.failures(), wait.as_secs()), (1, 30));
        let wait = s.failed(Instant::now(), &p, input("c2", Some("s2")), 0.5);
        assert_eq!(
            (s.failures(), wait.as_secs()),
            (1, 30),
            "a new config is new input"
        );
    }

    #[test]
    fn unknown_source_digest_cannot_defeat_the_backoff() {
        let p = policy();
        let mut s = Schedule::due_at(Instant::now());
        s.failed(Instant::now(), &p, input("c1", Some("s1")), 0.5);
        s.failed(Instant::now(), &p, input("c1", None), 0.5);
        let wait = s.failed(Instant::now(), &p, input("c1", None), 0.5);
        assert_eq!((s.failures(), wait.as_secs()), (3, 120));
    }

    #[test]
    fn only_known_different_data_is_new_input() {
        let p = policy();
        let clock = Instant::now();
        let mut s = Schedule::due_at(clock);
        assert!(!s.is_new_input(&input("c1", Some("s2"))), "not failing");
        s.failed(clock, &p, input("c1", Some("s1")), 0.5);
        assert!(!s.is_new_input(&input("c1", Some("s1"))));
        assert!(!s.is_new_input(&input("c1", None)));
        assert!(s.is_new_input(&input("c1", Some("s2"))));
        assert!(s.is_new_input(&input("c2", Some("s1"))));
        s.succeeded(clock, &p, 0.5);
        assert!(!s.is_new_input(&input("c1", Some("s2"))));
    }

    #[test]
    fn run_now_overrides_the_backoff_and_clear_plans_nothing() {
        let p = policy();
        let clock = Instant::now();
        let mut s = Schedule::due_at(clock);
        s.failed(clock, &p, input("c1", None), 0.5);
        assert!(!s.is_due(clock));
        s.run_now(clock);
        assert!(s.is_due(clock));
        s.clear();
        assert!(!s.is_due(clock + 24 * 60 * MIN));
        assert_eq!(s.next(), None);
        assert_eq!(Schedule::idle().next(), None);
    }
}
