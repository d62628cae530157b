//! `safedeploy replay` on the shared cluster's Prometheus, which scrapes the metrics emitter
//! every second: a live rollout and its replay agree, and a regression the emitter recorded is
//! caught (and would not have been with a looser threshold).

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use safedeploy::api::Phase;
use serde_json::{Value, json};

use super::{LOOSER_THRESHOLDS, manifest, measurements, replay, write};
use crate::common;
use crate::operator::{self, apply, apply_stable, wait_status};

/// The canary's cumulative error ratio. Its value at a time is that of the latest scrape at or
/// before it, so two evaluations agree exactly unless a scrape falls between them, which the
/// test checks from Prometheus's own sample timestamps. (A `rate()` ratio also moves with the
/// window's position between scrapes: extrapolation to the window's edges is capped for a
/// counter near zero, differently for the errors and the requests.)
const CUMULATIVE_RATIO: &str = "sum(safedeploy_demo_errors_total{version=\"{{canary}}\"}) / sum(safedeploy_demo_requests_total{version=\"{{canary}}\"})";

/// Every scrape timestamp (milliseconds) of the canary's request counter up to `until`.
async fn scrape_times(version: &str, until: Timestamp) -> BTreeSet<i64> {
    let seconds = format!("{:.3}", until.as_millisecond() as f64 / 1000.0);
    let query = format!("safedeploy_demo_requests_total{{version=\"{version}\"}}[10m]");
    let body: Value = common::http()
        .get(format!("{}/api/v1/query", common::prometheus_url()))
        .query(&[("query", query.as_str()), ("time", seconds.as_str())])
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|pair| pair[0].as_f64())
        .map(|at| (at * 1000.0).round() as i64)
        .collect()
}

fn millis(at: &str) -> i64 {
    at.parse::<Timestamp>().expect("time").as_millisecond()
}

#[tokio::test]
#[ignore = "needs the local control plane and Prometheus (e2e/cluster.sh up --with-prometheus)"]
async fn replay_and_the_live_run_agree_on_the_same_data() {
    let (ns, _operator) = operator::setup("replay").await;
    let prometheus = common::prometheus_url();
    let emitter = common::emitter_url();
    let run = common::random_suffix(6);
    let manifest_of = |version: &str| {
        let mut m = manifest(
            &format!("registry.local/app:{version}-{run}"),
            &prometheus,
            CUMULATIVE_RATIO,
        );
        m["metadata"]["namespace"] = json!(ns.name);
        m
    };
    apply_stable(&ns, &manifest_of("v1")).await;
    let v2 = manifest_of("v2");
    apply(&ns, &v2).await.expect("apply v2");
    let canary = wait_status(&ns, "web", Duration::from_secs(60), "the canary", |s| {
        s.canary_revision.is_some()
    })
    .await
    .canary_revision
    .unwrap_or_default();
    common::emitter_configure(&emitter, &canary, Some(0.001), None, Some(200.0))
        .await
        .expect("emitter");
    wait_status(
        &ns,
        "web",
        Duration::from_secs(30),
        "three healthy measurements",
        |s| s.analysis_runs.iter().any(|r| r.measurement_count >= 3),
    )
    .await;
    common::emitter_configure(&emitter, &canary, Some(0.5), None, None)
        .await
        .expect("the jump");
    let live = wait_status(&ns, "web", Duration::from_secs(60), "the revert", |s| {
        s.phase == Phase::Degraded
    })
    .await;
    common::emitter_remove(&emitter, &canary).await;
    let entry = live.history.last().expect("history").clone();
    assert_eq!(entry.outcome, "Reverted");
    let run_status = live
        .analysis_runs
        .iter()
        .find(|r| r.template == "errors")
        .expect("the background run")
        .clone();
    let started = run_status.started_at.clone().expect("startedAt");
    let reverted: Timestamp = entry
        .finished_at
        .clone()
        .expect("finishedAt")
        .parse()
        .expect("time");
    // Prometheus holds every scrape up to the revert.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "v2.json", &v2);
    let to = reverted
        .checked_add(SignedDuration::from_secs(30))
        .expect("time")
        .to_string();
    let replayed = replay(&[
        "--manifest",
        &path,
        "--from",
        &started,
        "--to",
        &to,
        "--output",
        "json",
    ])
    .await;
    assert_eq!(replayed.code, 0, "{}", replayed.stderr);
    let timeline = replayed.timeline();
    assert_eq!(
        timeline["canaryRevision"],
        canary.as_str(),
        "the same revision hash as the operator's"
    );
    assert_eq!(timeline["outcome"]["result"], "Reverted", "{timeline:#}");
    let cause = &timeline["outcome"]["failing"][0];
    assert_eq!(cause["metric"], "error-ratio", "{timeline:#}");
    assert!(entry.reason.contains("error-ratio"), "{}", entry.reason);

    // Measurement by measurement (status keeps the live run's last ten): the values agree
    // exactly unless a scrape fell between the two evaluation times.
    let scrapes = scrape_times(
        &canary,
        reverted
            .checked_add(SignedDuration::from_secs(2))
            .expect("time"),
    )
    .await;
    assert!(
        scrapes.len() >= 10,
        "Prometheus's scrape timestamps of the canary: {scrapes:?}"
    );
    let replay_at: Vec<(i64, String, Option<f64>, String)> = timeline["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "measurement")
        .map(|e| {
            (
                e["number"].as_i64().unwrap_or(-1),
                e["at"].as_str().unwrap_or_default().to_string(),
                e["value"].as_f64(),
                e["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let kept = &run_status.measurements;
    let first_number = i64::from(run_status.measurement_count) - kept.len() as i64 + 1;
    let (mut exact, mut straddled) = (0, Vec::new());
    for (offset, measured) in kept.iter().enumerate() {
        let number = first_number + offset as i64;
        let Some((_, at, value, verdict)) = replay_at.iter().find(|m| m.0 == number) else {
            continue;
        };
        let (live_ms, replay_ms) = (millis(&measured.at), millis(at));
        let between = scrapes
            .range(live_ms.min(replay_ms) + 1..=live_ms.max(replay_ms))
            .count();
        println!(
            "MEASURED measurement {number}: live {} at +{} ms after the replay's, replay {:?} ({verdict}), live {:?} ({:?}), scrapes between: {between}",
            measured.at,
            live_ms - replay_ms,
            value,
            measured.value,
            measured.verdict
        );
        if between == 0 {
            exact += 1;
            match (value, measured.value) {
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "measurement {number}: replay {a}, live {b}"
                ),
                (a, b) => assert_eq!(*a, b, "measurement {number}"),
            }
            assert_eq!(
                *verdict,
                format!("{:?}", measured.verdict),
                "measurement {number}"
            );
        } else {
            straddled.push(number);
        }
    }
    assert!(exact > 0, "no measurement could be compared exactly");
    // The same measurement reverts, or the replay's is one later and precisely because the
    // live run, which measures a little after each nominal time (reconcile latency adds up at
    // each interval), saw a scrape that the replay's evaluation time was just before.
    let live_count = i64::from(run_status.measurement_count);
    let replay_count = cause["number"].as_i64().expect("number");
    println!(
        "MEASURED replay vs live: revert at measurement {replay_count} vs {live_count}; {exact} measurements equal, {} with a scrape between ({straddled:?})",
        straddled.len()
    );
    assert!(
        replay_count == live_count
            || (replay_count == live_count + 1 && straddled.contains(&live_count)),
        "replay reverted at measurement {replay_count}, live at {live_count} (scrape between at {straddled:?})"
    );
}

#[tokio::test]
#[ignore = "needs Prometheus scraping the emitter (e2e/cluster.sh up --with-prometheus)"]
async fn a_regression_recorded_in_prometheus_is_caught_and_a_looser_threshold_is_not() {
    let emitter = common::emitter_url();
    let prometheus = common::prometheus_url();
    let version = common::unique_version("replay");
    common::emitter_configure(&emitter, &version, Some(0.001), None, Some(200.0))
        .await
        .expect("emitter");
    let start = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    common::emitter_configure(&emitter, &version, Some(0.05), None, None)
        .await
        .expect("the regression");
    let jump = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let end = Timestamp::now();
    common::emitter_remove(&emitter, &version).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let query = common::error_ratio_query("{{canary}}", "4s");
    let path = write(
        dir.path(),
        "web.json",
        &manifest("registry.local/app:v2", &prometheus, &query),
    );
    let recording = dir.path().join("recording.json").display().to_string();
    let (from, to) = (start.to_string(), end.to_string());
    let args = [
        "--manifest",
        &path,
        "--from",
        &from,
        "--to",
        &to,
        "--canary-revision",
        &version,
        "--output",
        "json",
    ];
    let caught = replay(&[&args[..], &["--record", &recording]].concat()).await;
    assert_eq!(caught.code, 0, "{}", caught.stderr);
    let timeline = caught.timeline();
    assert_eq!(timeline["outcome"]["result"], "Reverted", "{timeline:#}");
    let reverted_after = timeline["outcome"]["offsetSeconds"]
        .as_f64()
        .expect("offset");
    let jump_after = jump.duration_since(start).as_secs_f64();
    println!(
        "MEASURED replayed revert {reverted_after:.3} s after the start, the jump at {jump_after:.3} s"
    );
    // Never before the regression existed, and within one interval (2 s) plus a scrape (1 s)
    // and the 4 s window's first errors.
    assert!(
        reverted_after >= jump_after,
        "reverted at {reverted_after} s, before the jump at {jump_after} s"
    );
    assert!(
        reverted_after <= jump_after + 4.0,
        "reverted at {reverted_after} s, jump at {jump_after} s"
    );
    assert!(
        measurements(&timeline)
            .iter()
            .filter(|m| m.0 < jump_after)
            .all(|m| m.3 == "Pass")
    );

    // Offline, the recording gives the same timeline without Prometheus.
    let offline = replay(&[&args[..], &["--recorded", &recording]].concat()).await;
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert_eq!(offline.timeline(), timeline);

    let loose = replay(&[&args[..], &LOOSER_THRESHOLDS[..]].concat()).await;
    assert_eq!(loose.code, 0, "{}", loose.stderr);
    assert_eq!(
        loose.timeline()["outcome"]["result"],
        "RangeEnded",
        "{}",
        loose.stdout
    );
}
