//! `safedeploy dashboard` against the real API server (the local control plane) and a real
//! browser:
//!
//! * RBAC: the server acts as its user. A user who may read but not patch a SafeDeployment gets
//!   no action button and a 403 (the API server's own refusal) from the action endpoint; a user
//!   who may patch gets the buttons and can promote, and the history names them. Both users are
//!   ServiceAccounts, impersonated by the test's admin kubeconfig.
//! * Browser: Debian's Chromium (driven by playwright-core, `dashboard/test/browser.mjs`) opens a
//!   rollout's page before the rollout starts; the rollout goes through its steps, its canary
//!   then crash-loops and the operator reverts it; the page, updated only by server-sent events,
//!   must show each step and the revert. Skipped, saying why, without Chromium or
//!   `dashboard/node_modules` (`e2e/lib/chromium.sh` installs both).

mod common;
mod operator;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{Fault, TestNamespace};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use operator::{apply, apply_stable, safe_deployment, setup, wait_status};
use safedeploy::api::Phase;
use safedeploy::cli::dashboard::{Scope, server};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Steps that end in a pause until promoted, so a test can act on a waiting canary.
fn steps() -> Value {
    json!([{"setWeight": 25}, {"pause": {"duration": "1s"}}, {"setWeight": 50}, {"pause": {}}])
}

/// A client of the admin kubeconfig impersonating ServiceAccount `namespace/account`.
async fn client_as(namespace: &str, account: &str) -> Client {
    let mut config = Config::infer().await.expect("kubeconfig");
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{account}"));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".into(),
    ]);
    Client::try_from(config).expect("impersonating client")
}

/// ServiceAccount `account` bound to a Role with `verbs` on SafeDeployments (and read access
/// to Events, as a viewer has).
async fn account_with(ns: &TestNamespace, account: &str, verbs: &[&str]) {
    let accounts: Api<ServiceAccount> = ns.api();
    let roles: Api<Role> = ns.api();
    let bindings: Api<RoleBinding> = ns.api();
    let params = PostParams::default();
    accounts
        .create(
            &params,
            &serde_json::from_value(json!({"metadata": {"name": account}})).expect("account"),
        )
        .await
        .expect("create the ServiceAccount");
    let role = json!({
        "metadata": {"name": account},
        "rules": [
            {"apiGroups": ["safedeploy.dev"], "resources": ["safedeployments"], "verbs": verbs},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        ],
    });
    roles
        .create(&params, &serde_json::from_value(role).expect("role"))
        .await
        .expect("create the Role");
    let binding = json!({
        "metadata": {"name": account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns.name}],
    });
    bindings
        .create(&params, &serde_json::from_value(binding).expect("binding"))
        .await
        .expect("create the RoleBinding");
}

/// The dashboard's routes served in this process with `client` on a random loopback port.
async fn serve_dashboard(client: Client, namespace: &str) -> SocketAddr {
    serve_dashboard_with(client, namespace, false).await
}

/// [`serve_dashboard`], read-only if `read_only`.
async fn serve_dashboard_with(client: Client, namespace: &str, read_only: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let dashboard = server::Dashboard::new(
        client,
        Scope::Namespace(namespace.into()),
        address,
        vec![],
        read_only,
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, server::router(dashboard)).await;
    });
    address
}

async fn get_json(url: &str) -> Value {
    let response = common::http().get(url).send().await.expect("GET");
    assert!(response.status().is_success(), "GET {url}: {response:?}");
    response.json().await.expect("JSON")
}

async fn post_action(base: &str, namespace: &str, action: &str) -> (u16, Value) {
    let url = format!("{base}/_/api/rollouts/{namespace}/web/{action}");
    let response = common::http()
        .post(&url)
        .header(server::ACTION_HEADER, "1")
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn only_a_user_who_may_patch_gets_actions_and_a_promotion_acts_as_that_user() {
    let (ns, _operator) = setup("dash-rbac").await;
    let v1 = safe_deployment("web", 2, "registry.local/app:v1", Fault::None, steps());
    apply_stable(&ns, &v1).await;
    let v2 = safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps());
    apply(&ns, &v2).await.expect("apply v2");
    wait_status(&ns, "web", Duration::from_secs(60), "the pause", |s| {
        s.phase == Phase::Paused && s.current_step_index == Some(3)
    })
    .await;

    account_with(&ns, "viewer", &["get", "list", "watch"]).await;
    account_with(&ns, "releaser", &["get", "list", "watch", "patch"]).await;
    let viewer = format!(
        "http://{}",
        serve_dashboard(client_as(&ns.name, "viewer").await, &ns.name).await
    );
    let releaser = format!(
        "http://{}",
        serve_dashboard(client_as(&ns.name, "releaser").await, &ns.name).await
    );

    // The viewer sees the rollout, and no action.
    let page = get_json(&format!("{viewer}/_/api/rollouts/{}/web", ns.name)).await;
    assert_eq!(page["summary"]["phase"], "Paused", "{page:#}");
    assert_eq!(page["mayAct"], false, "{page:#}");
    assert_eq!(
        page["actions"],
        json!({"promote": false, "abort": false, "retry": false, "rollback": false})
    );
    let list = get_json(&format!("{viewer}/_/api/rollouts")).await;
    assert_eq!(list["rollouts"][0]["name"], "web", "{list:#}");
    // Asking anyway: the API server refuses the viewer's patch, and the dashboard says so.
    let (status, body) = post_action(&viewer, &ns.name, "promote").await;
    println!("viewer's promote: {status} {body}");
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("viewer"),
        "the refusal names the user: {body}"
    );

    // The guards: no action without the header, nothing for a foreign Host.
    let response = common::http()
        .post(format!("{releaser}/_/api/rollouts/{}/web/promote", ns.name))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 403, "no action header");
    let response = common::http()
        .get(format!("{releaser}/_/api/rollouts"))
        .header("host", "attacker.example:80")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 421, "a rebound Host is refused");

    // A read-only dashboard (the chart's in-cluster one) offers the releaser nothing and
    // refuses the releaser's request itself, before the API server is asked.
    let read_only = format!(
        "http://{}",
        serve_dashboard_with(client_as(&ns.name, "releaser").await, &ns.name, true).await
    );
    let page = get_json(&format!("{read_only}/_/api/rollouts/{}/web", ns.name)).await;
    assert_eq!(page["mayAct"], false, "{page:#}");
    assert_eq!(page["actions"]["promote"], false, "{page:#}");
    let (status, body) = post_action(&read_only, &ns.name, "promote").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("read-only"),
        "{body}"
    );
    assert_eq!(
        operator::status_now(&ns, "web").await.phase,
        Phase::Paused,
        "nothing was promoted"
    );

    // The releaser gets the buttons, and the promotion is carried out under their name.
    let page = get_json(&format!("{releaser}/_/api/rollouts/{}/web", ns.name)).await;
    assert_eq!(page["mayAct"], true, "{page:#}");
    assert_eq!(page["actions"]["promote"], true, "{page:#}");
    assert_eq!(page["actions"]["abort"], true, "{page:#}");
    let (status, body) = post_action(&releaser, &ns.name, "promote").await;
    assert_eq!(status, 202, "{body}");
    let status = operator::wait_promoted(&ns, "web", None, "the promotion").await;
    let request = status
        .history
        .iter()
        .find(|e| e.outcome == "PromoteRequested")
        .expect("the promotion in the history");
    let actor = request.actor.clone().unwrap_or_default();
    println!("promotion recorded as by {actor}");
    assert!(
        actor.contains(&format!("system:serviceaccount:{}:releaser", ns.name)),
        "{request:#?}"
    );
    // The viewer's page shows who did it.
    let page = get_json(&format!("{viewer}/_/api/rollouts/{}/web", ns.name)).await;
    let by_releaser = page["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .any(|e| e["actor"].as_str().is_some_and(|a| a.contains("releaser")));
    assert!(by_releaser, "{:#}", page["timeline"]);
}

/// The dashboard's front end directory.
fn front_end() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboard")
}

/// Why the browser test cannot run here, if it cannot.
fn browser_missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        return Some(format!("no Chromium at {chromium}"));
    }
    if !front_end().join("node_modules/playwright-core").exists() {
        return Some("no dashboard/node_modules/playwright-core".into());
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("no node on PATH".into());
    }
    None
}

/// Starts `safedeploy dashboard -n <namespace>` on a random port; returns it and its base URL.
async fn start_dashboard_binary(namespace: &str) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_safedeploy"))
        .args(["dashboard", "-n", namespace, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start safedeploy dashboard");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the dashboard prints its address")
        .expect("read")
        .expect("a line");
    let url = line
        .split_whitespace()
        .last()
        .expect("an address")
        .trim_end_matches('/')
        .to_string();
    (child, url)
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh) and Chromium (e2e/lib/chromium.sh)"]
async fn the_browser_shows_each_step_and_the_revert_as_they_happen() {
    if let Some(why) = browser_missing() {
        println!("SKIPPED: {why}; run e2e/lib/chromium.sh to install Chromium and playwright-core");
        return;
    }
    let (ns, _operator) = setup("dash-ui").await;
    let mut v1 = safe_deployment("web", 4, "registry.local/app:v1", Fault::None, steps());
    v1["spec"]["analyses"] = json!([{
        "name": "pods", "interval": "1s", "count": 3,
        "metrics": [
            {"name": "restarts", "provider": {"kubernetes": {"signal": "restarts"}},
             "thresholds": {"target": 0, "acceptable": 0, "critical": 1}},
            {"name": "startup-latency", "provider": {"kubernetes": {"signal": "startupLatencySeconds"}},
             "thresholds": {"target": 5, "acceptable": 10, "critical": 30}},
        ],
    }]);
    v1["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 25}, {"analysis": {"template": "pods"}}, {"setWeight": 50}, {"pause": {}}
    ]);
    apply_stable(&ns, &v1).await;
    let (_dashboard, base) = start_dashboard_binary(&ns.name).await;

    let screenshots = match std::env::var("UPDATE_SCREENSHOTS") {
        Ok(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img"),
        Err(_) => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    };
    std::fs::create_dir_all(&screenshots).expect("screenshot directory");
    let mut browser = tokio::process::Command::new("node")
        .arg(front_end().join("test/browser.mjs"))
        .args([&format!("{base}/{}/web", ns.name), "Reverted"])
        .arg(&screenshots)
        .current_dir(front_end())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut lines = BufReader::new(browser.stdout.take().expect("stdout")).lines();
    let loaded = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the page loads")
        .expect("read");
    assert_eq!(loaded.as_deref(), Some("LOADED"));

    // The page is open; now the rollout happens, and only the watch tells the page.
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.local/app:v2");
    apply(&ns, &v2).await.expect("apply v2");
    let paused = wait_status(&ns, "web", Duration::from_secs(90), "the last pause", |s| {
        s.phase == Phase::Paused && s.current_step_index == Some(3)
    })
    .await;
    let canary = paused.canary_revision.expect("a canary");
    // The canary's pods start crash-looping (the kwok crash stage): the operator reverts.
    let pods: Api<Pod> = ns.api();
    let selector = format!("safedeploy.dev/revision={canary}");
    let crash = json!({"metadata": {"annotations": {common::FAULT_ANNOTATION: "crash"}}});
    for pod in pods
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("canary pods")
    {
        let name = pod.metadata.name.unwrap_or_default();
        pods.patch(&name, &PatchParams::default(), &Patch::Merge(&crash))
            .await
            .expect("annotate a canary pod");
    }
    let reverted = wait_status(&ns, "web", Duration::from_secs(90), "the revert", |s| {
        s.phase == Phase::Degraded
    })
    .await;

    let report = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read the browser's output") {
            if line.starts_with('{') {
                return line;
            }
        }
        panic!("the browser script ended without a report");
    })
    .await
    .expect("the browser's report within 60 s");
    let status = browser.wait().await.expect("node");
    assert!(status.success(), "the browser script failed: {status}");
    let report: Value = serde_json::from_str(&report).expect("report JSON");
    println!("browser report: {report:#}");
    let decided = reverted
        .history
        .iter()
        .rfind(|e| e.outcome == "Reverted")
        .and_then(|e| e.finished_at.as_deref()?.parse::<jiff::Timestamp>().ok());
    let seen = report["seenAt"]
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok());
    if let (Some(decided), Some(seen)) = (decided, seen) {
        println!(
            "MEASURED revert decision to the open page showing it (watch, SSE, redraw): {} ms",
            seen.as_millisecond() - decided.as_millisecond()
        );
    }
    let timeline: Vec<String> = report["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect();
    for step in 1..=3 {
        let completed = format!("step {step}/4");
        assert!(
            timeline
                .iter()
                .any(|e| e.contains("StepCompleted") && e.contains(&completed)),
            "the timeline shows {completed} completed: {timeline:#?}"
        );
    }
    assert!(
        timeline.iter().any(|e| e.contains("Reverted revision")),
        "the timeline shows the revert: {timeline:#?}"
    );
    assert!(
        timeline
            .iter()
            .any(|e| e.contains("analysis pods (step 2) Successful")),
        "the timeline shows the analysis run: {timeline:#?}"
    );
    assert_eq!(report["phase"], "Degraded");
    assert!(
        report["plots"].as_u64().unwrap_or(0) >= 2,
        "a plot per metric"
    );
    assert_eq!(report["errors"], json!([]), "no script error in the page");
    assert!(
        report["rows"][0]
            .as_str()
            .is_some_and(|r| r.contains("web") && r.contains("Degraded")),
        "the list shows the rollout: {}",
        report["rows"]
    );
}
