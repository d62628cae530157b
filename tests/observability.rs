//! What a person watching a rollout sees, on the local control plane: `/metrics` counters move
//! during a rollout, `/readyz` is ready once the caches synced, the start-up timing line is
//! logged (and the first reconcile, once, after it), and `safedeploy status --watch` redraws a
//! live view of the steps and signals.

mod common;
mod operator;

use std::process::Stdio;
use std::time::Duration;

use common::Fault;
use operator::{apply, apply_stable_web, safe_deployment, setup, wait_status};
use safedeploy::api::Phase;
use serde_json::json;
use tokio::io::AsyncReadExt;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn metrics_move_and_status_watch_shows_a_live_rollout() {
    let (ns, operator) = setup("observe").await;
    let addr = operator.http_address().await;
    let http = common::http();
    common::wait_until(Duration::from_secs(20), "/readyz", || {
        let (http, addr) = (http.clone(), addr.clone());
        async move {
            let response = http.get(format!("http://{addr}/readyz")).send().await?;
            Ok(response.status().is_success().then_some(()))
        }
    })
    .await;
    assert!(
        operator.log().contains("start-up timing"),
        "the start-up timing line is logged"
    );

    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "2s"}}, {"setWeight": 100}]);
    apply_stable_web(&ns, 2, &steps).await;
    let before = metrics_text(&http, &addr).await;

    // Watch the rollout live while it happens.
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_safedeploy"))
        .args(["status", "web", "--watch", "-n", &ns.name])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("status --watch");
    apply(
        &ns,
        &safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps),
    )
    .await
    .expect("v2");
    wait_status(&ns, "web", Duration::from_secs(60), "v2 promoted", |s| {
        s.phase == Phase::Healthy
            && s.history
                .last()
                .is_some_and(|e| e.revision == 2 && e.outcome == "Promoted")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = watch.kill().await;
    let mut screen = String::new();
    if let Some(mut stdout) = watch.stdout.take() {
        let _ = stdout.read_to_string(&mut screen).await;
    }
    let frames = screen.matches("\x1b[2J").count();
    println!("status --watch redrew {frames} times during the rollout");
    assert!(
        frames >= 3,
        "a live view redraws as the rollout moves: {frames} frames"
    );
    assert!(
        screen.contains("▶ 2. pause 2s"),
        "the current step is marked"
    );
    assert!(screen.contains("restarts"), "the signals are shown");
    assert!(
        screen.contains("canary 50% / stable 50%"),
        "the weights are shown"
    );

    let after = metrics_text(&http, &addr).await;
    for name in [
        "safedeploy_reconciles_total",
        "safedeploy_promotions_total",
        "safedeploy_reconcile_duration_seconds_count",
    ] {
        let (b, a) = (metric(&before, name), metric(&after, name));
        println!("{name}: {b} -> {a}");
        assert!(a > b, "{name} did not move: {b} -> {a}");
    }
    assert!(after.contains("safedeploy_attestation_verdicts_total{kind=\"NotRequired\"}"));
    // The first decision waits for the caches, so its start-up phase cannot come before theirs.
    let cache_sync = metric(
        &after,
        "safedeploy_startup_phase_seconds{kind=\"cache_sync\"}",
    );
    let first_reconcile = metric(
        &after,
        "safedeploy_startup_phase_seconds{kind=\"first_reconcile\"}",
    );
    println!("start-up: caches synced {cache_sync} s, first reconcile {first_reconcile} s");
    assert!(
        cache_sync > 0.0 && first_reconcile >= cache_sync,
        "first reconcile {first_reconcile} s after caches synced {cache_sync} s"
    );
    assert_eq!(
        operator.log().matches("\"first reconcile\"").count(),
        1,
        "the first reconcile is logged once"
    );
}

/// The operator's `/metrics` page.
async fn metrics_text(http: &reqwest::Client, addr: &str) -> String {
    let response = http.get(format!("http://{addr}/metrics")).send().await;
    response.expect("metrics").text().await.expect("text")
}
