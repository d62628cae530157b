//! The invalid SafeDeploymentPolicies of the freeze windows (`spec.freeze`), the rollout
//! requirements (`spec.requirements`) and the audit trail's retention (`spec.audit`), part of
//! [`super::policy_cases`].

use serde_json::json;

use super::{Case, case, repeat};

/// Rejected freeze windows, requirements and retentions, each with its message.
pub(crate) fn freeze_policy_cases() -> Vec<Case> {
    vec![
        // Freeze windows.
        case(
            "freeze window with both once and recurring",
            "a freeze window sets exactly one of once or recurring",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "once": {"start": "2026-12-24T00:00:00Z", "end": "2026-12-25T00:00:00Z"},
                "recurring": {"rrule": "FREQ=DAILY", "timeZone": "UTC", "start": "2026-01-01T00:00", "duration": "1h"}}]})
            },
        ),
        case(
            "one-off window that ends before it starts",
            "a one-off freeze window's end must be after its start",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "once": {"start": "2026-12-25T00:00:00Z", "end": "2026-12-24T00:00:00Z"}}]})
            },
        ),
        case(
            "one-off window without an offset",
            "once.start must be an RFC 3339 timestamp with Z or an offset",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "once": {"start": "2026-12-24T00:00:00", "end": "2026-12-25T00:00:00Z"}}]})
            },
        ),
        case(
            "rrule every minute",
            "rrule must be an RFC 5545 RRULE value starting with FREQ=DAILY, WEEKLY, MONTHLY or YEARLY",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "recurring": {"rrule": "FREQ=MINUTELY", "timeZone": "UTC", "start": "2026-01-01T00:00", "duration": "1h"}}]})
            },
        ),
        case(
            "rrule with a DTSTART inside",
            "rrule must be an RFC 5545 RRULE value",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "recurring": {"rrule": "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY", "timeZone": "UTC", "start": "2026-01-01T00:00", "duration": "1h"}}]})
            },
        ),
        case(
            "rrule of 257 characters",
            "spec.freeze.windows[0].recurring.rrule: Too long",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "recurring": {"rrule": format!("FREQ=DAILY;BYDAY={}", repeat('M', 240)), "timeZone": "UTC", "start": "2026-01-01T00:00", "duration": "1h"}}]})
            },
        ),
        case(
            "time zone with spaces",
            "timeZone must be an IANA time zone name",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "recurring": {"rrule": "FREQ=DAILY", "timeZone": "Central European Time", "start": "2026-01-01T00:00", "duration": "1h"}}]})
            },
        ),
        case(
            "recurring start with an offset",
            "recurring.start must be a local date and time without offset",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "recurring": {"rrule": "FREQ=DAILY", "timeZone": "UTC", "start": "2026-01-01T00:00+01", "duration": "1h"}}]})
            },
        ),
        case(
            "recurring window of 32 days",
            "recurring.duration must be at least 1m and at most 744h",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "w",
                "recurring": {"rrule": "FREQ=MONTHLY", "timeZone": "UTC", "start": "2026-01-01T00:00", "duration": "768h"}}]})
            },
        ),
        case(
            "two windows of one name",
            "freeze window names must be unique",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [
                {"name": "w", "once": {"start": "2026-12-24T00:00:00Z", "end": "2026-12-25T00:00:00Z"}},
                {"name": "w", "once": {"start": "2026-12-31T00:00:00Z", "end": "2027-01-01T00:00:00Z"}}]})
            },
        ),
        case("33 freeze windows", "must have at most 32 items", |p| {
            p["spec"]["freeze"] = json!({"windows": (0..33).map(|i| json!({"name": format!("w{i}"),
                "once": {"start": "2026-12-24T00:00:00Z", "end": "2026-12-25T00:00:00Z"}})).collect::<Vec<_>>()})
        }),
        case(
            "window name with capitals",
            "a freeze window name must be a lowercase DNS label",
            |p| {
                p["spec"]["freeze"] = json!({"windows": [{"name": "Year_End",
                "once": {"start": "2026-12-24T00:00:00Z", "end": "2026-12-25T00:00:00Z"}}]})
            },
        ),
        case(
            "maxBreakGlass of a week",
            "maxBreakGlass must be at least 1m and at most 72h",
            |p| p["spec"]["freeze"] = json!({"maxBreakGlass": "168h"}),
        ),
        // Rollout requirements.
        case(
            "minSteps 0",
            "minSteps in body should be greater than or equal to 1",
            |p| p["spec"]["requirements"] = json!({"minSteps": 0}),
        ),
        case(
            "maxWeightStep 101",
            "maxWeightStep in body should be less than or equal to 100",
            |p| p["spec"]["requirements"] = json!({"maxWeightStep": 101}),
        ),
        case(
            "minBakeTime of 8 days",
            "minBakeTime must be at least 1m and at most 168h",
            |p| p["spec"]["requirements"] = json!({"minBakeTime": "192h"}),
        ),
        case("17 required metrics", "must have at most 16 items", |p| {
            p["spec"]["requirements"] =
                json!({"requiredMetrics": (0..17).map(|i| format!("m{i}")).collect::<Vec<_>>()})
        }),
        case(
            "fresh baseline namespace with a dot",
            "every requireFreshBaselineIn entry must be a namespace name",
            |p| p["spec"]["requirements"] = json!({"requireFreshBaselineIn": ["team.a"]}),
        ),
        // Record retention: a tenant's policy cannot have the audit trail swept away at once.
        case(
            "recordRetention of 59 minutes",
            "recordRetention must be at least 1h and at most 87600h",
            |p| p["spec"]["audit"] = json!({"recordRetention": "59m"}),
        ),
        case(
            "recordRetention of 0s",
            "recordRetention must be at least 1h and at most 87600h",
            |p| p["spec"]["audit"] = json!({"recordRetention": "0s"}),
        ),
        case(
            "recordRetention past ten years",
            "recordRetention must be at least 1h and at most 87600h",
            |p| p["spec"]["audit"] = json!({"recordRetention": "87601h"}),
        ),
        case(
            "recordRetention in days",
            "recordRetention must be a duration such as 720h or 2160h",
            |p| p["spec"]["audit"] = json!({"recordRetention": "30d"}),
        ),
        case(
            "negative recordRetention",
            "recordRetention must be a duration such as 720h or 2160h",
            |p| p["spec"]["audit"] = json!({"recordRetention": "-1h"}),
        ),
    ]
}
