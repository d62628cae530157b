//! The window arithmetic at the edges: DST changes in Europe/Berlin and America/New_York, zones
//! far from UTC, windows across midnight and across a DST jump, deny over allow, windows that
//! cannot be read (they fail closed), and break-glass requests.

use super::*;
use crate::api::duration::SpecDuration;
use crate::api::freeze::OneOffWindow;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn recurring(name: &str, rrule: &str, zone: &str, start: &str, duration: &str) -> FreezeWindow {
    FreezeWindow {
        name: name.into(),
        effect: WindowEffect::Deny,
        reason: Some(format!("{name} reason")),
        once: None,
        recurring: Some(RecurringWindow {
            rrule: rrule.into(),
            time_zone: zone.into(),
            start: start.into(),
            duration: SpecDuration::from(duration),
        }),
    }
}

fn once(name: &str, start: &str, end: &str) -> FreezeWindow {
    FreezeWindow {
        name: name.into(),
        effect: WindowEffect::Deny,
        reason: None,
        once: Some(OneOffWindow {
            start: start.into(),
            end: end.into(),
        }),
        recurring: None,
    }
}

fn allow(mut window: FreezeWindow) -> FreezeWindow {
    window.effect = WindowEffect::Allow;
    window
}

fn policy(windows: Vec<FreezeWindow>) -> FreezePolicy {
    FreezePolicy {
        windows,
        max_break_glass: None,
    }
}

/// The freeze in force at `now`: (window, start, end).
fn frozen(
    windows: &[FreezeWindow],
    now: &str,
) -> Option<(String, Option<Timestamp>, Option<Timestamp>)> {
    evaluate(&policy(windows.to_vec()), at(now))
        .active()
        .map(|s| (s.window.clone(), s.start, s.end))
}

fn next(windows: &[FreezeWindow], now: &str) -> Option<(String, Option<Timestamp>)> {
    match evaluate(&policy(windows.to_vec()), at(now)) {
        FreezeState::OpenUntil(span) => Some((span.window, span.start)),
        _ => None,
    }
}

#[test]
fn weekly_berlin_window_keeps_its_wall_clock_time_across_dst() {
    // Every Friday 18:00 Berlin time for 62h (to Monday 08:00).
    let weekend = [recurring(
        "weekend",
        "FREQ=WEEKLY;BYDAY=FR",
        "Europe/Berlin",
        "2026-01-02T18:00",
        "62h",
    )];
    // Winter (CET, UTC+1): Friday 2026-03-20 18:00 is 17:00Z.
    assert_eq!(frozen(&weekend, "2026-03-20T16:59:59Z"), None);
    assert_eq!(
        frozen(&weekend, "2026-03-20T17:00:00Z"),
        Some((
            "weekend".into(),
            Some(at("2026-03-20T17:00:00Z")),
            Some(at("2026-03-23T07:00:00Z"))
        ))
    );
    // Summer (CEST, UTC+2) after the change on 2026-03-29: Friday 2026-04-03 18:00 is 16:00Z.
    assert_eq!(frozen(&weekend, "2026-04-03T15:59:59Z"), None);
    assert!(frozen(&weekend, "2026-04-03T16:00:00Z").is_some());
    // The next freeze, seen on a Wednesday in summer.
    assert_eq!(
        next(&weekend, "2026-04-01T12:00:00Z"),
        Some(("weekend".into(), Some(at("2026-04-03T16:00:00Z"))))
    );
}

#[test]
fn a_local_time_skipped_by_spring_forward_moves_forward_by_the_gap() {
    // Berlin skips 02:00-03:00 on 2026-03-29; a daily window at 02:30 opens at 03:30 CEST then.
    let nightly = [recurring(
        "nightly",
        "FREQ=DAILY",
        "Europe/Berlin",
        "2026-03-01T02:30",
        "1h",
    )];
    // The day before: 02:30 CET = 01:30Z.
    assert!(frozen(&nightly, "2026-03-28T01:30:00Z").is_some());
    // 03:30 CEST = 01:30Z as well; 01:29Z (03:29 CEST) is open.
    assert_eq!(frozen(&nightly, "2026-03-29T01:29:59Z"), None);
    assert_eq!(
        frozen(&nightly, "2026-03-29T01:30:00Z").map(|f| f.1),
        Some(Some(at("2026-03-29T01:30:00Z")))
    );
    // The day after: 02:30 CEST = 00:30Z.
    assert!(frozen(&nightly, "2026-03-30T00:30:00Z").is_some());
    assert_eq!(frozen(&nightly, "2026-03-30T01:30:00Z"), None);
}

#[test]
fn a_local_time_repeated_by_fall_back_is_the_earlier_one_in_new_york() {
    // New York repeats 01:00-02:00 on 2026-11-01 (EDT, then EST): 01:30 is the EDT one, 05:30Z.
    let nightly = [recurring(
        "nightly",
        "FREQ=DAILY",
        "America/New_York",
        "2026-10-01T01:30",
        "30m",
    )];
    assert_eq!(
        frozen(&nightly, "2026-11-01T05:45:00Z").map(|f| (f.1, f.2)),
        Some((
            Some(at("2026-11-01T05:30:00Z")),
            Some(at("2026-11-01T06:00:00Z"))
        ))
    );
    // The second 01:30 (EST, 06:30Z) is not a second occurrence.
    assert_eq!(frozen(&nightly, "2026-11-01T06:45:00Z"), None);
    // The day after, 01:30 EST = 06:30Z.
    assert!(frozen(&nightly, "2026-11-02T06:30:00Z").is_some());
    // And in spring (2026-03-08 skips 02:00-03:00; 01:30 EST exists): 06:30Z; the day after EDT.
    let spring = [recurring(
        "nightly",
        "FREQ=DAILY",
        "America/New_York",
        "2026-03-01T01:30",
        "30m",
    )];
    assert!(frozen(&spring, "2026-03-08T06:30:00Z").is_some());
    assert!(frozen(&spring, "2026-03-09T05:30:00Z").is_some());
    assert_eq!(frozen(&spring, "2026-03-09T06:30:00Z"), None);
}

#[test]
fn a_window_across_midnight_holds_into_the_next_day() {
    // Every day 22:00-02:00 UTC.
    let nights = [recurring(
        "nights",
        "FREQ=DAILY",
        "UTC",
        "2026-01-01T22:00",
        "4h",
    )];
    assert!(frozen(&nights, "2026-06-10T23:59:59Z").is_some());
    assert_eq!(
        frozen(&nights, "2026-06-11T01:00:00Z").map(|f| f.2),
        Some(Some(at("2026-06-11T02:00:00Z")))
    );
    assert_eq!(
        frozen(&nights, "2026-06-11T02:00:00Z"),
        None,
        "the end is exclusive"
    );
    assert_eq!(frozen(&nights, "2026-06-11T21:59:59Z"), None);
}

#[test]
fn a_window_across_a_dst_jump_lasts_its_elapsed_duration() {
    // 01:00 Berlin for 3h on the night of 2026-03-29: opens 01:00 CET (00:00Z) and lasts three
    // hours of elapsed time, so it closes at 03:00Z, which is 05:00 CEST on the wall clock.
    let night = [recurring(
        "night",
        "FREQ=DAILY",
        "Europe/Berlin",
        "2026-03-01T01:00",
        "3h",
    )];
    assert_eq!(
        frozen(&night, "2026-03-29T02:30:00Z").map(|f| (f.1, f.2)),
        Some((
            Some(at("2026-03-29T00:00:00Z")),
            Some(at("2026-03-29T03:00:00Z"))
        ))
    );
    assert_eq!(frozen(&night, "2026-03-29T03:00:00Z"), None);
    // Autumn: 01:00 CEST (23:00Z the day before) + 3h = 02:00Z, 03:00 CET on the wall clock.
    assert_eq!(
        frozen(&night, "2026-10-25T01:00:00Z").map(|f| f.2),
        Some(Some(at("2026-10-25T02:00:00Z")))
    );
}

#[test]
fn zones_far_from_utc_put_the_same_local_time_a_day_apart() {
    // 24 December 00:00-24:00 local, in the first and in one of the last zones to reach it.
    let christmas = |zone: &str| {
        [recurring(
            "christmas-eve",
            "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
            zone,
            "2026-12-24T00:00",
            "24h",
        )]
    };
    // Kiritimati is UTC+14: 24 December starts at 10:00Z on the 23rd.
    assert!(frozen(&christmas("Pacific/Kiritimati"), "2026-12-23T10:00:00Z").is_some());
    assert_eq!(
        frozen(&christmas("Pacific/Kiritimati"), "2026-12-24T10:00:00Z"),
        None
    );
    // Pago Pago is UTC-11: it starts at 11:00Z on the 24th and holds until 11:00Z on the 25th.
    assert_eq!(
        frozen(&christmas("Pacific/Pago_Pago"), "2026-12-24T10:59:59Z"),
        None
    );
    assert!(frozen(&christmas("Pacific/Pago_Pago"), "2026-12-25T10:59:59Z").is_some());
    // The next year too.
    assert!(frozen(&christmas("Pacific/Pago_Pago"), "2027-12-24T12:00:00Z").is_some());
}

#[test]
fn one_off_window_is_start_inclusive_end_exclusive() {
    let release = [once(
        "release",
        "2026-12-24T00:00:00+01:00",
        "2027-01-02T00:00:00+01:00",
    )];
    assert_eq!(
        next(&release, "2026-12-01T00:00:00Z"),
        Some(("release".into(), Some(at("2026-12-23T23:00:00Z"))))
    );
    assert!(frozen(&release, "2026-12-23T23:00:00Z").is_some());
    assert!(frozen(&release, "2027-01-01T22:59:59Z").is_some());
    assert_eq!(frozen(&release, "2027-01-01T23:00:00Z"), None);
    assert_eq!(
        evaluate(&policy(release.to_vec()), at("2027-02-01T00:00:00Z")),
        FreezeState::Open
    );
}

#[test]
fn deny_wins_over_allow() {
    // Allowed on weekdays 09:00-17:00 UTC, denied on 2026-06-10 all day.
    let windows = [
        allow(recurring(
            "office-hours",
            "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
            "UTC",
            "2026-01-05T09:00",
            "8h",
        )),
        once("incident", "2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"),
    ];
    // Wednesday 2026-06-10 12:00 is inside both: the deny wins.
    assert_eq!(
        frozen(&windows, "2026-06-10T12:00:00Z").map(|f| f.0),
        Some("incident".into())
    );
    // Thursday at 12:00: allowed; the next freeze is the allow window's end.
    assert_eq!(
        next(&windows, "2026-06-11T12:00:00Z"),
        Some((
            OUTSIDE_ALLOW_WINDOWS.into(),
            Some(at("2026-06-11T17:00:00Z"))
        ))
    );
    // Thursday at 18:00: outside every allow window, frozen until Friday 09:00.
    assert_eq!(
        frozen(&windows, "2026-06-11T18:00:00Z"),
        Some((
            OUTSIDE_ALLOW_WINDOWS.into(),
            None,
            Some(at("2026-06-12T09:00:00Z"))
        ))
    );
    // Saturday: frozen until Monday 09:00.
    assert_eq!(
        frozen(&windows, "2026-06-13T12:00:00Z").map(|f| f.2),
        Some(Some(at("2026-06-15T09:00:00Z")))
    );
}

#[test]
fn overlapping_deny_windows_freeze_until_the_last_ends() {
    let windows = [
        once("a", "2026-06-10T00:00:00Z", "2026-06-10T12:00:00Z"),
        once("b", "2026-06-10T06:00:00Z", "2026-06-10T18:00:00Z"),
    ];
    assert_eq!(
        frozen(&windows, "2026-06-10T07:00:00Z"),
        Some((
            "a,b".into(),
            Some(at("2026-06-10T00:00:00Z")),
            Some(at("2026-06-10T18:00:00Z"))
        ))
    );
}

#[test]
fn windows_that_cannot_be_read_fail_closed() {
    let unknown_zone = [recurring(
        "bad-zone",
        "FREQ=DAILY",
        "Mars/Olympus_Mons",
        "2026-01-01T00:00",
        "1h",
    )];
    let frozen_by = frozen(&unknown_zone, "2026-06-10T12:00:00Z").unwrap();
    assert_eq!((frozen_by.0.as_str(), frozen_by.2), ("bad-zone", None));
    let bad_rule = [recurring(
        "bad-rule",
        "FREQ=WEEKLY;BYDAY=XX",
        "UTC",
        "2026-01-01T00:00",
        "1h",
    )];
    assert!(frozen(&bad_rule, "2026-06-10T12:00:00Z").is_some());
    let no_such_day = [recurring(
        "feb-30",
        "FREQ=DAILY",
        "UTC",
        "2026-02-30T00:00",
        "1h",
    )];
    assert!(frozen(&no_such_day, "2026-06-10T12:00:00Z").is_some());
    let bad_once = [once("bad-once", "tomorrow", "2026-01-01T00:00:00Z")];
    assert!(frozen(&bad_once, "2026-06-10T12:00:00Z").is_some());
    // A daily rule from 1970 has more than MAX_OCCURRENCES occurrences before now.
    let ancient = [recurring(
        "ancient",
        "FREQ=DAILY",
        "UTC",
        "1970-01-01T00:00",
        "1h",
    )];
    assert_eq!(
        check_window(&ancient[0], at("2026-06-10T12:00:00Z")),
        Err(WindowError::TooManyOccurrences)
    );
    assert!(frozen(&ancient, "2026-06-10T12:00:00Z").is_some());
    // An allow window that cannot be read allows nothing.
    let bad_allow = [allow(recurring(
        "bad-allow",
        "FREQ=DAILY",
        "Nowhere/City",
        "2026-01-01T00:00",
        "23h",
    ))];
    assert_eq!(
        frozen(&bad_allow, "2026-06-10T12:00:00Z").map(|f| f.0),
        Some(OUTSIDE_ALLOW_WINDOWS.into())
    );
}

#[test]
fn a_rule_that_ends_stops_freezing() {
    let three = [recurring(
        "three",
        "FREQ=DAILY;COUNT=3",
        "UTC",
        "2026-06-01T00:00",
        "1h",
    )];
    assert!(frozen(&three, "2026-06-03T00:30:00Z").is_some());
    assert_eq!(frozen(&three, "2026-06-04T00:30:00Z"), None);
    assert_eq!(
        evaluate(&policy(three.to_vec()), at("2026-06-05T00:00:00Z")),
        FreezeState::Open
    );
}

#[test]
fn break_glass_is_honoured_until_it_expires_and_within_the_policy_bound() {
    let now = at("2026-06-10T12:00:00Z");
    let four_hours = Duration::from_secs(4 * 3600);
    let reason = Some("CVE-2026-1234 hotfix");
    match break_glass(Some("2026-06-10T13:00:00Z@alice"), reason, four_hours, now) {
        BreakGlassState::Active {
            request, expires, ..
        } => {
            assert_eq!(request.user, "alice");
            assert_eq!(request.reason, "CVE-2026-1234 hotfix");
            assert_eq!(expires, at("2026-06-10T13:00:00Z"));
        }
        other => panic!("not honoured: {other:?}"),
    }
    let refusal = |value: &str, reason: Option<&str>| match break_glass(
        Some(value),
        reason,
        four_hours,
        now,
    ) {
        BreakGlassState::Refused(why) => why,
        other => panic!("{value:?} with reason {reason:?} was not refused: {other:?}"),
    };
    assert!(refusal("2026-06-10T12:00:00Z@alice", reason).contains("expired"));
    assert!(refusal("2026-06-10T16:00:01Z@alice", reason).contains("maxBreakGlass"));
    assert!(refusal("2026-06-10T13:00:00Z", reason).contains("must name its requester"));
    assert!(refusal("2026-06-10T13:00:00Z@", reason).contains("must name its requester"));
    let no_reason = refusal("2026-06-10T13:00:00Z@alice", None);
    assert!(
        no_reason.contains("alice gives no reason")
            && no_reason.contains("safedeploy.dev/break-glass-reason"),
        "{no_reason}"
    );
    assert!(refusal("2026-06-10T13:00:00Z@alice", Some("  ")).contains("no reason"));
    let long = "x".repeat(MAX_BREAK_GLASS_REASON_LENGTH + 1);
    assert!(refusal("2026-06-10T13:00:00Z@alice", Some(&long)).contains("more than"));
    assert!(refusal("soon@alice", reason).contains("not an RFC 3339 timestamp"));
    // The old JSON shape names no requester the API server could have checked.
    assert!(
        refusal(
            r#"{"user":"alice","reason":"x","expires":"2026-06-10T13:00:00Z"}"#,
            reason
        )
        .contains("must name its requester")
    );
    assert_eq!(
        break_glass(Some(""), reason, four_hours, now),
        BreakGlassState::None
    );
    assert_eq!(
        break_glass(None, reason, four_hours, now),
        BreakGlassState::None
    );
}

#[test]
fn a_break_glass_with_a_new_reason_is_a_new_use() {
    let now = at("2026-06-10T12:00:00Z");
    let token = |reason: &str| match break_glass(
        Some("2026-06-10T13:00:00Z@alice"),
        Some(reason),
        Duration::from_secs(3600),
        now,
    ) {
        BreakGlassState::Active { token, .. } => token,
        other => panic!("not honoured: {other:?}"),
    };
    assert_ne!(token("hotfix"), token("another hotfix"));
}
