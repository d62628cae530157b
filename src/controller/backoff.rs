//! How long a failed reconcile waits before the next try: exponential in the failures in a row,
//! with jitter, so that N objects failing for one cause (the API server restarting, a webhook
//! down) neither retry in synchronised waves nor hammer the API server every few seconds. The
//! count of failures in a row is kept per object in memory: it only paces retries, and a
//! restart that forgets it merely retries sooner once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use super::cached::CachedSafeDeployment;

/// The wait after the first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between tries.
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// The wait after a write conflict (a decision taken on a stale cache): not a failure, the
/// watch is about to deliver the newer object.
pub const CONFLICT_RETRY: Duration = Duration::from_millis(500);

/// The wait before try `failures + 1` after `failures` failures in a row (at least 1), with
/// `jitter` in `[0, 1)`: between half and all of `FIRST_RETRY * 2^(failures-1)`, capped at
/// [`MAX_RETRY`].
pub fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let full = FIRST_RETRY.saturating_mul(1u32 << exponent).min(MAX_RETRY);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    full.mul_f64(0.5 + jitter / 2.0)
}

/// A random number in `[0, 1)` for jitter (not for anything secret).
pub fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// Failures in a row per SafeDeployment.
#[derive(Default)]
pub struct Failures(Mutex<HashMap<ObjectRef<CachedSafeDeployment>, u32>>);

impl Failures {
    /// Counts one more failure of `object` and returns the count.
    pub fn record(&self, object: ObjectRef<CachedSafeDeployment>) -> u32 {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = map.entry(object).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Forgets the failures of `object` after a reconcile that went through.
    pub fn forget(&self, object: &ObjectRef<CachedSafeDeployment>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_with_each_failure_up_to_the_cap() {
        let full: Vec<u64> = (1..=10).map(|n| retry_delay(n, 1.0).as_secs()).collect();
        // jitter 1.0 gives (almost) the full wait: 2, 4, 8 … capped at 300 s.
        assert_eq!(full, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(retry_delay(u32::MAX, 1.0), MAX_RETRY);
        assert_eq!(retry_delay(0, 1.0), FIRST_RETRY);
    }

    #[test]
    fn jitter_spreads_the_wait_between_half_and_all_of_it() {
        assert_eq!(retry_delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(3, 0.5), Duration::from_secs(6));
        assert_eq!(retry_delay(3, f64::NAN), Duration::from_secs(6));
        let waits: std::collections::BTreeSet<u128> = (0..50)
            .map(|_| retry_delay(5, jitter()).as_millis())
            .collect();
        assert!(waits.iter().all(|w| (16_000..=32_000).contains(w)));
        assert!(
            waits.len() > 10,
            "50 draws gave only {} distinct waits",
            waits.len()
        );
    }

    #[test]
    fn failures_are_counted_per_object_and_forgotten_after_success() {
        let failures = Failures::default();
        let a = ObjectRef::<CachedSafeDeployment>::new("a").within("ns");
        let b = ObjectRef::<CachedSafeDeployment>::new("b").within("ns");
        assert_eq!(failures.record(a.clone()), 1);
        assert_eq!(failures.record(a.clone()), 2);
        assert_eq!(failures.record(b.clone()), 1);
        failures.forget(&a);
        assert_eq!(failures.record(a), 1);
    }
}
