//! The pure rules of the leader election (see the protocol in [`super`]): the timing derived
//! from the lease duration, the judgement of a Lease a candidate read (on its own monotonic
//! clock, never the wall clock), and the Lease specs an acquisition, a renewal and a release
//! write.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;

use super::{LeaderError, MIN_LEASE_DURATION};

/// The timing of an election, derived from the lease duration as client-go's defaults are
/// (15 s / 10 s / 2 s there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease is valid after its last renewal, for the *other* replicas.
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal the leader keeps acting
    /// (`2/3 × lease_duration`); past it the leader demotes itself.
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates look at the Lease (`lease_duration / 8`).
    pub retry_period: Duration,
}

impl Timing {
    /// The timing for a lease duration (whole seconds, at least [`MIN_LEASE_DURATION`]).
    pub fn for_lease_duration(lease_duration: Duration) -> Result<Timing, LeaderError> {
        if lease_duration < MIN_LEASE_DURATION
            || lease_duration.subsec_nanos() != 0
            || lease_duration.as_secs() > i32::MAX as u64
        {
            return Err(LeaderError::InvalidDuration(lease_duration));
        }
        Ok(Timing {
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: lease_duration / 8,
        })
    }

    /// `leaseDurationSeconds` as the Lease stores it.
    pub fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// `base` followed by `-` and 8 random hex characters: a holder identity unique to this process
/// (a restarted container gets a new one, so it never mistakes its predecessor's Lease for its
/// own).
pub fn unique_identity(base: &str) -> String {
    format!("{base}-{:08x}", random_u64() as u32)
}

fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// `period` plus up to 20 % (so candidates do not poll in lock step).
pub(super) fn jittered(period: Duration) -> Duration {
    let fraction = (random_u64() % 1000) as f64 / 1000.0;
    period + period.mul_f64(0.2 * fraction)
}

/// What a candidate has seen of the Lease: its resourceVersion and when (on the local monotonic
/// clock) that version was first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The Lease's `metadata.resourceVersion`.
    pub resource_version: String,
    /// When this process first saw that version.
    pub since: Instant,
}

/// What a candidate should do about the Lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Nobody holds it (or the holder released it): take it now.
    Free,
    /// The holder has not renewed for a whole lease duration: take it now.
    Expired {
        /// Who held it.
        holder: String,
    },
    /// Someone holds it; look again later.
    Held {
        /// Who holds it.
        holder: String,
        /// When it expires unless renewed (on the local monotonic clock).
        expires: Instant,
    },
}

/// Judges the Lease a candidate read at `now`, updating what it has observed. `default_duration`
/// applies to a Lease without `leaseDurationSeconds`. The expiry is counted from when this
/// process first saw the current resourceVersion, never from `renewTime` (no wall clocks).
pub fn judge(
    lease: &Lease,
    observed: &mut Option<Observed>,
    default_duration: Duration,
    now: Instant,
) -> Judgement {
    let resource_version = lease.resource_version().unwrap_or_default();
    let same = observed
        .as_ref()
        .is_some_and(|o| o.resource_version == resource_version);
    if !same {
        *observed = Some(Observed {
            resource_version,
            since: now,
        });
    }
    let since = observed.as_ref().map_or(now, |o| o.since);
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() {
        return Judgement::Free;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default_duration, Duration::from_secs);
    let expires = since + duration;
    if now >= expires {
        Judgement::Expired { holder }
    } else {
        Judgement::Held { holder, expires }
    }
}

/// The Lease spec after `identity` acquires it at `now` (from `previous`, `None` for a new
/// Lease).
pub fn acquired_spec(
    previous: Option<&LeaseSpec>,
    identity: &str,
    timing: &Timing,
    now: Timestamp,
) -> LeaseSpec {
    // As client-go counts: every acquisition of an existing Lease by another identity is a
    // transition, including the take-over of a released (holder-less) one; a new Lease starts
    // at 0.
    let changed_hands = previous.is_some_and(|p| p.holder_identity.as_deref() != Some(identity));
    let previous = previous.cloned().unwrap_or_default();
    let transitions = previous.lease_transitions.unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(timing.lease_duration_seconds()),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if changed_hands {
            transitions.saturating_add(1)
        } else {
            transitions
        }),
        ..previous
    }
}

/// The Lease spec after its holder renews it at `now`.
pub fn renewed_spec(previous: &LeaseSpec, timing: &Timing, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        renew_time: Some(MicroTime(now)),
        lease_duration_seconds: Some(timing.lease_duration_seconds()),
        ..previous.clone()
    }
}

/// The Lease spec after its holder releases it at `now`: no holder, so a candidate takes it at
/// once (client-go's release also shortens the duration to 1 s for older electors).
pub fn released_spec(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        acquire_time: None,
        ..previous.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn lease(rv: &str, holder: Option<&str>, seconds: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: seconds,
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn timing_follows_client_go_ratios_and_rejects_bad_durations() {
        let timing = Timing::for_lease_duration(Duration::from_secs(15)).expect("valid");
        assert_eq!(timing.renew_deadline, Duration::from_secs(10));
        assert_eq!(timing.retry_period, Duration::from_millis(1875));
        assert_eq!(timing.lease_duration_seconds(), 15);
        // The margin between the leader's deadline and the earliest take-over is a third.
        assert!(timing.lease_duration - timing.renew_deadline >= timing.lease_duration / 3);
        assert!(
            timing.retry_period * 4 < timing.renew_deadline,
            "several renewals fit"
        );
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_millis(2500),
        ] {
            assert!(matches!(
                Timing::for_lease_duration(bad),
                Err(LeaderError::InvalidDuration(_))
            ));
        }
    }

    #[test]
    fn a_lease_is_expired_only_after_a_whole_duration_without_a_new_version() {
        let t0 = Instant::now();
        let d = Duration::from_secs(10);
        let mut observed = None;
        let held = lease("1", Some("a"), Some(4));
        // First sight: held, expiring 4 s (the Lease's own duration) after it was seen.
        assert_eq!(
            judge(&held, &mut observed, d, t0),
            Judgement::Held {
                holder: "a".into(),
                expires: t0 + Duration::from_secs(4)
            }
        );
        // The same version 3 s later: still held.
        assert!(matches!(
            judge(&held, &mut observed, d, t0 + Duration::from_secs(3)),
            Judgement::Held { .. }
        ));
        // A renewal (new version) at 3.5 s restarts the count.
        let renewed = lease("2", Some("a"), Some(4));
        let at = t0 + Duration::from_millis(3500);
        assert_eq!(
            judge(&renewed, &mut observed, d, at),
            Judgement::Held {
                holder: "a".into(),
                expires: at + Duration::from_secs(4)
            }
        );
        assert!(matches!(
            judge(&renewed, &mut observed, d, t0 + Duration::from_millis(7499)),
            Judgement::Held { .. }
        ));
        assert_eq!(
            judge(&renewed, &mut observed, d, t0 + Duration::from_millis(7500)),
            Judgement::Expired { holder: "a".into() }
        );
    }

    #[test]
    fn a_lease_without_holder_is_free_and_a_missing_duration_uses_the_default() {
        let t0 = Instant::now();
        let mut observed = None;
        assert_eq!(
            judge(
                &lease("1", None, Some(15)),
                &mut observed,
                Duration::from_secs(2),
                t0
            ),
            Judgement::Free
        );
        assert_eq!(
            judge(
                &lease("1", Some(""), None),
                &mut observed,
                Duration::from_secs(2),
                t0
            ),
            Judgement::Free
        );
        let mut observed = None;
        assert_eq!(
            judge(
                &lease("5", Some("b"), None),
                &mut observed,
                Duration::from_secs(2),
                t0
            ),
            Judgement::Held {
                holder: "b".into(),
                expires: t0 + Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn acquiring_counts_transitions_and_renewing_keeps_the_holder() {
        let timing = Timing::for_lease_duration(Duration::from_secs(6)).expect("valid");
        let now = Timestamp::from_second(1_800_000_000).expect("timestamp");
        let previous = lease("1", Some("a"), Some(15)).spec.expect("spec");
        let taken = acquired_spec(Some(&previous), "b", &timing, now);
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.lease_duration_seconds, Some(6));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        // Releasing keeps the count; taking over the released Lease is a transition too (as
        // client-go counts), so a graceful hand-over shows in leaseTransitions.
        let released = released_spec(&previous, now);
        assert_eq!(released.holder_identity, None);
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.lease_transitions, Some(3));
        let again = acquired_spec(Some(&released), "c", &timing, now);
        assert_eq!(again.lease_transitions, Some(4));
        // The same identity taking it again (not a change of hands) does not count.
        assert_eq!(
            acquired_spec(Some(&taken), "b", &timing, now).lease_transitions,
            Some(4)
        );
        assert_eq!(
            acquired_spec(None, "c", &timing, now).lease_transitions,
            Some(0)
        );
        let later = Timestamp::from_second(1_800_000_002).expect("timestamp");
        let renewed = renewed_spec(&taken, &timing, later);
        assert_eq!(renewed.holder_identity.as_deref(), Some("b"));
        assert_eq!(renewed.acquire_time, Some(MicroTime(now)));
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
    }

    #[test]
    fn identities_are_unique_per_call() {
        let a = unique_identity("pod");
        let b = unique_identity("pod");
        assert!(a.starts_with("pod-") && a.len() == "pod-".len() + 8, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let period = Duration::from_millis(1000);
        for _ in 0..100 {
            let j = jittered(period);
            assert!(j >= period && j <= Duration::from_millis(1200), "{j:?}");
        }
    }
}
