//! Integration tests of coupled components and versioned configuration (issue 6) on the local
//! control plane: a three-component SafeDeployment (gateway, api, worker) whose templates read
//! the ConfigMap `app-config` (a volume and an environment variable) and the worker the Secret
//! `db` (envFrom).
//!
//! * a good revision (new images and new configuration) promotes all three components, their
//!   pods mount immutable content-named copies, and a revision's copies are garbage-collected
//!   with it;
//! * a regression in one component reverts all three and their configuration;
//! * a revision that references a missing ConfigMap key never creates a pod, says which key is
//!   missing, and starts once the key exists;
//! * a rollback to an older revision brings back that revision's configuration;
//! * an edit of the referenced ConfigMap or Secret alone (no spec change) is a new revision,
//!   rolled out in lockstep; an edit that keeps the content starts nothing;
//! * a missing image pull Secret (or one without registry credentials) blocks, by name;
//! * an image not pinned by digest blocks unless the namespace's policy allows tags.
//!
//! The lockstep invariant is checked at every state a watch of the ReplicaSets and the
//! SafeDeployment observes: once any component runs only the new revision, every component's
//! new ReplicaSet has its full size (and the status never names a new stable revision that is
//! not at full size everywhere).

mod common;
mod operator;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestNamespace, wait_until};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use operator::{annotate, apply, condition, events_of, setup, wait_status};
use safedeploy::api::labels::{LABEL_CONFIG_COPY, LABEL_ORIGINAL};
use safedeploy::api::{Phase, SafeDeployment, SafeDeploymentStatus};
use serde_json::{Value, json};

const NAME: &str = "shop";
/// Components and their replicas.
const COMPONENTS: [(&str, i32); 3] = [("gateway", 2), ("api", 2), ("worker", 1)];
const REVISION_LABEL: &str = "safedeploy.dev/revision";
const COMPONENT_LABEL: &str = "safedeploy.dev/component";

/// What differs between the revisions a test deploys.
struct Version<'a> {
    /// Image tag of every component.
    tag: &'a str,
    /// The component whose pods crash-loop.
    crash: Option<&'a str>,
    /// Extra environment variables of the api container.
    api_env: Vec<Value>,
}

impl<'a> Version<'a> {
    fn new(tag: &'a str) -> Self {
        Self {
            tag,
            crash: None,
            api_env: Vec::new(),
        }
    }
}

fn manifest(version: &Version<'_>, steps: Value, history_limit: Option<i32>) -> Value {
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
async fn put_config(ns: &TestNamespace, data: &[(&str, &str)]) {
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

async fn put_secret(ns: &TestNamespace, password: &str) {
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

async fn deploy(ns: &TestNamespace, version: &Version<'_>, steps: Value, limit: Option<i32>) {
    apply(ns, &manifest(version, steps, limit))
        .await
        .expect("apply the SafeDeployment");
}

fn rs_name(component: &str, revision: &str) -> String {
    format!("{NAME}-{component}-{revision}")
}

/// `spec.replicas` of every component's ReplicaSet of `revision` (0 when it does not exist).
async fn sizes(ns: &TestNamespace, revision: &str) -> Vec<i32> {
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

fn full() -> Vec<i32> {
    COMPONENTS.iter().map(|c| c.1).collect()
}

/// The ConfigMap the `config` volume of a pod spec mounts, and the one its GREETING comes from.
fn config_refs(pod: &PodSpec) -> (String, String) {
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
async fn mounted_config(ns: &TestNamespace, revision: &str) -> (String, BTreeMap<String, String>) {
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
async fn pods_mount(ns: &TestNamespace, revision: &str, copy: &str) {
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

async fn establish(ns: &TestNamespace, steps: Value, limit: Option<i32>) -> String {
    put_config(ns, &[("GREETING", "hello-v1")]).await;
    put_secret(ns, "s3cret-v1").await;
    let status = operator::apply_stable(ns, &manifest(&Version::new("v1"), steps, limit)).await;
    status.stable_revision.expect("stable revision")
}

// ----- the lockstep watch ------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RsState {
    component: String,
    revision: String,
    replicas: i32,
}

/// What the watch saw.
#[derive(Debug, Default)]
struct Observed {
    /// Events checked.
    events: usize,
    /// Invariant violations, with the state they were seen in.
    violations: Vec<String>,
    /// Revisions of every ReplicaSet and pod seen.
    revisions: BTreeSet<String>,
    /// The most replicas each (component, revision) ReplicaSet had.
    peak: BTreeMap<(String, String), i32>,
}

/// The lockstep violations of one observed state: some component runs only revision R (it has a
/// ReplicaSet of another revision, at zero) while a component's R ReplicaSet is not at full size;
/// or (with `check_status`) the status names a stable revision other than `old` that is not at
/// full size everywhere.
fn violations(
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

struct LockstepWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Observed>,
}

enum Seen {
    ReplicaSet(Box<watcher::Event<ReplicaSet>>),
    Pod(Box<watcher::Event<Pod>>),
    Rollout(Box<watcher::Event<SafeDeployment>>),
}

/// Watches the namespace's ReplicaSets, pods and the SafeDeployment, and checks the lockstep
/// invariant after every event. `old` is the revision stable before the change under test.
async fn watch_lockstep(ns: &TestNamespace, old: &str, check_status: bool) -> LockstepWatch {
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
    async fn finish(self) -> Observed {
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

#[test]
fn the_lockstep_check_flags_a_component_switched_alone() {
    let rs = |component: &str, revision: &str, replicas: i32| {
        (
            format!("{component}-{revision}"),
            RsState {
                component: component.into(),
                revision: revision.into(),
                replicas,
            },
        )
    };
    // A canary: every component on both revisions.
    let canary: BTreeMap<_, _> = [
        rs("gateway", "old", 1),
        rs("gateway", "new", 1),
        rs("api", "old", 1),
        rs("api", "new", 1),
        rs("worker", "old", 1),
        rs("worker", "new", 1),
    ]
    .into();
    assert!(violations(&canary, Some("old"), "old", true).is_empty());
    // The gateway alone switched: flagged.
    let mut alone = canary.clone();
    alone.insert(rs("gateway", "old", 0).0, rs("gateway", "old", 0).1);
    alone.insert(rs("gateway", "new", 2).0, rs("gateway", "new", 2).1);
    assert_eq!(violations(&alone, Some("old"), "old", true).len(), 1);
    // All new ReplicaSets at full size, the old ones going: fine.
    let switching: BTreeMap<_, _> = [
        rs("gateway", "old", 0),
        rs("gateway", "new", 2),
        rs("api", "old", 1),
        rs("api", "new", 2),
        rs("worker", "old", 1),
        rs("worker", "new", 1),
    ]
    .into();
    assert!(violations(&switching, Some("new"), "old", true).is_empty());
    // The status naming a new stable that is not at full size: flagged.
    assert_eq!(violations(&canary, Some("new"), "old", true).len(), 1);
    assert!(violations(&canary, Some("new"), "old", false).is_empty());
}

// ----- the tests ---------------------------------------------------------------------------

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_good_revision_promotes_all_three_components_with_their_configuration() {
    let (ns, _operator) = setup("comp-good").await;
    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), Some(1)).await;
    assert_eq!(sizes(&ns, &v1).await, full());
    let (copy_v1, data_v1) = mounted_config(&ns, &v1).await;
    assert_eq!(
        data_v1.get("GREETING").map(String::as_str),
        Some("hello-v1")
    );
    pods_mount(&ns, &v1, &copy_v1).await;
    // The copy is owned by the ReplicaSets that mount it (garbage-collected with them).
    let owners: BTreeSet<String> = ns
        .api::<ConfigMap>()
        .get(&copy_v1)
        .await
        .expect("copy")
        .owner_references()
        .iter()
        .map(|o| o.name.clone())
        .collect();
    let expected: BTreeSet<String> = COMPONENTS.iter().map(|c| rs_name(c.0, &v1)).collect();
    assert_eq!(owners, expected);
    // The Secret is copied too, and the worker reads the copy.
    let worker = ns
        .api::<ReplicaSet>()
        .get(&rs_name("worker", &v1))
        .await
        .expect("worker");
    let secret_copy = worker
        .spec
        .and_then(|s| s.template?.spec)
        .and_then(|p| p.containers[0].env_from.clone())
        .and_then(|e| e[0].secret_ref.clone())
        .map(|s| s.name)
        .unwrap_or_default();
    assert!(secret_copy.starts_with("db-"), "{secret_copy}");
    let secret = ns.api::<Secret>().get(&secret_copy).await.expect("copy");
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(
        secret
            .data
            .unwrap_or_default()
            .get("PASSWORD")
            .map(|b| b.0.clone()),
        Some(b"s3cret-v1".to_vec())
    );

    // New images and new configuration: one revision.
    let watch = watch_lockstep(&ns, &v1, true).await;
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    deploy(&ns, &Version::new("v2"), steps.clone(), Some(1)).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(90),
        "v2 to be promoted",
        |s| s.phase == Phase::Healthy && s.stable_revision.as_deref() != Some(v1.as_str()),
    )
    .await;
    let observed = watch.finish().await;
    let v2 = status.stable_revision.clone().expect("stable");
    assert!(
        observed.events > 10,
        "the watch saw the rollout: {observed:?}"
    );
    for (component, _) in COMPONENTS {
        assert!(
            observed
                .peak
                .contains_key(&(component.to_string(), v2.clone())),
            "{component} rolled out"
        );
    }
    assert_eq!(sizes(&ns, &v2).await, full());
    assert_eq!(sizes(&ns, &v1).await, vec![0, 0, 0]);
    let (copy_v2, data_v2) = mounted_config(&ns, &v2).await;
    assert_ne!(copy_v2, copy_v1);
    assert_eq!(
        data_v2.get("GREETING").map(String::as_str),
        Some("hello-v2")
    );
    pods_mount(&ns, &v2, &copy_v2).await;
    assert_eq!(
        condition(&status, "Preflight"),
        Some(("True".into(), "Passed".into()))
    );
    assert_eq!(
        status.history.last().map(|e| e.outcome.as_str()),
        Some("Promoted")
    );

    // A third revision: with a history limit of 1, revision 1's ReplicaSets are deleted and
    // Kubernetes' garbage collector deletes their copy; revision 2's stays.
    put_config(&ns, &[("GREETING", "hello-v3")]).await;
    deploy(&ns, &Version::new("v3"), steps, Some(1)).await;
    wait_status(
        &ns,
        NAME,
        Duration::from_secs(90),
        "v3 to be promoted",
        |s| {
            s.phase == Phase::Healthy
                && s.stable_revision.as_deref() != Some(v1.as_str())
                && s.stable_revision.as_deref() != Some(v2.as_str())
        },
    )
    .await;
    let config_maps: Api<ConfigMap> = ns.api();
    wait_until(
        Duration::from_secs(60),
        "revision 1's copy to be garbage-collected",
        || {
            let config_maps = config_maps.clone();
            let copy = copy_v1.clone();
            async move { Ok(config_maps.get_opt(&copy).await?.is_none().then_some(())) }
        },
    )
    .await;
    let replica_sets: Api<ReplicaSet> = ns.api();
    for (component, _) in COMPONENTS {
        let gone = replica_sets.get_opt(&rs_name(component, &v1)).await;
        assert!(
            gone.expect("get").is_none(),
            "{component} of revision 1 deleted"
        );
    }
    // The Secret did not change: one copy, shared by the worker of every revision, kept while
    // any of them exists.
    let shared = ns
        .api::<Secret>()
        .get(&secret_copy)
        .await
        .expect("shared copy");
    let owners: BTreeSet<String> = shared
        .owner_references()
        .iter()
        .map(|o| o.name.clone())
        .collect();
    assert!(
        owners.contains(&rs_name("worker", &v2)) && owners.len() >= 2,
        "{owners:?}"
    );
    assert!(
        config_maps.get_opt(&copy_v2).await.expect("get").is_some(),
        "revision 2 is kept for rollback, with its configuration"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_regression_in_one_component_reverts_all_three_and_their_configuration() {
    let (ns, _operator) = setup("comp-revert").await;
    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "30s"}}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), None).await;
    let (copy_v1, _) = mounted_config(&ns, &v1).await;

    let watch = watch_lockstep(&ns, &v1, true).await;
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    let bad = Version {
        crash: Some("api"),
        ..Version::new("v2")
    };
    deploy(&ns, &bad, steps, None).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(60),
        "the regression to be reverted",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    // Wait for the cluster to settle at the reverted sizes while still watching.
    let v2 = status
        .history
        .last()
        .map(|e| e.hash.clone())
        .expect("entry");
    wait_until(Duration::from_secs(30), "every canary at zero", || {
        let ns = &ns;
        let v2 = v2.clone();
        async move { Ok((sizes(ns, &v2).await == vec![0, 0, 0]).then_some(())) }
    })
    .await;
    let observed = watch.finish().await;

    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    let entry = status.history.last().expect("history");
    assert_eq!(entry.outcome, "Reverted");
    assert!(status.rejected_revisions.contains(&v2));
    // All three canaries had started (lockstep), and all three were reverted.
    for (component, _) in COMPONENTS {
        assert!(
            observed
                .peak
                .get(&(component.to_string(), v2.clone()))
                .is_some_and(|p| *p > 0),
            "{component}'s canary started: {:?}",
            observed.peak
        );
    }
    assert_eq!(sizes(&ns, &v1).await, full());
    assert_eq!(sizes(&ns, &v2).await, vec![0, 0, 0]);
    // The configuration went back with the code: the running pods mount revision 1's copy,
    // which still holds the old content, although the ConfigMap now says hello-v2.
    let (copy, data) = mounted_config(&ns, &v1).await;
    assert_eq!(copy, copy_v1);
    assert_eq!(data.get("GREETING").map(String::as_str), Some("hello-v1"));
    pods_mount(&ns, &v1, &copy_v1).await;
    let (copy_v2, data_v2) = mounted_config(&ns, &v2).await;
    assert_ne!(copy_v2, copy_v1);
    assert_eq!(
        data_v2.get("GREETING").map(String::as_str),
        Some("hello-v2")
    );
    let original = ns.api::<ConfigMap>().get("app-config").await.expect("cm");
    assert_eq!(
        original
            .data
            .unwrap_or_default()
            .get("GREETING")
            .map(String::as_str),
        Some("hello-v2")
    );
    assert_eq!(events_of(&ns, "RolloutReverted").await.len(), 1);
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_revision_missing_a_config_map_key_never_creates_a_pod() {
    let (ns, _operator) = setup("comp-preflight").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), None).await;

    let watch = watch_lockstep(&ns, &v1, true).await;
    let needs_key = Version {
        api_env: vec![json!({"name": "LOG_LEVEL", "valueFrom":
            {"configMapKeyRef": {"name": "app-config", "key": "LOG_LEVEL"}}})],
        ..Version::new("v2")
    };
    deploy(&ns, &needs_key, steps, None).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "the revision to be blocked",
        |s| s.phase == Phase::Blocked,
    )
    .await;
    let missing = r#"ConfigMap "app-config" has no key "LOG_LEVEL" (component api, container "app", env LOG_LEVEL)"#;
    let message = status.message.clone().unwrap_or_default();
    assert!(message.contains(missing), "status message: {message}");
    assert_eq!(
        condition(&status, "Preflight"),
        Some(("False".into(), "MissingReferences".into()))
    );
    let preflight = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Preflight")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert_eq!(preflight, missing, "exactly what is missing, nothing else");
    assert_eq!(
        condition(&status, "Stalled"),
        Some(("True".into(), "PreflightFailed".into()))
    );
    // Events are recorded just after the status write: give it a moment under load.
    let mut blocked = events_of(&ns, "RolloutBlocked").await;
    for _ in 0..40 {
        if !blocked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        blocked = events_of(&ns, "RolloutBlocked").await;
    }
    assert_eq!(blocked.len(), 1);
    assert!(
        blocked[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains(missing)
    );
    let blocked_revision = status
        .history
        .last()
        .map(|e| e.hash.clone())
        .expect("entry");
    assert_ne!(blocked_revision, v1);

    // Stays blocked (checked again every 10 s): no ReplicaSet, no pod of another revision.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let observed = watch.finish().await;
    assert_eq!(
        observed.revisions,
        BTreeSet::from([v1.clone()]),
        "only the stable revision has ReplicaSets or pods"
    );
    let api: Api<SafeDeployment> = ns.api();
    let now: SafeDeploymentStatus = api.get(NAME).await.expect("sd").status.expect("status");
    assert_eq!(now.phase, Phase::Blocked);
    assert_eq!(now.stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(
        sizes(&ns, &v1).await,
        full(),
        "the stable revision keeps running"
    );

    // Once the key exists, the next check lets the rollout go (the revision now includes the
    // new content, so it is another revision than the blocked one).
    put_config(&ns, &[("GREETING", "hello-v1"), ("LOG_LEVEL", "debug")]).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(90),
        "the fixed revision to be promoted",
        |s| s.phase == Phase::Healthy && s.stable_revision.as_deref() != Some(v1.as_str()),
    )
    .await;
    let v2 = status.stable_revision.expect("stable");
    assert_ne!(v2, blocked_revision);
    let (_, data) = mounted_config(&ns, &v2).await;
    assert_eq!(data.get("LOG_LEVEL").map(String::as_str), Some("debug"));
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn rolling_back_restores_the_configuration_of_that_revision() {
    let (ns, _operator) = setup("comp-rollback").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), None).await;
    let (copy_v1, _) = mounted_config(&ns, &v1).await;
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    deploy(&ns, &Version::new("v2"), steps, None).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(90),
        "v2 to be promoted",
        |s| s.phase == Phase::Healthy && s.stable_revision.as_deref() != Some(v1.as_str()),
    )
    .await;
    let v2 = status.stable_revision.clone().expect("stable");
    let (copy_v2, data_v2) = mounted_config(&ns, &v2).await;
    assert_eq!(
        data_v2.get("GREETING").map(String::as_str),
        Some("hello-v2")
    );
    pods_mount(&ns, &v2, &copy_v2).await;
    let number = |status: &SafeDeploymentStatus, hash: &str| {
        status
            .revisions
            .iter()
            .find(|r| r.hash == hash)
            .map(|r| r.number)
            .expect("recorded")
    };
    let first = number(&status, &v1);
    assert_eq!(first, 1);

    // As `safedeploy rollback --to-revision 1` writes it. The old ReplicaSets scale up first,
    // then the current ones down (checked at every step, without the status rule: the status
    // names revision 1 stable before its ReplicaSets are scaled back up).
    let watch = watch_lockstep(&ns, &v2, false).await;
    annotate(
        &ns,
        NAME,
        "safedeploy.dev/rollback",
        &format!("{first}/{}", common::random_suffix(8)),
    )
    .await
    .expect("annotate");
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(60),
        "the rollback to revision 1",
        |s| s.stable_revision.as_deref() == Some(v1.as_str()),
    )
    .await;
    wait_until(Duration::from_secs(30), "revision 2 at zero", || {
        let ns = &ns;
        let v2 = v2.clone();
        async move { Ok((sizes(ns, &v2).await == vec![0, 0, 0]).then_some(())) }
    })
    .await;
    watch.finish().await;
    assert!(
        status
            .history
            .iter()
            .any(|e| e.outcome == "RolledBack" && e.revision == 1)
    );
    assert_eq!(sizes(&ns, &v1).await, full());
    // Revision 1's pods mount revision 1's copy, which holds revision 1's content, while the
    // ConfigMap itself still says hello-v2.
    let (copy, data) = mounted_config(&ns, &v1).await;
    assert_eq!(copy, copy_v1);
    assert_eq!(data.get("GREETING").map(String::as_str), Some("hello-v1"));
    pods_mount(&ns, &v1, &copy_v1).await;
    let original = ns.api::<ConfigMap>().get("app-config").await.expect("cm");
    assert_eq!(
        original
            .data
            .unwrap_or_default()
            .get("GREETING")
            .map(String::as_str),
        Some("hello-v2")
    );
}

/// The Secret `db` copy the worker of `revision` reads (`envFrom`), with its decoded content.
async fn worker_secret(ns: &TestNamespace, revision: &str) -> (String, BTreeMap<String, String>) {
    let rs = ns
        .api::<ReplicaSet>()
        .get(&rs_name("worker", revision))
        .await
        .expect("worker ReplicaSet");
    let pod = rs.spec.and_then(|s| s.template?.spec).expect("template");
    let copy = pod.containers[0]
        .env_from
        .iter()
        .flatten()
        .find_map(|source| source.secret_ref.as_ref().map(|r| r.name.clone()))
        .expect("envFrom secretRef");
    assert!(
        copy.starts_with("db-") && copy.len() == "db-".len() + 10,
        "a content-named copy, not the original: {copy}"
    );
    let secret = ns
        .api::<Secret>()
        .get(&copy)
        .await
        .expect("the copy exists");
    assert_eq!(secret.immutable, Some(true), "{copy} is immutable");
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    (copy, data)
}

/// The `safedeploy.dev/config-versions` annotation of a ReplicaSet.
async fn recorded_versions(ns: &TestNamespace, name: &str) -> BTreeMap<String, String> {
    let rs = ns.api::<ReplicaSet>().get(name).await.expect("ReplicaSet");
    rs.annotations()
        .get(safedeploy::api::labels::ANNOTATION_CONFIG_VERSIONS)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// Waits for a promotion away from `from`; returns the new stable revision and how long after
/// `since` its canary was first seen.
async fn promoted_from(
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
        wait_status(ns, NAME, Duration::from_secs(90), what, |s| {
            s.phase == Phase::Healthy && s.stable_revision.as_deref() != Some(from)
        })
        .await
    };
    (status.stable_revision.expect("stable"), started)
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn editing_referenced_configuration_alone_rolls_out_a_new_revision() {
    let (ns, _operator) = setup("comp-config-edit").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps, None).await;
    let revisions_before = {
        let api: Api<SafeDeployment> = ns.api();
        api.get(NAME)
            .await
            .expect("sd")
            .status
            .expect("status")
            .revisions
            .len()
    };
    let (copy_v1, _) = mounted_config(&ns, &v1).await;

    // An edit that leaves the content as it was (a label): the operator reads the ConfigMap
    // again (it records the new resourceVersion on the revision's ReplicaSets) and starts
    // nothing.
    let patch = json!({"metadata": {"labels": {"owner": "team-a"}}});
    let labelled = ns
        .api::<ConfigMap>()
        .patch("app-config", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label app-config");
    let new_version = labelled.resource_version().expect("resourceVersion");
    wait_until(
        Duration::from_secs(30),
        "the new resourceVersion recorded on every ReplicaSet of v1",
        || {
            let ns = &ns;
            let new_version = new_version.clone();
            let v1 = v1.clone();
            async move {
                for (component, _) in COMPONENTS {
                    let versions = recorded_versions(ns, &rs_name(component, &v1)).await;
                    if versions.get("configmap/app-config") != Some(&new_version) {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            }
        },
    )
    .await;
    let status: SafeDeploymentStatus = ns
        .api::<SafeDeployment>()
        .get(NAME)
        .await
        .expect("sd")
        .status
        .expect("status");
    assert_eq!(status.phase, Phase::Healthy);
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(status.canary_revision, None);
    assert_eq!(status.revisions.len(), revisions_before, "no new revision");

    // A content edit of the ConfigMap alone (the SafeDeployment is not touched): a new revision
    // goes through the canary steps, in lockstep, and its pods mount the new content.
    let generation = ns
        .api::<SafeDeployment>()
        .get(NAME)
        .await
        .expect("sd")
        .metadata
        .generation;
    let watch = watch_lockstep(&ns, &v1, true).await;
    let edited = std::time::Instant::now();
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    let (v2, canary_after) = promoted_from(&ns, &v1, edited, "the ConfigMap edit").await;
    watch.finish().await;
    println!("ConfigMap edit -> canary seen in status after {canary_after:?}");
    assert_ne!(v2, v1);
    let (copy_v2, data) = mounted_config(&ns, &v2).await;
    assert_ne!(copy_v2, copy_v1);
    assert_eq!(data.get("GREETING").map(String::as_str), Some("hello-v2"));
    pods_mount(&ns, &v2, &copy_v2).await;
    let sd = ns.api::<SafeDeployment>().get(NAME).await.expect("sd");
    assert_eq!(
        sd.metadata.generation, generation,
        "the spec was not touched"
    );
    let status = sd.status.expect("status");
    assert_eq!(status.revisions.len(), revisions_before + 1);
    assert_eq!(sizes(&ns, &v1).await, vec![0, 0, 0], "v1 kept at zero");

    // The same for a Secret.
    let edited = std::time::Instant::now();
    put_secret(&ns, "s3cret-v2").await;
    let (v3, canary_after) = promoted_from(&ns, &v2, edited, "the Secret edit").await;
    println!("Secret edit -> canary seen in status after {canary_after:?}");
    assert_ne!(v3, v2);
    let (_, secret) = worker_secret(&ns, &v3).await;
    assert_eq!(
        secret.get("PASSWORD").map(String::as_str),
        Some("s3cret-v2")
    );
    let (_, old_secret) = worker_secret(&ns, &v2).await;
    assert_eq!(
        old_secret.get("PASSWORD").map(String::as_str),
        Some("s3cret-v1"),
        "the previous revision keeps its copy for a rollback"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_missing_image_pull_secret_blocks_until_it_exists() {
    let (ns, _operator) = setup("comp-pull-secret").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), None).await;
    let mut v2 = manifest(&Version::new("v2"), steps, None);
    for component in v2["spec"]["components"].as_array_mut().expect("list") {
        component["template"]["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    }
    apply(&ns, &v2).await.expect("apply v2");
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "blocked on the pull secret",
        |s| s.phase == Phase::Blocked,
    )
    .await;
    let message = status.message.clone().unwrap_or_default();
    for (component, _) in COMPONENTS {
        let line = format!(
            "image pull Secret \"regcred\" not found (component {component}, imagePullSecrets)"
        );
        assert!(message.contains(&line), "status message: {message}");
    }
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));

    // A Secret of the wrong type is reported as such.
    let opaque = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
                        "stringData": {"user": "ci"}});
    let secrets = ns.api::<Secret>();
    secrets
        .patch(
            "regcred",
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(&opaque),
        )
        .await
        .expect("apply regcred");
    wait_status(&ns, NAME, Duration::from_secs(30), "the wrong type named", |s| {
        s.message.as_deref().is_some_and(|m| {
            m.contains(r#"image pull Secret "regcred" has type "Opaque", not kubernetes.io/dockerconfigjson"#)
        })
    })
    .await;
    let replica_sets = ns
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("list");
    assert!(
        replica_sets
            .items
            .iter()
            .all(|rs| rs.labels().get(REVISION_LABEL) == Some(&v1)),
        "no ReplicaSet of the blocked revision"
    );

    // The type of a Secret cannot change: replace it with registry credentials.
    secrets
        .delete("regcred", &Default::default())
        .await
        .expect("delete regcred");
    let registry = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": r#"{"auths":{"registry.local":{"auth":"Y2k6cGFzcw=="}}}"#}});
    secrets
        .patch(
            "regcred",
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(&registry),
        )
        .await
        .expect("apply regcred");
    let (v2, _) = promoted_from(
        &ns,
        &v1,
        std::time::Instant::now(),
        "v2 with its pull secret",
    )
    .await;
    let rs = ns
        .api::<ReplicaSet>()
        .get(&rs_name("api", &v2))
        .await
        .expect("ReplicaSet");
    let pull = rs
        .spec
        .and_then(|s| s.template?.spec?.image_pull_secrets)
        .unwrap_or_default();
    assert_eq!(pull.len(), 1);
    assert_eq!(
        pull[0].name, "regcred",
        "pull Secrets are referenced, not copied"
    );
}

/// `manifest` with every image pinned by a digest derived from the component and `tag`.
fn pinned(mut manifest: Value, tag: &str) -> Value {
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

/// Images must be pinned by digest unless the namespace's policy opts out, even where it does
/// not require attestations: a revision with tags never creates a ReplicaSet and names every
/// unpinned image; the same revision pinned rolls out; an admin's opt-out lets tags through.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn unpinned_images_block_unless_the_policy_allows_tags() {
    let ns = TestNamespace::new("comp-pinned").await;
    operator::install_crds(&ns.client).await;
    // Attestation opted out; `requirePinnedImages` left at its default.
    operator::namespace_policy(&ns.client, &ns.name, json!({"requireAttestation": false})).await;
    let _operator = operator::Operator::start(&ns.name).await;
    put_config(&ns, &[("GREETING", "hello-v1")]).await;
    put_secret(&ns, "s3cret-v1").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    deploy(&ns, &Version::new("v1"), steps.clone(), None).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "the tagged revision to be blocked",
        |s| s.phase == Phase::Blocked,
    )
    .await;
    let message = status.message.clone().unwrap_or_default();
    for (component, _) in COMPONENTS {
        let line = format!(
            r#"image "registry.local/{component}:v1" is not pinned by digest (repository@sha256:<64 hex>), which the namespace's policy requires (component {component}, container "app")"#
        );
        assert!(message.contains(&line), "status message: {message}");
    }
    assert_eq!(
        condition(&status, "Preflight").map(|(status, _)| status),
        Some("False".into())
    );
    let replica_sets = ns.api::<ReplicaSet>().list(&ListParams::default()).await;
    assert_eq!(
        replica_sets.expect("list").items.len(),
        0,
        "no ReplicaSet of the blocked revision"
    );

    // Pinned, the same revision rolls out.
    apply(
        &ns,
        &pinned(manifest(&Version::new("v1"), steps.clone(), None), "v1"),
    )
    .await
    .expect("apply pinned v1");
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(60),
        "the pinned revision to be stable",
        |s| s.phase == Phase::Healthy,
    )
    .await;
    let stable = status.stable_revision.expect("stable");
    let rs = ns
        .api::<ReplicaSet>()
        .get(&rs_name("api", &stable))
        .await
        .expect("ReplicaSet");
    let image = rs
        .spec
        .and_then(|s| s.template?.spec)
        .and_then(|p| p.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default();
    assert!(image.starts_with("registry.local/api@sha256:"), "{image}");

    // An admin cannot turn pinning off while attestations are required (they bind digests)…
    let policies: Api<safedeploy::api::SafeDeploymentPolicy> = Api::all(ns.client.clone());
    let contradictory = json!({
        "apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeploymentPolicy",
        "metadata": {"name": format!("{}-contradictory", ns.name)},
        "spec": {"namespaces": [ns.name.clone()], "requirePinnedImages": false,
                 "trustedKeys": [{"name": "k", "algorithm": "ed25519",
                                  "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----"}]},
    });
    let rejected = policies
        .patch(
            &format!("{}-contradictory", ns.name),
            &PatchParams::apply("test-admin").force(),
            &Patch::Apply(&contradictory),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        rejected.contains("requirePinnedImages: false needs requireAttestation: false"),
        "{rejected}"
    );
    // …but can opt out where they are not: tags then roll out.
    operator::namespace_policy(
        &ns.client,
        &ns.name,
        json!({"requireAttestation": false, "requirePinnedImages": false}),
    )
    .await;
    deploy(&ns, &Version::new("v2"), steps, None).await;
    wait_status(
        &ns,
        NAME,
        Duration::from_secs(60),
        "the tagged v2 promoted after the opt-out",
        |s| s.phase == Phase::Healthy && s.stable_revision.as_deref() != Some(stable.as_str()),
    )
    .await;
}

/// Signs `manifest` with `safedeploy attest --config-object …` into the ConfigMap `name`,
/// applied to the namespace (the pipeline side of an attested rollout).
async fn sign(
    ns: &TestNamespace,
    dir: &std::path::Path,
    name: &str,
    manifest: &Value,
    config_objects: &[Value],
) {
    let bin = env!("CARGO_BIN_EXE_safedeploy");
    let manifest_path = dir.join(format!("{name}.json"));
    std::fs::write(&manifest_path, serde_json::to_vec(manifest).expect("json")).expect("write");
    let mut command = std::process::Command::new(bin);
    command
        .args(["attest", "--key"])
        .arg(dir.join("ci.key"))
        .arg("--manifest")
        .arg(&manifest_path)
        .args([
            "--check",
            "unit=true",
            "--configmap",
            name,
            "--namespace",
            &ns.name,
        ]);
    for (i, object) in config_objects.iter().enumerate() {
        let path = dir.join(format!("{name}-object-{i}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(object).expect("yaml")).expect("write");
        command.arg("--config-object").arg(path);
    }
    let out = dir.join(format!("{name}-cm.yaml"));
    let output = command.arg("--out").arg(&out).output().expect("attest");
    assert!(
        output.status.success(),
        "attest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let envelope: ConfigMap =
        serde_yaml::from_str(&std::fs::read_to_string(&out).expect("read")).expect("yaml");
    ns.api::<ConfigMap>()
        .patch(
            name,
            &PatchParams::apply("pipeline").force(),
            &Patch::Apply(&envelope),
        )
        .await
        .expect("apply the attestation");
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn the_attestation_binds_the_configuration_contents() {
    let ns = TestNamespace::new("comp-attest").await;
    operator::install_crds(&ns.client).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keygen = std::process::Command::new(env!("CARGO_BIN_EXE_safedeploy"))
        .args(["keygen", "--algorithm", "ed25519", "--out-private"])
        .arg(dir.path().join("ci.key"))
        .arg("--out-public")
        .arg(dir.path().join("ci.pub"))
        .status()
        .expect("keygen");
    assert!(keygen.success());
    let public_key = std::fs::read_to_string(dir.path().join("ci.pub")).expect("key");
    operator::namespace_policy(
        &ns.client,
        &ns.name,
        json!({"requireAttestation": true, "maxAge": "1h", "requiredChecks": [{"kind": "unit"}],
               "trustedKeys": [{"name": "ci", "algorithm": "ed25519", "publicKeyPem": public_key}]}),
    )
    .await;
    let _operator = operator::Operator::start(&ns.name).await;

    // Pinned images (the policy requires them) and an attestation per version.
    let attested = |tag: &str| {
        let mut manifest = pinned(
            manifest(&Version::new(tag), json!([{"setWeight": 50}]), None),
            tag,
        );
        manifest["spec"]["attestation"] = json!({"configMapRef": {"name": format!("att-{tag}")}});
        manifest
    };
    let config = |greeting: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"},
               "data": {"GREETING": greeting}})
    };
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                        "stringData": {"PASSWORD": "s3cret-v1"}});

    put_config(&ns, &[("GREETING", "hello-v1")]).await;
    put_secret(&ns, "s3cret-v1").await;
    let v1 = attested("v1");
    sign(
        &ns,
        dir.path(),
        "att-v1",
        &v1,
        &[config("hello-v1"), secret.clone()],
    )
    .await;
    apply(&ns, &v1).await.expect("apply v1");
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(60),
        "signed v1 stable",
        |s| s.phase == Phase::Healthy,
    )
    .await;
    assert_eq!(
        condition(&status, "Attested"),
        Some(("True".into(), "Verified".into()))
    );
    let stable = status.stable_revision.expect("stable");

    // The ConfigMap edited alone is a new revision whose configuration nobody attested: blocked
    // as drift, the stable revision keeps running.
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "the unattested edit blocked",
        |s| {
            s.phase == Phase::Blocked
                && condition(s, "Attested") == Some(("False".into(), "ConfigDrift".into()))
        },
    )
    .await;
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(status.canary_revision, None);

    // v2 is signed with the configuration the pipeline validated (hello-v1), but the cluster's
    // ConfigMap says hello-v2: configuration drift, and no pod of v2.
    let v2 = attested("v2");
    sign(
        &ns,
        dir.path(),
        "att-v2",
        &v2,
        &[config("hello-v1"), secret.clone()],
    )
    .await;
    apply(&ns, &v2).await.expect("apply v2");
    let status = wait_status(&ns, NAME, Duration::from_secs(30), "ConfigDrift", |s| {
        s.phase == Phase::Blocked
            && condition(s, "Attested") == Some(("False".into(), "ConfigDrift".into()))
    })
    .await;
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(
        condition(&status, "Preflight"),
        Some(("True".into(), "Passed".into()))
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let replica_sets = ns
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("list");
    for rs in replica_sets.items {
        let revision = rs.labels().get(REVISION_LABEL).cloned().unwrap_or_default();
        assert_eq!(revision, stable, "no ReplicaSet of the drifted revision");
    }

    // Signed with what the cluster holds, it rolls out.
    sign(
        &ns,
        dir.path(),
        "att-v2",
        &v2,
        &[config("hello-v2"), secret],
    )
    .await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(90),
        "signed v2 promoted",
        |s| s.phase == Phase::Healthy && s.stable_revision.as_deref() != Some(stable.as_str()),
    )
    .await;
    let (_, data) = mounted_config(&ns, &status.stable_revision.expect("stable")).await;
    assert_eq!(data.get("GREETING").map(String::as_str), Some("hello-v2"));
}

/// No cluster needed: what a pipeline binds with `safedeploy config-digest --config-object`
/// (from manifests, the Secret with `stringData`) is what the operator computes from the
/// objects as the API server stores them (the Secret's `data` in bytes).
#[test]
fn the_pipeline_binds_the_same_configuration_as_the_operator() {
    use safedeploy::core::config::{config_map_digest, secret_digest};
    let dir = tempfile::tempdir().expect("tempdir");
    let sd = manifest(&Version::new("v1"), json!([{"setWeight": 100}]), None);
    let sd_path = dir.path().join("sd.yaml");
    std::fs::write(&sd_path, serde_yaml::to_string(&sd).expect("yaml")).expect("write");
    let objects = dir.path().join("config.yaml");
    std::fs::write(
        &objects,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {GREETING: hello}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {PASSWORD: pw}\n",
    )
    .expect("write");
    let run = |extra: &[&std::path::Path]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_safedeploy"));
        command.args(["config-digest", "--manifest"]).arg(&sd_path);
        for path in extra {
            command.arg("--config-object").arg(path);
        }
        command.output().expect("run safedeploy")
    };
    let out = run(&[&objects]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_pipeline = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let stored_cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "app-config",
        "resourceVersion": "5"}, "data": {"GREETING": "hello"}}))
    .expect("cm");
    let stored_secret: Secret = serde_json::from_value(json!({"metadata": {"name": "db"},
        "type": "Opaque", "data": {"PASSWORD": "cHc="}}))
    .expect("secret");
    let spec: safedeploy::api::SafeDeploymentSpec =
        serde_json::from_value(sd["spec"].clone()).expect("spec");
    let operator = safedeploy::attest::config_digest_with(
        &spec,
        &BTreeMap::from([
            (
                "configmap/app-config".to_string(),
                config_map_digest(&stored_cm),
            ),
            ("secret/db".to_string(), secret_digest(&stored_secret)),
        ]),
    )
    .expect("digest");
    assert_eq!(from_pipeline, operator);

    // Without the objects the digest differs (and the tool says which are missing).
    let bare = run(&[]);
    assert!(bare.status.success());
    assert_ne!(String::from_utf8_lossy(&bare.stdout).trim(), operator);
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("configmap/app-config, secret/db"),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    // An object the templates do not reference is refused.
    let stray = dir.path().join("stray.yaml");
    std::fs::write(
        &stray,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
    )
    .expect("write");
    let refused = run(&[&stray]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("configmap/other is not referenced"));
}
