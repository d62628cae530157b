//! Freeze windows: the `freeze` field of a `SafeDeploymentPolicy` (one-off and recurring windows,
//! deny or allow, and how long a break-glass override may last), the break-glass request a
//! person writes on a SafeDeployment, and the `status.freeze` the operator reports.
//!
//! The window arithmetic (RRULE expansion in a time zone, deny wins over allow) is pure and lives
//! in `core::freeze`; here are the shapes and their admission bounds only.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{SpecDuration, duration_rules};
use super::rules::DNS_LABEL_PATTERN;

/// At most this many windows per policy: each is expanded on every reconcile of a rollout in the
/// namespaces the policy selects.
pub const MAX_WINDOWS: usize = 32;
/// The longest RRULE value accepted.
pub const MAX_RRULE_LENGTH: usize = 256;
/// Default `maxBreakGlass`.
pub const DEFAULT_MAX_BREAK_GLASS: &str = "4h";

/// An RRULE value (RFC 5545 section 3.3.10) as the policy accepts it: `FREQ` first, at least
/// daily (a window every minute is a mistake, and each occurrence costs an iteration), no
/// `BYSECOND`, no `DTSTART` (the window's `start` is the DTSTART), no `RRULE:` prefix.
pub const RRULE_PATTERN: &str = "^FREQ=(DAILY|WEEKLY|MONTHLY|YEARLY)(;(INTERVAL|COUNT|UNTIL|BYMONTH|BYMONTHDAY|BYYEARDAY|BYWEEKNO|BYDAY|BYHOUR|BYMINUTE|BYSETPOS|WKST)=[-+,0-9A-Z]{1,64})*$";

/// An IANA time zone name such as `Europe/Berlin`, `America/Argentina/Buenos_Aires` or `UTC`.
pub const TIME_ZONE_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_+-]{0,31}(/[A-Za-z0-9_+-]{1,31}){0,2}$";

/// A local date and time without offset (`2026-12-24T18:00` or `2026-12-24T18:00:00`).
pub const LOCAL_DATE_TIME_PATTERN: &str =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?$";

/// An RFC 3339 timestamp with `Z` or an offset (`2026-12-24T17:00:00Z`).
pub const TIMESTAMP_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$";

/// When rollouts in the selected namespaces may not move forward.
///
/// A freeze stops new canaries, weight increases (completed steps) and promotions, a person's
/// `promote` included. Reverts and aborts are never frozen: a failing canary is reverted during
/// a freeze as at any other time.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreezePolicy {
    /// The windows. Inside any `Deny` window rollouts are frozen; when `Allow` windows exist,
    /// rollouts are frozen outside all of them too. Deny wins over allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(w, self.exists_one(v, v.name == w.name))", "message": "freeze window names must be unique"},
    ]))]
    pub windows: Vec<FreezeWindow>,

    /// How far in the future a break-glass override's `expires` may lie, from 1m to 72h.
    /// Default `4h`. An override that asks for longer is ignored (and reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("maxBreakGlass", "1h or 30m", "1m", "72h")))]
    pub max_break_glass: Option<SpecDuration>,
}

/// Whether a window forbids or allows rollouts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WindowEffect {
    /// Rollouts are frozen inside the window.
    #[default]
    Deny,
    /// Rollouts may move only inside some allow window (and outside every deny window).
    Allow,
}

/// One window: exactly one of `once` or `recurring`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.once) != has(self.recurring)", "message": "a freeze window sets exactly one of once or recurring"},
]))]
pub struct FreezeWindow {
    /// Name shown in status, events and `kubectl safedeploy status` (a DNS label).
    #[schemars(length(min = 1, max = 63))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{DNS_LABEL_PATTERN}')"), "message": "a freeze window name must be a lowercase DNS label, such as year-end"},
    ]))]
    pub name: String,

    /// `Deny` (default) or `Allow`.
    #[serde(default)]
    pub effect: WindowEffect,

    /// Why, shown with the freeze (such as `year-end change freeze, ask #release`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub reason: Option<String>,

    /// A window that happens once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once: Option<OneOffWindow>,

    /// A window that repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurring: Option<RecurringWindow>,
}

/// A window from `start` (inclusive) to `end` (exclusive), RFC 3339 timestamps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": format!("!self.start.matches('{TIMESTAMP_PATTERN}') || !self.end.matches('{TIMESTAMP_PATTERN}') || timestamp(self.end) > timestamp(self.start)"),
     "message": "a one-off freeze window's end must be after its start"},
]))]
pub struct OneOffWindow {
    /// Start, such as `2026-12-24T00:00:00+01:00` or `2026-12-23T23:00:00Z`.
    #[schemars(length(min = 20, max = 35))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{TIMESTAMP_PATTERN}')"), "message": "once.start must be an RFC 3339 timestamp with Z or an offset, such as 2026-12-24T00:00:00+01:00"},
    ]))]
    pub start: String,
    /// End (exclusive), such as `2027-01-02T00:00:00+01:00`.
    #[schemars(length(min = 20, max = 35))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{TIMESTAMP_PATTERN}')"), "message": "once.end must be an RFC 3339 timestamp with Z or an offset, such as 2027-01-02T00:00:00+01:00"},
    ]))]
    pub end: String,
}

/// A window that opens at each occurrence of an RFC 5545 recurrence rule, read in a time zone,
/// and lasts `duration` of elapsed time.
///
/// The occurrences are wall-clock times of `timeZone`: `start: 2026-01-02T18:00` with
/// `FREQ=WEEKLY;BYDAY=FR` is every Friday at 18:00 in that zone, in summer and in winter. A
/// local time that does not exist (skipped by a DST change) moves forward by the gap; one that
/// exists twice is the earlier of the two.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurringWindow {
    /// The rule, such as `FREQ=WEEKLY;BYDAY=FR` or `FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24`.
    #[schemars(length(min = 9, max = 256))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{RRULE_PATTERN}')"),
         "message": "rrule must be an RFC 5545 RRULE value starting with FREQ=DAILY, WEEKLY, MONTHLY or YEARLY, such as FREQ=WEEKLY;BYDAY=FR (no RRULE: prefix, no DTSTART, no BYSECOND)"},
    ]))]
    pub rrule: String,

    /// The IANA time zone the rule and `start` are read in, such as `Europe/Berlin` or `UTC`.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{TIME_ZONE_PATTERN}')"), "message": "timeZone must be an IANA time zone name, such as Europe/Berlin or UTC"},
    ]))]
    pub time_zone: String,

    /// The first occurrence (the rule's DTSTART), a local time in `timeZone` without offset,
    /// such as `2026-01-02T18:00`. Its time of day is the window's, unless the rule sets
    /// `BYHOUR`/`BYMINUTE`. Keep it within a few years of now: occurrences are counted from it.
    #[schemars(length(min = 16, max = 19))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{LOCAL_DATE_TIME_PATTERN}')"), "message": "recurring.start must be a local date and time without offset, such as 2026-01-02T18:00"},
    ]))]
    pub start: String,

    /// How long each occurrence lasts, from 1m to 744h (31 days), as elapsed time.
    #[schemars(extend("x-kubernetes-validations" = duration_rules("recurring.duration", "8h or 62h30m", "1m", "744h")))]
    pub duration: SpecDuration,
}

/// A break-glass request as the operator read it from a SafeDeployment's annotations
/// ([`super::labels::REQUEST_BREAK_GLASS`], `<expires>@<user>`, and
/// [`super::labels::REQUEST_BREAK_GLASS_REASON`]): lets its rollout move during a freeze until
/// `expires`. Admission checks that `user` is the writer and holds the break-glass verb; the
/// operator records who and why, and stops honouring it at `expires`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlass {
    /// Who asked (the username after `@`, as admission verified it).
    pub user: String,
    /// Why, in words.
    pub reason: String,
    /// When the override ends (RFC 3339).
    pub expires: String,
}

/// The freeze as the operator last evaluated it: the active one, or else the next one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreezeStatus {
    /// Whether the rollout is frozen now (false when a break-glass override lets it move, or
    /// when this is the next freeze).
    pub active: bool,
    /// The window's name (`outside-allow-windows` when no allow window is open).
    pub window: String,
    /// The window's reason, if it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the window opens (RFC 3339); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// When the window closes (RFC 3339); absent when no end is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// A break-glass override in force: `user: reason (until expires)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
}
