//! The freeze window arithmetic: from a policy's windows (one-off, or RFC 5545 recurrence rules
//! read in a time zone), a break-glass request and the time, whether a rollout is frozen now,
//! until when, and the next freeze. Pure: the caller passes `now`.
//!
//! Deny wins over allow: inside any deny window the rollout is frozen; when allow windows exist,
//! it is frozen outside all of them too. A window that cannot be read (an unknown time zone, a
//! rule the parser refuses, an occurrence count beyond [`MAX_OCCURRENCES`]) fails closed: a
//! deny window freezes, an allow window allows nothing. A freeze is a safety control, and a
//! typo in one must not silently lift it.
//!
//! Recurrence rules are expanded by the `rrule` crate (a port of python-dateutil's rrule, the
//! reference implementation of RFC 5545 expansion) with its IANA zone database (`chrono-tz`);
//! only instants cross into this module, as Unix seconds, so the rest of the crate keeps `jiff`.

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;

use crate::api::freeze::{BreakGlass, FreezePolicy, FreezeWindow, RecurringWindow, WindowEffect};
use crate::api::labels::{
    REQUEST_BREAK_GLASS, REQUEST_BREAK_GLASS_REASON, request_payload, requester,
};

/// A recurring window is expanded from its `start`; more occurrences than this before `now`
/// is refused (the window fails closed and says to move `start` closer), so a daily rule that
/// started decades ago cannot make every reconcile slow.
pub const MAX_OCCURRENCES: usize = 20_000;

/// The longest break-glass reason the operator honours, in bytes: it is copied into status,
/// history and Events, which have bounds of their own.
pub const MAX_BREAK_GLASS_REASON_LENGTH: usize = 512;

/// The name status shows for "no allow window is open".
pub const OUTSIDE_ALLOW_WINDOWS: &str = "outside-allow-windows";

/// One occurrence of a window: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The window's name.
    pub window: String,
    /// The window's reason, if it gives one.
    pub reason: Option<String>,
    /// When it opens; None when unknown (a window that cannot be read).
    pub start: Option<Timestamp>,
    /// When it closes; None when no end is known.
    pub end: Option<Timestamp>,
}

/// Whether the windows freeze a rollout now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FreezeState {
    /// Not frozen; `next` is the next freeze, if one is known.
    #[default]
    Open,
    /// Not frozen now; the next freeze starts with `0`.
    OpenUntil(Span),
    /// Frozen, by the span shown (with the latest known end among the freezes in force).
    Frozen(Span),
}

impl FreezeState {
    /// The freeze in force, if any.
    pub fn active(&self) -> Option<&Span> {
        match self {
            FreezeState::Frozen(span) => Some(span),
            _ => None,
        }
    }
}

/// Why a window could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// A timestamp or local time does not parse.
    #[error("{field} {value:?} is not a valid time")]
    BadTime {
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// The duration does not parse.
    #[error("duration {0:?} is not a valid duration")]
    BadDuration(String),
    /// The recurrence rule was refused.
    #[error("rrule {rule:?} is not a valid recurrence rule: {why}")]
    BadRule {
        /// The rule.
        rule: String,
        /// What the parser said.
        why: String,
    },
    /// More than [`MAX_OCCURRENCES`] occurrences lie before now.
    #[error(
        "more than {MAX_OCCURRENCES} occurrences lie between start and now; move start closer to now"
    )]
    TooManyOccurrences,
    /// Neither `once` nor `recurring` is set (admission prevents it).
    #[error("the window sets neither once nor recurring")]
    Empty,
}

/// Where `now` lies with respect to one window's occurrences.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Placement {
    /// The occurrence in force, with the latest end among overlapping ones.
    current: Option<(Timestamp, Timestamp)>,
    /// The first occurrence starting after `now`.
    next: Option<(Timestamp, Timestamp)>,
}

/// Evaluates the policy's windows at `now`.
pub fn evaluate(policy: &FreezePolicy, now: Timestamp) -> FreezeState {
    let mut deny_active: Vec<Span> = Vec::new();
    let mut next_deny: Option<Span> = None;
    let mut any_allow = false;
    let mut allow_current: Option<Timestamp> = None;
    let mut next_allow: Option<Timestamp> = None;
    for window in &policy.windows {
        let placement = place(window, now);
        match window.effect {
            WindowEffect::Deny => match placement {
                Ok(placement) => {
                    if let Some((start, end)) = placement.current {
                        deny_active.push(span(window, Some(start), Some(end)));
                    }
                    if let Some((start, end)) = placement.next
                        && next_deny
                            .as_ref()
                            .is_none_or(|n| n.start.is_none_or(|s| start < s))
                    {
                        next_deny = Some(span(window, Some(start), Some(end)));
                    }
                }
                Err(error) => deny_active.push(unreadable(window, &error)),
            },
            WindowEffect::Allow => {
                any_allow = true;
                if let Ok(placement) = placement {
                    if let Some((_, end)) = placement.current {
                        allow_current = Some(allow_current.map_or(end, |e| e.max(end)));
                    }
                    if let Some((start, _)) = placement.next {
                        next_allow = Some(next_allow.map_or(start, |n| n.min(start)));
                    }
                }
            }
        }
    }
    if !deny_active.is_empty() {
        return FreezeState::Frozen(merge(deny_active));
    }
    if any_allow && allow_current.is_none() {
        return FreezeState::Frozen(Span {
            window: OUTSIDE_ALLOW_WINDOWS.into(),
            reason: Some("rollouts may move only inside an allow window".into()),
            start: None,
            end: next_allow,
        });
    }
    // Open now: the next freeze is the next deny window, or the end of the allow window.
    let allow_closes = allow_current.map(|end| Span {
        window: OUTSIDE_ALLOW_WINDOWS.into(),
        reason: Some("the allow window closes".into()),
        start: Some(end),
        end: next_allow,
    });
    let next = match (next_deny, allow_closes) {
        (Some(deny), Some(closes)) => {
            if deny.start <= closes.start {
                Some(deny)
            } else {
                Some(closes)
            }
        }
        (deny, closes) => deny.or(closes),
    };
    next.map_or(FreezeState::Open, FreezeState::OpenUntil)
}

/// Several freezes in force as one: named after all of them, ending when the last one ends
/// (unknown if any end is unknown).
fn merge(active: Vec<Span>) -> Span {
    let end = active
        .iter()
        .map(|s| s.end)
        .try_fold(None::<Timestamp>, |latest, end| {
            end.map(|end| Some(latest.map_or(end, |l| l.max(end))))
        })
        .flatten();
    let window = active
        .iter()
        .map(|s| s.window.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let reason = active.iter().find_map(|s| s.reason.clone());
    let start = active.iter().filter_map(|s| s.start).min();
    Span {
        window,
        reason,
        start,
        end,
    }
}

fn span(window: &FreezeWindow, start: Option<Timestamp>, end: Option<Timestamp>) -> Span {
    Span {
        window: window.name.clone(),
        reason: window.reason.clone(),
        start,
        end,
    }
}

fn unreadable(window: &FreezeWindow, error: &WindowError) -> Span {
    Span {
        window: window.name.clone(),
        reason: Some(format!(
            "the window cannot be read ({error}), so it freezes until the policy is fixed"
        )),
        start: None,
        end: None,
    }
}

/// Where `now` lies among the occurrences of `window`.
fn place(window: &FreezeWindow, now: Timestamp) -> Result<Placement, WindowError> {
    if let Some(once) = &window.once {
        let start = parse_timestamp("once.start", &once.start)?;
        let end = parse_timestamp("once.end", &once.end)?;
        return Ok(if start <= now && now < end {
            Placement {
                current: Some((start, end)),
                next: None,
            }
        } else if now < start {
            Placement {
                current: None,
                next: Some((start, end)),
            }
        } else {
            Placement::default()
        });
    }
    match &window.recurring {
        Some(recurring) => place_recurring(recurring, now),
        None => Err(WindowError::Empty),
    }
}

fn parse_timestamp(field: &'static str, text: &str) -> Result<Timestamp, WindowError> {
    Timestamp::from_str(text).map_err(|_| WindowError::BadTime {
        field,
        value: text.to_string(),
    })
}

/// The occurrence starts of a recurring window, as Unix seconds, in order: the rule set the
/// `rrule` crate parses from `DTSTART;TZID=<zone>:<start>` and `RRULE:<rule>`.
fn rule_set(recurring: &RecurringWindow) -> Result<rrule::RRuleSet, WindowError> {
    let local = ical_local_time(&recurring.start).ok_or_else(|| WindowError::BadTime {
        field: "recurring.start",
        value: recurring.start.clone(),
    })?;
    let text = format!(
        "DTSTART;TZID={}:{local}\nRRULE:{}",
        recurring.time_zone,
        recurring.rule_text()
    );
    rrule::RRuleSet::from_str(&text).map_err(|error| WindowError::BadRule {
        rule: recurring.rrule.clone(),
        why: error.to_string(),
    })
}

/// `2026-01-02T18:00` or `2026-01-02T18:00:00` as iCalendar's `20260102T180000`, checked to be
/// a real calendar date and time.
fn ical_local_time(text: &str) -> Option<String> {
    let civil = jiff::civil::DateTime::from_str(text).ok()?;
    Some(civil.strftime("%Y%m%dT%H%M%S").to_string())
}

trait RuleText {
    fn rule_text(&self) -> &str;
}

impl RuleText for RecurringWindow {
    /// The rule without a stray `RRULE:` prefix (admission refuses one; an object stored before
    /// that rule still reads).
    fn rule_text(&self) -> &str {
        self.rrule.strip_prefix("RRULE:").unwrap_or(&self.rrule)
    }
}

fn place_recurring(recurring: &RecurringWindow, now: Timestamp) -> Result<Placement, WindowError> {
    let length = recurring
        .duration
        .parse()
        .map_err(|_| WindowError::BadDuration(recurring.duration.to_string()))?;
    let length = i64::try_from(length.as_secs()).unwrap_or(i64::MAX);
    let set = rule_set(recurring)?;
    let now_seconds = now.as_second();
    let mut placement = Placement::default();
    for (count, occurrence) in (&set).into_iter().enumerate() {
        if count >= MAX_OCCURRENCES {
            return Err(WindowError::TooManyOccurrences);
        }
        let start = occurrence.timestamp();
        let end = start.saturating_add(length);
        let (Ok(start_at), Ok(end_at)) =
            (Timestamp::from_second(start), Timestamp::from_second(end))
        else {
            break;
        };
        if start > now_seconds {
            placement.next = Some((start_at, end_at));
            break;
        }
        if end > now_seconds {
            let latest = placement.current.map_or(end_at, |(_, e)| e.max(end_at));
            placement.current = Some((placement.current.map_or(start_at, |(s, _)| s), latest));
        }
    }
    Ok(placement)
}

/// The first problem of a policy's windows, if any: for `kubectl safedeploy` and tests, the same
/// reading [`evaluate`] does (which fails closed on it).
pub fn check_window(window: &FreezeWindow, now: Timestamp) -> Result<(), WindowError> {
    place(window, now).map(|_| ())
}

/// What the rollout decision needs to know of freezes: the windows' verdict at `now`, and a
/// break-glass request as read at `now`. The default is open, with no request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FreezeGate {
    /// The windows' verdict.
    pub state: FreezeState,
    /// The break-glass request.
    pub break_glass: BreakGlassState,
}

/// A break-glass request as the operator honours it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BreakGlassState {
    /// No request (or an empty one).
    #[default]
    None,
    /// In force until `expires`.
    Active {
        /// The request.
        request: BreakGlass,
        /// When it ends.
        expires: Timestamp,
        /// The annotation's text: identifies this use, so it is recorded once.
        token: String,
    },
    /// Present, but not honoured: why.
    Refused(String),
}

/// Reads a break-glass request at `now`: `value` is the annotation [`REQUEST_BREAK_GLASS`],
/// `<expires>@<username>`, and `reason` the annotation [`REQUEST_BREAK_GLASS_REASON`]. Honoured
/// while `expires` is in the future and at most `max` away (an override cannot outlast what the
/// policy allows), when it names its requester and gives a reason of at most
/// [`MAX_BREAK_GLASS_REASON_LENGTH`] bytes. The requester is whoever the chart's governance
/// policy let write the value under their own name.
pub fn break_glass(
    value: Option<&str>,
    reason: Option<&str>,
    max: Duration,
    now: Timestamp,
) -> BreakGlassState {
    let Some(value) = value.filter(|t| !t.trim().is_empty()) else {
        return BreakGlassState::None;
    };
    let Some(user) = requester(value) else {
        return BreakGlassState::Refused(format!(
            "the break-glass request must name its requester: {REQUEST_BREAK_GLASS} is <expires>@<username> (use kubectl safedeploy break-glass)"
        ));
    };
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return BreakGlassState::Refused(format!(
            "the break-glass request of {user} gives no reason: set the annotation {REQUEST_BREAK_GLASS_REASON} (kubectl safedeploy break-glass --reason)"
        ));
    }
    if reason.len() > MAX_BREAK_GLASS_REASON_LENGTH {
        return BreakGlassState::Refused(format!(
            "the break-glass reason of {user} is {} bytes long, more than {MAX_BREAK_GLASS_REASON_LENGTH}",
            reason.len()
        ));
    }
    let expires_text = request_payload(value).trim();
    let Ok(expires) = Timestamp::from_str(expires_text) else {
        return BreakGlassState::Refused(format!(
            "the break-glass request of {user} expires at {expires_text:?}, which is not an RFC 3339 timestamp"
        ));
    };
    if expires <= now {
        return BreakGlassState::Refused(format!(
            "the break-glass request of {user} expired at {expires}"
        ));
    }
    let max_seconds = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
    if expires.as_second().saturating_sub(now.as_second()) > max_seconds {
        return BreakGlassState::Refused(format!(
            "the break-glass request of {user} lasts until {expires}, longer than the policy's maxBreakGlass ({}s from now)",
            max.as_secs()
        ));
    }
    BreakGlassState::Active {
        request: BreakGlass {
            user,
            reason: reason.to_string(),
            expires: expires.to_string(),
        },
        expires,
        // The reason is part of this use: a new reason under the same value is recorded again.
        token: format!("{value}\n{reason}"),
    }
}

#[cfg(test)]
mod tests;
