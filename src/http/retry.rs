//! The retry schedule of one HTTP send (http-legacy §7): jittered exponential backoff from
//! the [`RetryPolicy`], `Retry-After` as a floor, bounded by attempts and the deadline. A
//! `Retry-After` longer than the policy would ever wait by itself (the larger of its two
//! backoff caps) ends the retries: the caller gets the failure instead of a send that sleeps
//! for hours.

use std::time::Duration;

use tokio::time::Instant;

use crate::backoff;
use crate::config::RetryPolicy;

/// Attempts made so far for one request (or one multicast chunk).
pub(crate) struct Schedule<'a> {
    policy: &'a RetryPolicy,
    failures: u32,
    started: Instant,
}

impl<'a> Schedule<'a> {
    pub fn new(policy: &'a RetryPolicy) -> Self {
        Schedule {
            policy,
            failures: 0,
            started: Instant::now(),
        }
    }

    /// Records a retryable failure. Returns how long to wait before the next attempt, or
    /// `None` when the attempts are used up, the server asks for a longer wait than the
    /// policy's longest backoff, or the wait would pass the deadline.
    pub fn next_delay(&mut self, floor: Option<Duration>) -> Option<Duration> {
        self.failures += 1;
        if self.failures >= self.policy.max_attempts {
            return None;
        }
        let backoff = backoff::jittered(
            self.policy.initial_backoff,
            self.policy.max_backoff,
            self.failures,
        );
        let floor = floor.unwrap_or(Duration::ZERO);
        if floor
            > self
                .policy
                .max_backoff
                .max(self.policy.max_rate_limit_backoff)
        {
            return None;
        }
        let delay = backoff.max(floor);
        match self.policy.deadline {
            // Saturating: `Retry-After` is the server's to choose, up to u64::MAX seconds.
            Some(deadline) if self.started.elapsed().saturating_add(delay) > deadline => None,
            _ => Some(delay),
        }
    }

    /// Attempts made, counting the one that just failed.
    pub fn attempts(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn backs_off_until_attempts_run_out() {
        let p = policy(4);
        let mut s = Schedule::new(&p);
        for n in 0..3u32 {
            let d = s.next_delay(None).expect("attempts left");
            let base = Duration::from_secs(1 << n);
            assert!(d >= base / 2 && d < base * 3 / 2, "{n}: {d:?}");
        }
        assert_eq!(s.next_delay(None), None);
        assert_eq!(s.attempts(), 4);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = policy(5);
        let mut s = Schedule::new(&p);
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        let d = s.next_delay(Some(Duration::from_millis(1))).unwrap();
        assert!(d >= Duration::from_secs(1), "{d:?}");
    }

    #[test]
    fn a_wait_past_the_deadline_gives_up() {
        let p = RetryPolicy {
            deadline: Some(Duration::from_secs(10)),
            ..policy(5)
        };
        let mut s = Schedule::new(&p);
        assert_eq!(s.next_delay(Some(Duration::from_secs(60))), None);
    }

    #[test]
    fn a_huge_retry_after_gives_up_at_the_deadline_without_overflowing() {
        let p = RetryPolicy {
            deadline: Some(Duration::from_secs(10)),
            ..policy(5)
        };
        let mut s = Schedule::new(&p);
        assert_eq!(s.next_delay(Some(Duration::from_secs(u64::MAX))), None);
        assert_eq!(s.next_delay(Some(Duration::MAX)), None);
    }

    #[test]
    fn one_attempt_means_no_retry() {
        let p = policy(1);
        assert_eq!(Schedule::new(&p).next_delay(None), None);
    }

    #[test]
    fn a_retry_after_beyond_the_longest_backoff_gives_up_without_a_deadline() {
        let p = RetryPolicy {
            max_rate_limit_backoff: Duration::from_secs(300),
            ..policy(5)
        };
        let mut s = Schedule::new(&p);
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(300))),
            Some(Duration::from_secs(300))
        );
        assert_eq!(s.next_delay(Some(Duration::from_secs(301))), None);
        assert_eq!(s.next_delay(Some(Duration::MAX)), None);
    }
}
