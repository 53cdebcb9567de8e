//! Exponential backoff with jitter (pure; the random factor is passed in for tests).

use std::time::Duration;

/// The delay before attempt `n + 1` after `n` failures: `initial × 2^(n-1)`, capped at `cap`,
/// then scaled by `jitter` (expected in `0.5..1.5`, as Google's reference client does) and
/// capped again.
pub fn delay(initial: Duration, cap: Duration, failures: u32, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(31);
    let base = initial.saturating_mul(1u32 << exp).min(cap);
    base.mul_f64(jitter.clamp(0.0, 2.0)).min(cap)
}

/// A jitter factor drawn uniformly from `0.5..1.5`.
pub fn jitter() -> f64 {
    rand::random_range(0.5..1.5)
}

/// [`delay`] with a random jitter.
pub fn jittered(initial: Duration, cap: Duration, failures: u32) -> Duration {
    delay(initial, cap, failures, jitter())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_from_initial_and_caps() {
        let cap = Duration::from_secs(60);
        let seq: Vec<u64> = (1..=9).map(|n| delay(S, cap, n, 1.0).as_secs()).collect();
        assert_eq!(seq, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay(S, cap, 0, 1.0), S);
        assert_eq!(delay(S, cap, u32::MAX, 1.0), cap);
    }

    #[test]
    fn jitter_scales_within_half_to_one_and_a_half() {
        let cap = Duration::from_secs(60);
        assert_eq!(delay(S * 4, cap, 1, 0.5), S * 2);
        assert_eq!(delay(S * 4, cap, 1, 1.5), S * 6);
        assert_eq!(delay(S * 50, cap, 1, 1.5), cap);
        for _ in 0..1000 {
            let d = jittered(S * 2, cap, 1);
            assert!(d >= S && d < S * 3, "{d:?}");
        }
    }
}
