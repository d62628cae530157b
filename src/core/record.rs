//! The durable audit trail, decided: which finished history entries still need their
//! `SafeDeploymentRecord`, what each record holds, its name, and the mark status keeps of what is
//! recorded (`status.recordedThrough`).
//!
//! Records are made from the status as it was **persisted**, before the next status write: a
//! crash after a record's creation makes the next reconcile create it again under the same name
//! (the API server answers "already exists", which is success), and a crash before it loses
//! nothing, since the mark only advances in the status written after the records. So each entry
//! is recorded once, and only entries that status really holds are recorded.
//!
//! Retention (`audit.recordRetention` of the policy governing the namespace) is decided here too:
//! [`retention`] reads it, never below [`MIN_RECORD_RETENTION`], and [`expired`] says whether a
//! record is past it. No policy, no retention or an unreadable one keeps records forever.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::api::policy::MIN_RECORD_RETENTION;
use crate::api::record::SafeDeploymentRecordSpec;
use crate::api::{HistoryEntry, SafeDeploymentPolicy, SafeDeploymentStatus};

/// The longest reason a record keeps (bytes; cut on a character boundary).
const MAX_REASON: usize = 4096;
/// The most measurements a record keeps.
const MAX_MEASUREMENTS: usize = 128;
/// The longest line of a measurement.
const MAX_MEASUREMENT: usize = 512;

/// The finished entries of `status.history` not yet recorded: finished after
/// `status.recordedThrough` (all finished ones when it is absent).
pub fn due(status: &SafeDeploymentStatus) -> Vec<&HistoryEntry> {
    let through = status
        .recorded_through
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    status
        .history
        .iter()
        .filter(|entry| {
            let Some(finished) = entry.finished_at.as_deref() else {
                return false;
            };
            match (finished.parse::<Timestamp>(), through) {
                (Ok(finished), Some(through)) => finished > through,
                // An unreadable time is recorded rather than lost.
                _ => true,
            }
        })
        .collect()
}

/// The new `status.recordedThrough` once `recorded` are recorded: the latest finish among them
/// and the current mark.
pub fn recorded_through(
    status: &SafeDeploymentStatus,
    recorded: &[&HistoryEntry],
) -> Option<String> {
    recorded
        .iter()
        .filter_map(|e| e.finished_at.as_deref())
        .chain(status.recorded_through.as_deref())
        .filter_map(|t| t.parse::<Timestamp>().ok())
        .max()
        .map(|t| t.to_string())
}

/// The record's name: `<rollout>-r<revision>-<12 hex digits>` of what identifies the entry,
/// so the same entry always gets the same name (at most 253 characters).
pub fn name(rollout: &str, entry: &HistoryEntry) -> String {
    let identity = format!(
        "{}\n{}\n{}\n{}",
        entry.hash,
        entry.outcome,
        entry.started_at,
        entry.finished_at.as_deref().unwrap_or_default()
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    let short = hex::encode(digest.as_ref().get(..6).unwrap_or_default());
    let suffix = format!("-r{}-{short}", entry.revision);
    let room = 253usize.saturating_sub(suffix.len());
    format!(
        "{}{suffix}",
        cut(rollout, room).trim_end_matches(['-', '.'])
    )
}

/// What the record of `entry` holds, with the measurements of its revision from `status`.
pub fn spec(
    rollout: &str,
    entry: &HistoryEntry,
    status: &SafeDeploymentStatus,
) -> SafeDeploymentRecordSpec {
    let mut measurements = Vec::new();
    if status.canary_revision.as_deref() == Some(entry.hash.as_str())
        || status.stable_revision.as_deref() == Some(entry.hash.as_str())
    {
        for signal in &status.health {
            let mut line = format!(
                "health {}: {} {} (target {}, acceptable {}, critical {})",
                signal.signal,
                signal.value,
                signal.verdict,
                signal.thresholds.target,
                signal.thresholds.acceptable,
                signal.thresholds.critical
            );
            if let Some(baseline) = signal.baseline {
                let _ = write!(line, ", baseline {baseline}");
            }
            measurements.push(line);
        }
    }
    for run in status
        .analysis_runs
        .iter()
        .filter(|r| r.canary_revision.as_deref() == Some(entry.hash.as_str()))
    {
        for m in &run.measurements {
            let value = m
                .value
                .map_or_else(|| "no data".to_string(), |v| v.to_string());
            measurements.push(format!(
                "analysis {}/{} at {}: {value} {:?} ({})",
                run.template, m.metric, m.at, m.verdict, m.threshold
            ));
        }
    }
    let skip = measurements.len().saturating_sub(MAX_MEASUREMENTS);
    let measurements = measurements
        .into_iter()
        .skip(skip)
        .map(|m| cut(&m, MAX_MEASUREMENT).to_string())
        .collect();
    SafeDeploymentRecordSpec {
        safe_deployment: rollout.to_string(),
        revision: entry.revision.max(0),
        hash: cut(&entry.hash, 64).to_string(),
        images: entry.images.clone().into_iter().collect(),
        outcome: entry.outcome.clone(),
        reason: cut(&entry.reason, MAX_REASON).to_string(),
        actor: entry.actor.clone(),
        started_at: entry.started_at.clone(),
        finished_at: entry.finished_at.clone().unwrap_or_default(),
        measurements,
    }
}

/// How long the records of a namespace governed by `policy` are kept: None keeps them forever
/// (no policy, no `audit.recordRetention`, or one that does not parse). Never less than
/// [`MIN_RECORD_RETENTION`], even for a policy stored around the CRD's rule.
pub fn retention(policy: Option<&SafeDeploymentPolicy>) -> Option<Duration> {
    let retention = policy?
        .spec
        .audit
        .as_ref()?
        .record_retention
        .as_ref()?
        .parse()
        .ok()?;
    let minimum = crate::api::duration::SpecDuration::from(MIN_RECORD_RETENTION)
        .parse()
        .unwrap_or(Duration::from_secs(3600));
    Some(retention.max(minimum))
}

/// Whether a record created at `created` is older than `retention` at `now`. A record without a
/// creation time, or created after `now` (a clock behind the API server's), is kept.
pub fn expired(created: Option<Timestamp>, now: Timestamp, retention: Duration) -> bool {
    let Some(created) = created else {
        return false;
    };
    let Ok(retention) = SignedDuration::try_from(retention) else {
        return false;
    };
    now.duration_since(created) > retention
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: &str, finished: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            revision: 2,
            hash: "abc".into(),
            outcome: outcome.into(),
            started_at: "2026-12-02T10:00:00Z".into(),
            finished_at: finished.map(str::to_string),
            actor: Some("bob".into()),
            ..Default::default()
        }
    }

    #[test]
    fn finished_entries_after_the_mark_are_due_once() {
        let mut status = SafeDeploymentStatus {
            history: vec![
                entry("Promoted", Some("2026-12-02T10:01:00Z")),
                entry("PromoteRequested", Some("2026-12-02T10:02:00Z")),
                entry("InProgress", None),
            ],
            ..Default::default()
        };
        let due_now: Vec<String> = due(&status).iter().map(|e| e.outcome.clone()).collect();
        assert_eq!(due_now, ["Promoted", "PromoteRequested"]);
        let all = due(&status);
        status.recorded_through = recorded_through(&status, &all);
        assert_eq!(
            status.recorded_through.as_deref(),
            Some("2026-12-02T10:02:00Z")
        );
        assert!(due(&status).is_empty());
        // The open entry finishes later: only it is due.
        status.history[2].finished_at = Some("2026-12-02T10:03:00.5Z".into());
        status.history[2].outcome = "Reverted".into();
        let due_now: Vec<String> = due(&status).iter().map(|e| e.outcome.clone()).collect();
        assert_eq!(due_now, ["Reverted"]);
    }

    #[test]
    fn the_same_entry_always_gets_the_same_name_and_names_fit() {
        let promoted = entry("Promoted", Some("2026-12-02T10:01:00Z"));
        assert_eq!(name("web", &promoted), name("web", &promoted));
        assert_ne!(
            name("web", &promoted),
            name("web", &entry("Reverted", Some("2026-12-02T10:01:00Z")))
        );
        assert!(name("web", &promoted).starts_with("web-r2-"));
        let long = "a".repeat(253);
        assert!(name(&long, &promoted).len() <= 253);
    }

    fn policy_keeping(retention: Option<&str>) -> SafeDeploymentPolicy {
        let mut policy = SafeDeploymentPolicy::new("p", Default::default());
        policy.spec.audit = Some(crate::api::policy::AuditPolicy {
            record_retention: retention.map(Into::into),
        });
        policy
    }

    #[test]
    fn records_without_a_policy_or_a_retention_are_kept_forever() {
        assert_eq!(retention(None), None);
        let mut no_audit = policy_keeping(None);
        assert_eq!(retention(Some(&no_audit)), None);
        no_audit.spec.audit = None;
        assert_eq!(retention(Some(&no_audit)), None);
        // Unreadable (stored around the schema): kept, never swept by a guess.
        assert_eq!(retention(Some(&policy_keeping(Some("a week")))), None);
        assert_eq!(
            retention(Some(&policy_keeping(Some("720h")))),
            Some(Duration::from_secs(720 * 3600))
        );
    }

    #[test]
    fn a_retention_below_the_minimum_counts_as_the_minimum() {
        // A tenant's policy that slipped past admission (the CRD rejects it) still cannot make
        // the operator delete a record younger than an hour.
        let hour = Duration::from_secs(3600);
        for short in ["0s", "1s", "59m"] {
            assert_eq!(retention(Some(&policy_keeping(Some(short)))), Some(hour));
        }
        let now: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let young: Timestamp = "2026-12-02T11:01:00Z".parse().unwrap();
        let kept = retention(Some(&policy_keeping(Some("0s")))).unwrap();
        assert!(!expired(Some(young), now, kept));
    }

    #[test]
    fn only_records_older_than_the_retention_expire() {
        let hour = Duration::from_secs(3600);
        let now: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let at = |t: &str| Some(t.parse::<Timestamp>().unwrap());
        assert!(expired(at("2026-12-02T10:59:59Z"), now, hour));
        assert!(!expired(at("2026-12-02T11:00:00Z"), now, hour), "exactly the retention");
        assert!(!expired(at("2026-12-02T11:30:00Z"), now, hour));
        assert!(!expired(at("2026-12-02T13:00:00Z"), now, hour), "from the future");
        assert!(!expired(None, now, hour), "no creation time");
        assert!(!expired(at("1970-01-01T00:00:00Z"), now, Duration::MAX));
    }

    #[test]
    fn a_record_keeps_who_what_when_why_within_its_bounds() {
        let mut reverted = entry("Reverted", Some("2026-12-02T10:01:00Z"));
        reverted.reason = "é".repeat(5000);
        let record = spec("web", &reverted, &SafeDeploymentStatus::default());
        assert_eq!(record.actor.as_deref(), Some("bob"));
        assert_eq!(record.outcome, "Reverted");
        assert!(record.reason.len() <= MAX_REASON);
        assert_eq!(record.finished_at, "2026-12-02T10:01:00Z");
    }
}
