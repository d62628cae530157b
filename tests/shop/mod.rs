//! The fixture of the coupled-components tests: a three-component SafeDeployment `shop`
//! (gateway, api, worker) whose templates read the ConfigMap `app-config` (a volume and an
//! environment variable) and the worker the Secret `db` (envFrom), helpers to deploy its
//! revisions and inspect their ReplicaSets and configuration copies, and the lockstep watch.
//!
//! The lockstep invariant is checked at every state a watch of the ReplicaSets and the
//! SafeDeployment observes: once any component runs only the new revision, every component's
//! new ReplicaSet has its full size (and the status never names a new stable revision that is
//! not at full size everywhere).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{self, TestNamespace, wait_until};
use crate::operator::{self, apply, wait_status};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use safedeploy::api::labels::{LABEL_CONFIG_COPY, LABEL_ORIGINAL};
use safedeploy::api::{Phase, SafeDeployment};
use serde_json::{Value, json};

pub const NAME: &str = "shop";
/// Components and their replicas.
pub const COMPONENTS: [(&str, i32); 3] = [("gateway", 2), ("api", 2), ("worker", 1)];
pub const REVISION_LABEL: &str = "safedeploy.dev/revision";
pub const COMPONENT_LABEL: &str = "safedeploy.dev/component";

/// What differs between the revisions a test deploys.
pub struct Version<'a> {
    /// Image tag of every component.
    pub tag: &'a str,
    /// The component whose pods crash-loop.
    pub crash: Option<&'a str>,
    /// Extra environment variables of the api container.
    pub api_env: Vec<Value>,
}

impl<'a> Version<'a> {
    pub fn new(tag: &'a str) -> Self {
        Self {
            tag,
            crash: None,
            api_env: Vec::new(),
        }
    }
}

pub fn manifest(version: &Version<'_>, steps: Value, history_limit: Option<i32>) -> Value {
    let components: Vec<Value> = COMPONENTS
        .iter()
        .map(|(component, replicas)| {
            let mut annotations = serde_json::Map::new();
            if version.crash == Some(*component) {
                annotations.insert(common::FAULT_ANNOTATION.into(), json!("crash"));
            }
            let mut env = vec![json!({"name": "GREETING", "valueFrom":
                {"configMapKeyRef": {"name": "app-config", "key": "GREETING"}}})];
            if *component == "api" {
                env.extend(version.api_env.clone());
            }
            let mut container = json!({
                "name": "app",
                "image": format!("registry.local/{component}:{}", version.tag),
                "env": env,
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
            });
            if *component == "worker" {
                container["envFrom"] = json!([{"secretRef": {"name": "db"}}]);
            }
            json!({
                "name": component,
                "replicas": replicas,
                "template": {
                    "metadata": {"labels": {"app": NAME, "tier": component}, "annotations": annotations},
                    "spec": {
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
                    },
                },
            })
        })
        .collect();
    let mut spec = json!({
        "selector": {"matchLabels": {"app": NAME}},
        "minReadySeconds": 1,
        "components": components,
        "strategy": {"canary": {"steps": steps}},
    });
    if let Some(limit) = history_limit {
        spec["revisionHistoryLimit"] = json!(limit);
    }
    json!({
        "apiVersion": "safedeploy.dev/v1alpha1",
        "kind": "SafeDeployment",
        "metadata": {"name": NAME},
        "spec": spec,
    })
}

/// Writes `app-config` (server-side apply as the user: keys left out are removed).
pub async fn put_config(ns: &TestNamespace, data: &[(&str, &str)]) {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app-config"}, "data": data});
    ns.api::<ConfigMap>()
        .patch(
            "app-config",
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(&cm),
        )
        .await
        .expect("apply app-config");
}

/// What `app-config` itself holds now (not a copy).
pub async fn original_config(ns: &TestNamespace) -> BTreeMap<String, String> {
    let original = ns.api::<ConfigMap>().get("app-config").await;
    original.expect("get app-config").data.unwrap_or_default()
}

pub async fn put_secret(ns: &TestNamespace, password: &str) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db"}, "stringData": {"PASSWORD": password}});
    ns.api::<Secret>()
        .patch(
            "db",
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("apply db");
}

pub async fn deploy(ns: &TestNamespace, version: &Version<'_>, steps: Value, limit: Option<i32>) {
    apply(ns, &manifest(version, steps, limit))
        .await
        .expect("apply the SafeDeployment");
}

pub fn rs_name(component: &str, revision: &str) -> String {
    format!("{NAME}-{component}-{revision}")
}

/// `spec.replicas` of every component's ReplicaSet of `revision` (0 when it does not exist).
pub async fn sizes(ns: &TestNamespace, revision: &str) -> Vec<i32> {
    let api: Api<ReplicaSet> = ns.api();
    let mut out = Vec::new();
    for (component, _) in COMPONENTS {
        let rs = api
            .get_opt(&rs_name(component, revision))
            .await
            .expect("get");
        out.push(rs.and_then(|rs| rs.spec?.replicas).unwrap_or(0));
    }
    out
}

/// Waits until every component's ReplicaSet of `revision` has `spec.replicas` = `expected`.
pub async fn wait_sizes(ns: &TestNamespace, revision: &str, expected: Vec<i32>, what: &str) {
    wait_until(Duration::from_secs(30), what, || {
        let expected = expected.clone();
        async move { Ok((sizes(ns, revision).await == expected).then_some(())) }
    })
    .await
}

pub fn full() -> Vec<i32> {
    COMPONENTS.iter().map(|c| c.1).collect()
}

/// The ConfigMap the `config` volume of a pod spec mounts, and the one its GREETING comes from.
pub fn config_refs(pod: &PodSpec) -> (String, String) {
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "config")
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let env = pod.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "GREETING")
        .and_then(|e| e.value_from.as_ref()?.config_map_key_ref.as_ref())
        .map(|r| r.name.clone())
        .unwrap_or_default();
    (volume, env)
}

/// The copy of `app-config` that the ReplicaSets of `revision` mount (the same for all three
/// components, checked), with its content.
pub async fn mounted_config(
    ns: &TestNamespace,
    revision: &str,
) -> (String, BTreeMap<String, String>) {
    let api: Api<ReplicaSet> = ns.api();
    let mut names = BTreeSet::new();
    for (component, _) in COMPONENTS {
        let rs = api
            .get(&rs_name(component, revision))
            .await
            .expect("ReplicaSet");
        let pod = rs.spec.and_then(|s| s.template?.spec).expect("template");
        let (volume, env) = config_refs(&pod);
        assert_eq!(volume, env, "volume and env read the same copy");
        names.insert(volume);
    }
    assert_eq!(names.len(), 1, "one copy for the revision: {names:?}");
    let copy = names.pop_first().unwrap_or_default();
    assert!(
        copy.starts_with("app-config-") && copy.len() == "app-config-".len() + 10,
        "a content-named copy, not the original: {copy}"
    );
    let cm = ns
        .api::<ConfigMap>()
        .get(&copy)
        .await
        .expect("the copy exists");
    assert_eq!(cm.immutable, Some(true), "{copy} is immutable");
    let labels = cm.labels();
    assert_eq!(
        labels.get(LABEL_CONFIG_COPY).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        labels.get(LABEL_ORIGINAL).map(String::as_str),
        Some("app-config")
    );
    (copy, cm.data.unwrap_or_default())
}

/// Waits until the revision's pods are all running (not terminating) and checks that each
/// mounts `copy`.
pub async fn pods_mount(ns: &TestNamespace, revision: &str, copy: &str) {
    let api: Api<Pod> = ns.api();
    let total: usize = COMPONENTS.iter().map(|c| c.1 as usize).sum();
    let selector = format!("{REVISION_LABEL}={revision}");
    let pods = wait_until(Duration::from_secs(30), "every pod of the revision", || {
        let api = api.clone();
        let selector = selector.clone();
        async move {
            let pods: Vec<Pod> = api
                .list(&ListParams::default().labels(&selector))
                .await?
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            Ok((pods.len() == total).then_some(pods))
        }
    })
    .await;
    for pod in pods {
        let spec = pod.spec.clone().expect("pod spec");
        assert_eq!(
            config_refs(&spec),
            (copy.to_string(), copy.to_string()),
            "pod {} mounts the revision's copy",
            pod.name_any()
        );
    }
}

pub async fn establish(ns: &TestNamespace, steps: Value, limit: Option<i32>) -> String {
    put_config(ns, &[("GREETING", "hello-v1")]).await;
    put_secret(ns, "s3cret-v1").await;
    let status = operator::apply_stable(ns, &manifest(&Version::new("v1"), steps, limit)).await;
    status.stable_revision.expect("stable revision")
}

// ----- the lockstep watch ------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct RsState {
    pub component: String,
    pub revision: String,
    pub replicas: i32,
}

/// What the watch saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// Events checked.
    pub events: usize,
    /// Invariant violations, with the state they were seen in.
    pub violations: Vec<String>,
    /// Revisions of every ReplicaSet and pod seen.
    pub revisions: BTreeSet<String>,
    /// The most replicas each (component, revision) ReplicaSet had.
    pub peak: BTreeMap<(String, String), i32>,
}

/// The lockstep violations of one observed state: some component runs only revision R (it has a
/// ReplicaSet of another revision, at zero) while a component's R ReplicaSet is not at full size;
/// or (with `check_status`) the status names a stable revision other than `old` that is not at
/// full size everywhere.
pub fn violations(
    state: &BTreeMap<String, RsState>,
    stable: Option<&str>,
    old: &str,
    check_status: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let size = |revision: &str, component: &str| {
        state
            .values()
            .find(|r| r.revision == revision && r.component == component)
            .map_or(0, |r| r.replicas)
    };
    let revisions: BTreeSet<&str> = state.values().map(|r| r.revision.as_str()).collect();
    for revision in revisions {
        let switched: Vec<&str> = COMPONENTS
            .iter()
            .map(|c| c.0)
            .filter(|component| {
                let of_c: Vec<&RsState> = state
                    .values()
                    .filter(|r| r.component == *component)
                    .collect();
                let on = of_c
                    .iter()
                    .any(|r| r.revision == revision && r.replicas > 0);
                let others: Vec<&&RsState> =
                    of_c.iter().filter(|r| r.revision != revision).collect();
                on && !others.is_empty() && others.iter().all(|r| r.replicas == 0)
            })
            .collect();
        let lagging: Vec<&str> = COMPONENTS
            .iter()
            .filter(|(component, replicas)| size(revision, component) != *replicas)
            .map(|c| c.0)
            .collect();
        if !switched.is_empty() && !lagging.is_empty() {
            out.push(format!(
                "{switched:?} run only {revision} while {lagging:?} are not fully on it"
            ));
        }
    }
    if check_status && let Some(stable) = stable.filter(|s| *s != old) {
        let lagging: Vec<&str> = COMPONENTS
            .iter()
            .filter(|(component, replicas)| size(stable, component) != *replicas)
            .map(|c| c.0)
            .collect();
        if !lagging.is_empty() {
            out.push(format!(
                "status names {stable} stable while {lagging:?} are not at full size"
            ));
        }
    }
    out
}

pub struct LockstepWatch {
    pub stop: Arc<AtomicBool>,
    pub task: tokio::task::JoinHandle<Observed>,
}

pub enum Seen {
    ReplicaSet(Box<watcher::Event<ReplicaSet>>),
    Pod(Box<watcher::Event<Pod>>),
    Rollout(Box<watcher::Event<SafeDeployment>>),
}

/// Watches the namespace's ReplicaSets, pods and the SafeDeployment, and checks the lockstep
/// invariant after every event. `old` is the revision stable before the change under test.
pub async fn watch_lockstep(ns: &TestNamespace, old: &str, check_status: bool) -> LockstepWatch {
    let stop = Arc::new(AtomicBool::new(false));
    let rs_events = watcher(ns.api::<ReplicaSet>(), watcher::Config::default())
        .map(|e| e.map(|e| Seen::ReplicaSet(Box::new(e))))
        .boxed();
    let pod_events = watcher(ns.api::<Pod>(), watcher::Config::default())
        .map(|e| e.map(|e| Seen::Pod(Box::new(e))))
        .boxed();
    let sd_events = watcher(ns.api::<SafeDeployment>(), watcher::Config::default())
        .map(|e| e.map(|e| Seen::Rollout(Box::new(e))))
        .boxed();
    let mut events = futures::stream::select_all([rs_events, pod_events, sd_events]);
    let old = old.to_string();
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut observed = Observed::default();
            let mut state: BTreeMap<String, RsState> = BTreeMap::new();
            let mut stable: Option<String> = None;
            // States are checked once the initial lists of ReplicaSets and of the
            // SafeDeployment are complete (a half-listed state is no observed state).
            let (mut rs_listed, mut sd_listed) = (false, false);
            while !stop.load(Ordering::SeqCst) {
                let next = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
                let Ok(Some(Ok(seen))) = next else {
                    continue;
                };
                match seen {
                    Seen::ReplicaSet(event) => match *event {
                        watcher::Event::Apply(rs) | watcher::Event::InitApply(rs) => {
                            let labels = rs.labels();
                            let (Some(component), Some(revision)) =
                                (labels.get(COMPONENT_LABEL), labels.get(REVISION_LABEL))
                            else {
                                continue;
                            };
                            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                            observed.revisions.insert(revision.clone());
                            let peak = observed
                                .peak
                                .entry((component.clone(), revision.clone()))
                                .or_default();
                            *peak = (*peak).max(replicas);
                            state.insert(
                                rs.name_any(),
                                RsState {
                                    component: component.clone(),
                                    revision: revision.clone(),
                                    replicas,
                                },
                            );
                        }
                        watcher::Event::Delete(rs) => {
                            state.remove(&rs.name_any());
                        }
                        watcher::Event::InitDone => rs_listed = true,
                        watcher::Event::Init => continue,
                    },
                    Seen::Pod(event) => {
                        if let watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) = *event
                            && let Some(revision) = pod.labels().get(REVISION_LABEL)
                        {
                            observed.revisions.insert(revision.clone());
                        }
                        continue;
                    }
                    Seen::Rollout(event) => match *event {
                        watcher::Event::Apply(sd) | watcher::Event::InitApply(sd) => {
                            stable = sd.status.and_then(|s| s.stable_revision);
                        }
                        watcher::Event::InitDone => sd_listed = true,
                        _ => continue,
                    },
                }
                if !(rs_listed && sd_listed) {
                    continue;
                }
                observed.events += 1;
                for violation in violations(&state, stable.as_deref(), &old, check_status) {
                    if observed.violations.len() < 20 {
                        observed
                            .violations
                            .push(format!("{violation}; state: {:?}", state.values()));
                    }
                }
            }
            observed
        })
    };
    // Let the watches list what exists before the change under test starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    LockstepWatch { stop, task }
}

impl LockstepWatch {
    pub async fn finish(self) -> Observed {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.stop.store(true, Ordering::SeqCst);
        let observed = self.task.await.expect("watch task");
        assert!(
            observed.violations.is_empty(),
            "lockstep violated:\n{}",
            observed.violations.join("\n")
        );
        observed
    }
}

/// Waits for a promotion away from `from`; returns the new stable revision and how long after
/// `since` its canary was first seen.
pub async fn promoted_from(
    ns: &TestNamespace,
    from: &str,
    since: std::time::Instant,
    what: &str,
) -> (String, Duration) {
    let canary_seen = wait_status(ns, NAME, Duration::from_secs(30), what, |s| {
        s.canary_revision.is_some() || s.stable_revision.as_deref() != Some(from)
    })
    .await;
    let started = since.elapsed();
    let status = if canary_seen.phase == Phase::Healthy {
        canary_seen
    } else {
        operator::wait_promoted(ns, NAME, Some(from), what).await
    };
    (status.stable_revision.expect("stable"), started)
}

/// `manifest` with every image pinned by a digest derived from the component and `tag`.
pub fn pinned(mut manifest: Value, tag: &str) -> Value {
    for component in manifest["spec"]["components"].as_array_mut().expect("list") {
        let name = component["name"].as_str().unwrap_or_default().to_string();
        let sum = ring::digest::digest(&ring::digest::SHA256, format!("{name}{tag}").as_bytes());
        component["template"]["spec"]["containers"][0]["image"] = json!(format!(
            "registry.local/{name}@sha256:{}",
            hex::encode(sum.as_ref())
        ));
    }
    manifest
}
