//! Notifications on the local control plane, against an HTTP receiver this test serves on
//! 127.0.0.1 (the operator under test runs as a local process): every event of a rollout and of
//! a revert arrives once at each of the three sinks, the webhook's HMAC verifies; a receiver that
//! is down for longer than a round of attempts and comes back gets the revert; one that refuses
//! (400) is announced by a `NotificationDropped` Event; a receiver that hangs does not delay a revert
//! (measured); an operator killed while a delivery hangs delivers it after its restart, and
//! repeats none that were delivered; a revision blocked by the policy's requirements is announced
//! with the reason.

mod common;
mod operator;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::{Fault, TestNamespace, in_seconds};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::PostParams;
use operator::{
    Operator, annotate, apply, apply_stable_web, policy_with, safe_deployment, setup, wait_status,
};
use safedeploy::api::Phase;
use safedeploy::core::notify::payload::{SIGNATURE_HEADER, verify};
use serde_json::{Value, json};

const HMAC: &[u8] = b"integration-test-key";

/// One request the receiver answered 2xx.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    key: String,
    event: String,
    signature: Option<String>,
    body: Value,
    raw: Vec<u8>,
}

/// The receiver: records what it answered; while `hang` holds it answers nothing for a minute;
/// while `refuse` holds it answers 400 Bad Request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    hang: Arc<AtomicBool>,
    hung: Arc<Mutex<u32>>,
    refuse: Arc<AtomicBool>,
}

async fn receive(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if r.hang.load(Ordering::SeqCst) {
        *r.hung.lock().unwrap() += 1;
        tokio::time::sleep(Duration::from_secs(60)).await;
        return StatusCode::OK;
    }
    if r.refuse.load(Ordering::SeqCst) {
        return StatusCode::BAD_REQUEST;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    r.got.lock().unwrap().push(Got {
        path: uri.path().to_string(),
        key: header("x-safedeploy-idempotency-key").unwrap_or_default(),
        event: header("x-safedeploy-event").unwrap_or_default(),
        signature: header(SIGNATURE_HEADER),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    });
    StatusCode::OK
}

impl Receiver {
    fn router(&self) -> Router {
        Router::new().fallback(receive).with_state(self.clone())
    }

    /// A receiver that comes back on `port` (where one was down).
    async fn serve_on(port: u16) -> Receiver {
        let back = Receiver::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("rebind the port");
        let router = back.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        back
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `path` has received `event` (of any SafeDeployment); returns it.
    async fn wait_for(&self, path: &str, event: &str, timeout: Duration) -> Got {
        self.wait_for_of(path, event, None, timeout).await
    }

    /// Waits until `path` has received `event`, of the SafeDeployment `name` if given.
    async fn wait_for_of(
        &self,
        path: &str,
        event: &str,
        name: Option<&str>,
        timeout: Duration,
    ) -> Got {
        let what = format!("{event} of {name:?} at {path}");
        common::wait_until(timeout, &what, || async {
            Ok(self.got().into_iter().find(|g| {
                g.path == path
                    && g.event == event
                    && name.is_none_or(|n| g.body["subject"]["name"] == n)
            }))
        })
        .await
    }
}

/// A receiver's Secret: its URL and the HMAC key.
async fn receiver_secret(ns: &TestNamespace, name: &str, url: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": {"url": url, "hmacKey": std::str::from_utf8(HMAC).unwrap()},
    }))
    .unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the receiver's Secret");
}

fn policy(sinks: Value, extra: Value) -> Value {
    let mut spec = json!({"requireAttestation": false, "requirePinnedImages": false,
        "notifications": {"dashboardUrl": "https://dash.example.com/ui", "sinks": sinks}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

fn hold_steps() -> Value {
    json!([{"setWeight": 50}, {"pause": {}}])
}

/// Every key that `path` received more than once.
fn repeats(got: &[Got], path: &str) -> Vec<String> {
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for g in got.iter().filter(|g| g.path == path) {
        *counts.entry(&g.key).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, n)| format!("{k} x{n}"))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn every_event_of_a_rollout_and_a_revert_arrives_once_at_each_sink_signed() {
    let (ns, _operator) = setup("notify-all").await;
    let receiver = Receiver::default();
    let addr = common::serve(receiver.router()).await;
    for sink in ["hook", "chat", "ce"] {
        receiver_secret(&ns, sink, &format!("http://{addr}/{sink}")).await;
    }
    let all = json!([
        "RolloutStarted",
        "StepCompleted",
        "Paused",
        "Promoted",
        "Reverted",
        "Blocked",
        "Frozen"
    ]);
    let sinks = json!([
        {"name": "hook", "type": "Webhook", "secretName": "hook", "events": all},
        {"name": "chat", "type": "Slack", "secretName": "chat"},
        {"name": "ce", "type": "CloudEvents", "secretName": "ce"},
    ]);
    policy_with(&ns, policy(sinks.clone(), json!({})), "notifications").await;
    let first = apply_stable_web(&ns, 2, &hold_steps()).await;
    // v2: step 1 completes, the untimed pause waits for a person, a promote finishes it.
    let v2 = safe_deployment("web", 2, "registry.local/app:v2", Fault::None, hold_steps());
    apply(&ns, &v2).await.expect("apply v2");
    let paused = receiver
        .wait_for("/hook", "Paused", Duration::from_secs(30))
        .await;
    assert_eq!(paused.body["step"], 2, "{:?}", paused.body);
    annotate(&ns, "web", "safedeploy.dev/promote", "t1")
        .await
        .expect("promote");
    wait_status(&ns, "web", Duration::from_secs(30), "v2 promoted", |s| {
        s.phase == Phase::Healthy && s.stable_revision != first.stable_revision
    })
    .await;
    // v3 crashes: reverted.
    let v3 = safe_deployment(
        "web",
        2,
        "registry.local/app:v3",
        Fault::Crash,
        hold_steps(),
    );
    apply(&ns, &v3).await.expect("apply v3");
    let revert = receiver
        .wait_for("/hook", "Reverted", Duration::from_secs(60))
        .await;
    // A freeze holds v4.
    let freeze = json!({"freeze": {"windows": [{"name": "notify-freeze", "reason": "integration test",
        "once": {"start": in_seconds(-60), "end": in_seconds(3600)}}]}});
    policy_with(&ns, policy(sinks, freeze), "freeze").await;
    let v4 = safe_deployment(
        "web",
        2,
        "registry.local/app:v4",
        Fault::Crash,
        hold_steps(),
    );
    apply(&ns, &v4).await.expect("apply v4");
    receiver
        .wait_for("/hook", "Frozen", Duration::from_secs(30))
        .await;
    for path in ["/chat", "/ce"] {
        for event in ["RolloutStarted", "Paused", "Promoted", "Reverted", "Frozen"] {
            receiver
                .wait_for(path, event, Duration::from_secs(20))
                .await;
        }
    }
    // Repeats would come with later reconciles: give them time.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = receiver.got();
    for path in ["/hook", "/chat", "/ce"] {
        assert!(
            repeats(&got, path).is_empty(),
            "{path} repeated {:?}",
            repeats(&got, path)
        );
    }
    let hook_events: Vec<&str> = got
        .iter()
        .filter(|g| g.path == "/hook")
        .map(|g| g.event.as_str())
        .collect();
    for event in [
        "RolloutStarted",
        "StepCompleted",
        "Paused",
        "Promoted",
        "Reverted",
        "Frozen",
    ] {
        assert!(
            hook_events.contains(&event),
            "{event} missing from {hook_events:?}"
        );
    }
    assert!(
        !got.iter()
            .any(|g| g.path == "/chat" && g.event == "StepCompleted"),
        "StepCompleted is opt-in"
    );
    // Every webhook and CloudEvents body is signed, and the signature verifies.
    for g in got.iter().filter(|g| g.path != "/chat") {
        let header = g.signature.as_deref().expect("a signature header");
        assert!(
            verify(HMAC, header, &g.raw).is_some(),
            "{} does not verify",
            g.key
        );
        assert!(verify(b"another key", header, &g.raw).is_none());
    }
    assert!(
        got.iter()
            .filter(|g| g.path == "/chat")
            .all(|g| g.signature.is_none())
    );
    // The revert says why, with the signal's value and thresholds, and links to the dashboard.
    let evidence = revert.body["evidence"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!evidence.is_empty(), "no evidence in {}", revert.body);
    assert!(
        evidence[0]["threshold"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let link = format!("https://dash.example.com/ui/{}/web", ns.name);
    assert_eq!(revert.body["dashboard"], json!(link));
    let slack = got
        .iter()
        .find(|g| g.path == "/chat" && g.event == "Reverted")
        .unwrap();
    assert!(slack.body["text"].as_str().unwrap().contains(&link));
    assert!(slack.body["blocks"].is_array());
    let ce = got
        .iter()
        .find(|g| g.path == "/ce" && g.event == "Reverted")
        .unwrap();
    assert_eq!(ce.body["specversion"], "1.0");
    assert_eq!(ce.body["id"], json!(revert.key));
    println!("EXAMPLE revert (webhook): {}", revert.body);
    println!("EXAMPLE revert (slack): {}", slack.body);
    // The record of what was delivered lives in the cluster, owned by the SafeDeployment.
    let record = ns
        .api::<ConfigMap>()
        .get("web.safedeploy-notifications")
        .await
        .expect("record");
    assert!(record.data.unwrap_or_default()["delivered"].contains(&revert.key));
}

/// Applies a crashing v2 over a stable v1 and returns the time from apply to `Degraded`.
async fn crash_revert_latency(ns: &TestNamespace, name: &str) -> Duration {
    let v1 = safe_deployment(name, 2, "registry.local/app:v1", Fault::None, hold_steps());
    operator::apply_stable(ns, &v1).await;
    let v2 = safe_deployment(name, 2, "registry.local/app:v2", Fault::Crash, hold_steps());
    let started = Instant::now();
    apply(ns, &v2).await.expect("apply the crashing revision");
    wait_status(
        ns,
        name,
        Duration::from_secs(60),
        "the crash to be reverted",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    started.elapsed()
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_hanging_receiver_does_not_delay_a_revert_and_a_down_one_gets_it_when_back() {
    let (ns, _operator) = setup("notify-hang").await;
    // Without notifications.
    let without = crash_revert_latency(&ns, "plain").await;
    // With a receiver that hangs on every request, and one that is down (nothing listens).
    let hanging = Receiver::default();
    hanging.hang.store(true, Ordering::SeqCst);
    let hang_addr = common::serve(hanging.router()).await;
    let down_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    receiver_secret(&ns, "hang", &format!("http://{hang_addr}/hang")).await;
    receiver_secret(&ns, "down", &format!("http://127.0.0.1:{down_port}/down")).await;
    // And one that refuses every notification (a 400: retrying would not help).
    let refusing = Receiver::default();
    refusing.refuse.store(true, Ordering::SeqCst);
    let refuse_addr = common::serve(refusing.router()).await;
    receiver_secret(&ns, "refuse", &format!("http://{refuse_addr}/refuse")).await;
    let sinks = json!([
        {"name": "hang", "type": "Webhook", "secretName": "hang"},
        {"name": "down", "type": "Webhook", "secretName": "down"},
        {"name": "refuse", "type": "Webhook", "secretName": "refuse"},
    ]);
    policy_with(&ns, policy(sinks, json!({})), "notifications").await;
    let with = crash_revert_latency(&ns, "hung").await;
    println!(
        "MEASURED revert latency (apply of a crashing revision to Degraded): {} ms without notifications, {} ms with a hanging and a down receiver",
        without.as_millis(),
        with.as_millis()
    );
    assert!(
        *hanging.hung.lock().unwrap() > 0,
        "the hanging receiver was asked"
    );
    // The hang is 60 s per request: a revert that waited for it would take longer than this.
    assert!(
        with < Duration::from_secs(40),
        "the revert waited: {with:?}"
    );
    // The down receiver comes back on its port and gets the revert (at least once).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = Receiver::serve_on(down_port).await;
    let came_back = Instant::now();
    let revert = back
        .wait_for_of("/down", "Reverted", Some("hung"), Duration::from_secs(120))
        .await;
    println!(
        "MEASURED a receiver back after being down got the revert {} ms later",
        came_back.elapsed().as_millis()
    );
    assert_eq!(revert.body["event"], "Reverted");
    // The refusals are not dropped silently: each is a Warning Event on the SafeDeployment.
    let dropped = common::wait_until(
        Duration::from_secs(30),
        "a NotificationDropped event",
        || async {
            let events = operator::events_of(&ns, "NotificationDropped").await;
            Ok(events.into_iter().find(|e| {
                e.message
                    .as_deref()
                    .unwrap_or_default()
                    .contains("sink refuse")
            }))
        },
    )
    .await;
    let message = dropped.message.unwrap_or_default();
    assert!(message.contains("HTTP 400"), "{message}");
    assert!(refusing.got().is_empty());
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn an_operator_killed_mid_delivery_delivers_after_restart_without_repeats() {
    let (ns, operator) = setup("notify-kill").await;
    let receiver = Receiver::default();
    let addr = common::serve(receiver.router()).await;
    receiver_secret(&ns, "hook", &format!("http://{addr}/hook")).await;
    let sinks = json!([{"name": "hook", "type": "Webhook", "secretName": "hook"}]);
    policy_with(&ns, policy(sinks, json!({})), "notifications").await;
    apply_stable_web(&ns, 2, &hold_steps()).await;
    receiver
        .wait_for("/hook", "Promoted", Duration::from_secs(30))
        .await;
    // The receiver hangs: the next delivery (v2's start) is in flight when the operator dies.
    receiver.hang.store(true, Ordering::SeqCst);
    let v2 = safe_deployment("web", 2, "registry.local/app:v2", Fault::None, hold_steps());
    apply(&ns, &v2).await.expect("apply v2");
    common::wait_until(Duration::from_secs(30), "a delivery to hang", || async {
        Ok((*receiver.hung.lock().unwrap() > 0).then_some(()))
    })
    .await;
    operator.kill().await;
    receiver.hang.store(false, Ordering::SeqCst);
    let before = receiver.got();
    let _restarted = Operator::start(&ns.name).await;
    let started = receiver
        .wait_for("/hook", "RolloutStarted", Duration::from_secs(30))
        .await;
    let _ = started;
    receiver
        .wait_for("/hook", "Paused", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = receiver.got();
    assert!(
        repeats(&got, "/hook").is_empty(),
        "repeated: {:?}",
        repeats(&got, "/hook")
    );
    // v2's start arrived after the restart (it was never answered before).
    let v2_started = got
        .iter()
        .filter(|g| g.event == "RolloutStarted" && !before.iter().any(|b| b.key == g.key))
        .count();
    assert_eq!(v2_started, 1, "{got:?}");
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_blocked_revision_is_announced_with_its_reason() {
    let (ns, _operator) = setup("notify-block").await;
    let receiver = Receiver::default();
    let addr = common::serve(receiver.router()).await;
    receiver_secret(&ns, "hook", &format!("http://{addr}/hook")).await;
    let sinks = json!([{"name": "hook", "type": "Webhook", "secretName": "hook"}]);
    policy_with(&ns, policy(sinks.clone(), json!({})), "notifications").await;
    apply_stable_web(&ns, 2, &hold_steps()).await;
    // The policy now asks for five steps; v2 has two.
    policy_with(
        &ns,
        policy(sinks, json!({"requirements": {"minSteps": 5}})),
        "requirements",
    )
    .await;
    let v2 = safe_deployment("web", 2, "registry.local/app:v2", Fault::None, hold_steps());
    apply(&ns, &v2).await.expect("apply v2");
    let blocked = receiver
        .wait_for("/hook", "Blocked", Duration::from_secs(30))
        .await;
    let reason = blocked.body["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("RequirementNotMet"), "{}", blocked.body);
    assert!(
        verify(
            HMAC,
            blocked.signature.as_deref().unwrap_or_default(),
            &blocked.raw
        )
        .is_some()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(repeats(&receiver.got(), "/hook").is_empty());
}

/// A receiver down for longer than a round of attempts, while the rollout is at rest (no
/// reconcile offers its state again): later rounds, paced by the notifier itself, keep trying,
/// and the receiver gets what it missed once it is back, once.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_receiver_down_past_a_round_gets_what_it_missed_from_later_rounds() {
    let (ns, operator) = setup("notify-rounds").await;
    let down_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    receiver_secret(&ns, "down", &format!("http://127.0.0.1:{down_port}/down")).await;
    let sinks = json!([{"name": "down", "type": "Webhook", "secretName": "down"}]);
    policy_with(&ns, policy(sinks, json!({})), "notifications").await;
    let down_since = Instant::now();
    apply_stable_web(&ns, 2, &hold_steps()).await;
    // A round gave up, and the notifier (not a reconcile) offered the state again. Each round
    // that fails doubles the pause before that offer (10 s, 20 s, ...), and on busy cores the
    // stable revision's pods come up across several rounds, each started at once by a
    // reconcile's offer: four of them put the notifier's own offer 80 s after the fourth.
    common::wait_until(
        Duration::from_secs(240),
        "a round offered by the notifier after a failed one",
        || async {
            let log = operator.log();
            Ok(log
                .contains("notifications offered again after a failed round")
                .then_some(()))
        },
    )
    .await;
    let back = Receiver::serve_on(down_port).await;
    let came_back = Instant::now();
    back.wait_for("/down", "Promoted", Duration::from_secs(120))
        .await;
    println!(
        "MEASURED a receiver down for {} s got what it missed {} ms after it came back",
        came_back.duration_since(down_since).as_secs(),
        came_back.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        repeats(&back.got(), "/down").is_empty(),
        "repeated: {:?}",
        repeats(&back.got(), "/down")
    );
    assert!(
        operator
            .log()
            .contains("notification not delivered; tried again in a later round"),
        "a round failed first"
    );
}
