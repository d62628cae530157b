//! `safedeploy replay`, the binary end to end.
//!
//! Without a cluster (run by `cargo test`): against a fake Prometheus of the test's own, whose
//! answer depends on the `time` the query asks for, a regression reverts at the measurement
//! that sees it, `--set` with looser thresholds lets it go on, a recording replays to the same
//! timeline; hostile inputs: a Prometheus that is down or hangs (exit 3, never promoted), answers of NaN,
//! +Inf and an empty vector (never promoted), a range of ten years (refused before any query),
//! a manifest that is not a SafeDeployment, an unknown `--set` path.
//!
//! On the local control plane (`--ignored`, in `replay/live.rs`): replay and the live run agree
//! on the same Prometheus data; a regression recorded in Prometheus by the emitter is caught,
//! and a looser threshold would not have reverted it.

mod common;
#[path = "replay/live.rs"]
mod live;
mod operator;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Query;
use serde_json::{Value, json};

/// The outcome of one `safedeploy replay` run.
pub(crate) struct Replayed {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Replayed {
    /// The JSON timeline (for runs with `--output json`).
    pub fn timeline(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `safedeploy replay` with `args`.
pub(crate) async fn replay(args: &[&str]) -> Replayed {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_safedeploy"))
        .arg("replay")
        .args(args)
        .output()
        .await
        .expect("run safedeploy replay");
    Replayed {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `--set` overrides that loosen the error-ratio thresholds enough that the recorded regression
/// is no longer one.
pub(crate) const LOOSER_THRESHOLDS: [&str; 4] = [
    "--set",
    "analyses.errors.metrics.error-ratio.thresholds.acceptable=0.1",
    "--set",
    "analyses.errors.metrics.error-ratio.thresholds.critical=0.2",
];

/// Whether every measurement of the timeline passed (Pass or Marginal).
pub(crate) fn passes_throughout(timeline: &Value) -> bool {
    measurements(timeline)
        .iter()
        .all(|m| m.3 == "Pass" || m.3 == "Marginal")
}

/// The timeline's measurements: `(offsetSeconds, number, value, verdict)`.
pub(crate) fn measurements(timeline: &Value) -> Vec<(f64, i64, Option<f64>, String)> {
    timeline["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "measurement")
        .map(|e| {
            (
                e["offsetSeconds"].as_f64().unwrap_or(-1.0),
                e["number"].as_i64().unwrap_or(-1),
                e["value"].as_f64(),
                e["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A SafeDeployment manifest of `image` with steps `[setWeight 50, pause]` and the background
/// analysis `errors` (every 2 s after 5 s) of one Prometheus metric `query` at `prometheus`.
pub(crate) fn manifest(image: &str, prometheus: &str, query: &str) -> Value {
    json!({
        "apiVersion": "safedeploy.dev/v1alpha1",
        "kind": "SafeDeployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}], "backgroundAnalysis": "errors"}},
            "analyses": [{
                "name": "errors", "interval": "2s", "initialDelay": "5s", "count": 1000,
                "metrics": [{
                    "name": "error-ratio",
                    "provider": {"prometheus": {"address": prometheus, "query": query, "timeout": "1s"}},
                    "direction": "lowerIsBetter",
                    "thresholds": {"target": 0.005, "acceptable": 0.01, "critical": 0.02},
                    "onError": "Inconclusive", "consecutiveErrorLimit": 1
                }]
            }]
        }
    })
}

/// Writes `value` as a file in `dir`; returns its path.
pub(crate) fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).expect("json")).expect("write");
    path.display().to_string()
}

const FROM: &str = "2026-12-02T10:00:00Z";
/// The fake Prometheus's regression: 5 % errors from FROM + 12 s (0.1 % before).
const JUMP_SECONDS: f64 = 12.0;

fn from_seconds() -> f64 {
    FROM.parse::<jiff::Timestamp>().unwrap().as_millisecond() as f64 / 1000.0
}

/// A Prometheus that answers instant queries by their text: `nan`, `inf`, `empty`, or else the
/// regression curve at the query's `time`. Counts the queries.
async fn fake_prometheus(queries: Arc<AtomicU64>) -> SocketAddr {
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(move |Query(params): Query<BTreeMap<String, String>>| {
            let queries = queries.clone();
            async move {
                queries.fetch_add(1, Ordering::SeqCst);
                let query = params.get("query").cloned().unwrap_or_default();
                let time: f64 = params
                    .get("time")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0.0);
                let value = if query.contains("nan") {
                    "NaN".to_string()
                } else if query.contains("inf") {
                    "+Inf".to_string()
                } else if time - from_seconds() < JUMP_SECONDS {
                    "0.001".to_string()
                } else {
                    "0.05".to_string()
                };
                let result = if query.contains("empty") {
                    json!([])
                } else {
                    json!([{"metric": {}, "value": [time, value]}])
                };
                axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
            }
        }),
    );
    common::serve(app).await
}

fn to(seconds: i64) -> String {
    FROM.parse::<jiff::Timestamp>()
        .unwrap()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_regression_at_the_asked_time_reverts_and_a_looser_threshold_does_not() {
    let queries = Arc::new(AtomicU64::new(0));
    let address = format!("http://{}", fake_prometheus(queries.clone()).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write(
        dir.path(),
        "web.json",
        &manifest(
            "registry.local/app:v2",
            &address,
            "ratio{version=\"{{canary}}\"}",
        ),
    );
    let recording = dir.path().join("recording.json").display().to_string();
    let to = to(60);
    let common_args = ["--manifest", &manifest, "--from", FROM, "--to", &to];

    let caught = replay(&[&common_args[..], &["--output", "json"]].concat()).await;
    assert_eq!(caught.code, 0, "{}", caught.stderr);
    let timeline = caught.timeline();
    assert_eq!(timeline["outcome"]["result"], "Reverted", "{timeline:#}");
    // Measured at 5, 7, 9, 11 s at 0.1 %; at 13 s, the first instant past the jump at 12 s,
    // 5 % is critical and the canary is reverted then.
    let taken = measurements(&timeline);
    let times: Vec<f64> = taken.iter().map(|m| m.0).collect();
    assert_eq!(times, [5.0, 7.0, 9.0, 11.0, 13.0], "{taken:?}");
    assert_eq!(timeline["outcome"]["offsetSeconds"], 13.0);
    let cause = &timeline["outcome"]["failing"][0];
    assert_eq!(cause["metric"], "error-ratio");
    assert_eq!(cause["value"], 0.05);
    assert_eq!(cause["verdict"], "Critical");
    assert_eq!(
        queries.load(Ordering::SeqCst),
        5,
        "one query per measurement"
    );

    // The text form names the step, each value and verdict, and the revert with its cause;
    // the recording goes on past the revert, to the end of the range (at 15, 17, …, 59 s).
    let text = replay(&[&common_args[..], &["--record", &recording]].concat()).await;
    assert_eq!(queries.load(Ordering::SeqCst), 5 + 5 + 23);
    assert_eq!(text.code, 0, "{}", text.stderr);
    for fragment in [
        "weight 50%",
        "error-ratio = 0.050000",
        "Critical",
        "outcome: Reverted",
        "caused by: errors",
    ] {
        assert!(
            text.stdout.contains(fragment),
            "{fragment:?} in\n{}",
            text.stdout
        );
    }
    println!("SAMPLE replay output:\n{}", text.stdout);

    // The recording replays offline to the same timeline, without a query.
    let before = queries.load(Ordering::SeqCst);
    let offline = replay(
        &[
            &common_args[..],
            &["--output", "json", "--recorded", &recording],
        ]
        .concat(),
    )
    .await;
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert_eq!(offline.timeline(), timeline);
    // With looser thresholds, the recording past the revert lets the canary go on to the end.
    let loose_offline = replay(
        &[
            &common_args[..],
            &["--output", "json", "--recorded", &recording],
            &LOOSER_THRESHOLDS[..],
        ]
        .concat(),
    )
    .await;
    assert_eq!(loose_offline.code, 0, "{}", loose_offline.stderr);
    let loose_offline = loose_offline.timeline();
    assert_eq!(loose_offline["outcome"]["result"], "RangeEnded");
    let offline_taken = measurements(&loose_offline);
    assert_eq!(offline_taken.len(), 28, "5, 7, …, 59 s: {offline_taken:?}");
    assert!(passes_throughout(&loose_offline), "{offline_taken:?}");
    assert_eq!(queries.load(Ordering::SeqCst), before);

    // With looser thresholds the same data is no regression: the canary goes on to the end.
    let loose = replay(
        &[
            &common_args[..],
            &["--output", "json"],
            &LOOSER_THRESHOLDS[..],
        ]
        .concat(),
    )
    .await;
    assert_eq!(loose.code, 0, "{}", loose.stderr);
    let loose = loose.timeline();
    assert_eq!(loose["outcome"]["result"], "RangeEnded", "{loose:#}");
    assert!(passes_throughout(&loose), "{loose:#}");
}

#[tokio::test]
async fn nan_inf_and_empty_answers_never_promote() {
    let queries = Arc::new(AtomicU64::new(0));
    let address = format!("http://{}", fake_prometheus(queries).await);
    let dir = tempfile::tempdir().expect("tempdir");
    for (answer, verdict) in [("nan", "NaN"), ("inf", "Critical"), ("empty", "NoData")] {
        let mut manifest = manifest(
            "registry.local/app:v2",
            &address,
            &format!("{answer}{{v=\"{{{{canary}}}}\"}}"),
        );
        // An analysis step that must pass before the canary goes to 100 %.
        manifest["spec"]["strategy"]["canary"] = json!({"steps": [
            {"setWeight": 50}, {"analysis": {"template": "errors"}}, {"setWeight": 100}
        ]});
        manifest["spec"]["analyses"][0]["count"] = json!(3);
        let path = write(dir.path(), &format!("{answer}.json"), &manifest);
        let run = replay(&[
            "--manifest",
            &path,
            "--from",
            FROM,
            "--to",
            &to(60),
            "--output",
            "json",
        ])
        .await;
        assert_eq!(run.code, 0, "{answer}: {}", run.stderr);
        let timeline = run.timeline();
        assert_ne!(
            timeline["outcome"]["result"], "Promoted",
            "{answer}: {timeline:#}"
        );
        let taken = measurements(&timeline);
        assert!(!taken.is_empty(), "{answer}");
        assert!(taken.iter().all(|m| m.3 == verdict), "{answer}: {taken:?}");
    }
}

#[tokio::test]
async fn a_prometheus_that_is_down_or_hangs_holds_the_rollout_and_exits_3() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    // Accepts the query and never answers: the metric's 1 s timeout ends each measurement.
    let hanging = common::serve(axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            "never"
        }),
    ))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, address) in [("down", closed), ("hanging", hanging)] {
        let path = write(
            dir.path(),
            &format!("{what}.json"),
            &manifest(
                "registry.local/app:v2",
                &format!("http://{address}"),
                "ratio{v=\"{{canary}}\"}",
            ),
        );
        let started = std::time::Instant::now();
        let run = replay(&[
            "--manifest",
            &path,
            "--from",
            FROM,
            "--to",
            &to(12),
            "--output",
            "json",
        ])
        .await;
        println!(
            "MEASURED replay with a {what} Prometheus: {:?}",
            started.elapsed()
        );
        assert_eq!(run.code, 3, "{what}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("no measurement reached its provider"),
            "{what}: {}",
            run.stderr
        );
        let timeline = run.timeline();
        assert_ne!(timeline["outcome"]["result"], "Promoted", "{what}");
        assert_ne!(timeline["outcome"]["result"], "Reverted", "{what}");
        let taken = measurements(&timeline);
        assert!(!taken.is_empty(), "{what}");
        assert!(taken.iter().all(|m| m.3 == "Error"), "{what}: {taken:?}");
    }
}

#[tokio::test]
async fn a_range_of_ten_years_is_refused_before_any_query() {
    let queries = Arc::new(AtomicU64::new(0));
    let address = format!("http://{}", fake_prometheus(queries.clone()).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "web.json",
        &manifest("registry.local/app:v2", &address, "ratio"),
    );
    let run = replay(&[
        "--manifest",
        &path,
        "--from",
        FROM,
        "--to",
        "2036-12-02T10:00:00Z",
    ])
    .await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("at most 10000"), "{}", run.stderr);
    assert!(
        run.stderr.contains("--set analyses.errors.interval"),
        "{}",
        run.stderr
    );
    assert_eq!(queries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_manifest_that_is_not_a_safedeployment_or_an_unknown_setting_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deployment = write(
        dir.path(),
        "deployment.json",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {}}),
    );
    let run = replay(&["--manifest", &deployment, "--from", FROM, "--to", &to(60)]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no SafeDeployment document"),
        "{}",
        run.stderr
    );

    let path = write(
        dir.path(),
        "web.json",
        &manifest("registry.local/app:v2", "http://127.0.0.1:9", "ratio"),
    );
    let run = replay(&[
        "--manifest",
        &path,
        "--from",
        FROM,
        "--to",
        &to(60),
        "--set",
        "spec.replicas=9",
    ])
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("unknown path"), "{}", run.stderr);
    assert!(run.stderr.contains("thresholds.critical"), "{}", run.stderr);

    let run = replay(&["--manifest", &path, "--from", "yesterday", "--to", &to(60)]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("RFC 3339"), "{}", run.stderr);
}
