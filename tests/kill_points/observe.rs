//! What a kill-points run is judged by: every status a watch saw and the steps they name, the
//! events by action, the final status without what legitimately differs between two runs, and
//! the objects left over (ReplicaSets, pods, configuration copies).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use safedeploy::api::labels::LABEL_CONFIG_COPY;
use safedeploy::api::labels::LABEL_REVISION;
use safedeploy::api::{SafeDeployment, SafeDeploymentStatus};
use serde_json::Value;

use super::REPLICAS;
use crate::common::{TestNamespace, wait_until};

/// Every status a watch of the SafeDeployment saw, in order.
pub(crate) struct StatusWatch {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Vec<SafeDeploymentStatus>>,
}

impl StatusWatch {
    pub(crate) async fn start(ns: &TestNamespace) -> Self {
        let api: Api<SafeDeployment> = ns.api();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            let mut seen: Vec<SafeDeploymentStatus> = Vec::new();
            loop {
                let event = tokio::select! {
                    _ = &mut stopped => break,
                    event = events.next() => event,
                };
                if let Some(Ok(watcher::Event::Apply(sd) | watcher::Event::InitApply(sd))) = event
                    && let Some(status) = sd.status
                    && seen.last() != Some(&status)
                {
                    seen.push(status);
                }
            }
            seen
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        Self {
            stop: Some(stop),
            task,
        }
    }

    pub(crate) async fn finish(mut self) -> Vec<SafeDeploymentStatus> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap_or_default()
    }
}

/// The steps each canary revision went through, as (revision number, step index) → the
/// `stepStartedAt` values seen. Panics if an index went back within one canary.
pub(crate) fn steps_seen(
    statuses: &[SafeDeploymentStatus],
) -> BTreeMap<(i64, i32), BTreeSet<String>> {
    let mut steps: BTreeMap<(i64, i32), BTreeSet<String>> = BTreeMap::new();
    let mut last: Option<(String, i32)> = None;
    for status in statuses {
        let (Some(canary), Some(index)) = (&status.canary_revision, status.current_step_index)
        else {
            continue;
        };
        if let Some((previous, previous_index)) = &last
            && previous == canary
        {
            assert!(
                index >= *previous_index,
                "step index went back from {previous_index} to {index} for {canary}"
            );
        }
        last = Some((canary.clone(), index));
        let number = status
            .revisions
            .iter()
            .find(|r| &r.hash == canary)
            .map(|r| r.number)
            .unwrap_or(0);
        steps
            .entry((number, index))
            .or_default()
            .extend(status.step_started_at.clone());
    }
    steps
}

/// Events of `reason` by their `action` (`<reason>-r<revision>-s<step>`), counting repeats.
pub(crate) async fn events_by_action(ns: &TestNamespace, reason: &str) -> BTreeMap<String, i32> {
    let events = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut counts = BTreeMap::new();
    for event in events
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
    {
        let repeats = event
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(event.count)
            .unwrap_or(1)
            .max(1);
        *counts
            .entry(event.action.clone().unwrap_or_default())
            .or_default() += repeats;
    }
    counts
}

/// The status without what legitimately differs between two runs: times, measured values and
/// the namespace's name (in the policy's name).
pub(crate) fn comparable(status: &SafeDeploymentStatus, namespace: &str) -> Value {
    pub(crate) fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in [
                    "lastTransitionTime",
                    "stepStartedAt",
                    "startedAt",
                    "finishedAt",
                    // A history entry's step marks (`steps[].at`) and the routed drain's start.
                    "at",
                    "drainStartedAt",
                    "recordedThrough",
                    "measuredAt",
                    "value",
                    "baseline",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let text = serde_json::to_string(status)
        .unwrap_or_default()
        .replace(namespace, "<namespace>");
    let mut value = serde_json::from_str(&text).unwrap_or_default();
    strip(&mut value);
    value
}

/// Where two JSON values differ, as `path: left != right` lines.
pub(crate) fn differences(path: &str, left: &Value, right: &Value, out: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            let keys: BTreeSet<&String> = l.keys().chain(r.keys()).collect();
            for key in keys {
                let (a, b) = (l.get(key), r.get(key));
                let null = Value::Null;
                differences(
                    &format!("{path}.{key}"),
                    a.unwrap_or(&null),
                    b.unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
            for (i, (a, b)) in l.iter().zip(r).enumerate() {
                differences(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (l, r) if l != r => out.push(format!("{path}: {l} != {r}")),
        _ => {}
    }
}

/// The ConfigMaps a ReplicaSet's pod template reads (volumes, env and envFrom).
pub(crate) fn mounted_config_maps(rs: &ReplicaSet) -> BTreeSet<String> {
    let Some(pod) = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
    else {
        return BTreeSet::new();
    };
    let volumes = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some(v.config_map.as_ref()?.name.clone()));
    let env = pod.containers.iter().flat_map(|c| {
        let values = c.env.iter().flatten().filter_map(|e| {
            Some(
                e.value_from
                    .as_ref()?
                    .config_map_key_ref
                    .as_ref()?
                    .name
                    .clone(),
            )
        });
        let from = c
            .env_from
            .iter()
            .flatten()
            .filter_map(|e| Some(e.config_map_ref.as_ref()?.name.clone()));
        values.chain(from).collect::<Vec<_>>()
    });
    volumes.chain(env).collect()
}

/// Waits until nothing is left over: the serving ReplicaSet at full size, the one kept old
/// revision at zero, no baseline; only the serving revision's pods; exactly the copies the
/// ReplicaSets mount, each owned by an existing ReplicaSet. Returns a one-line summary.
pub(crate) async fn assert_no_leaks(ns: &TestNamespace, serving: &str, kept: &str) -> String {
    let (serving, kept) = (serving.to_string(), kept.to_string());
    wait_until(Duration::from_secs(60), "no leaked objects", || {
        let (serving, kept) = (serving.clone(), kept.clone());
        async move {
            let sets = ns.api::<ReplicaSet>().list(&ListParams::default()).await?;
            let pods = ns.api::<Pod>().list(&ListParams::default()).await?;
            let copies = ns
                .api::<ConfigMap>()
                .list(&ListParams::default().labels(&format!("{LABEL_CONFIG_COPY}=true")))
                .await?;
            let revisions: BTreeMap<String, i32> = sets
                .items
                .iter()
                .map(|rs| {
                    (
                        rs.labels().get(LABEL_REVISION).cloned().unwrap_or_default(),
                        rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                    )
                })
                .collect();
            let wanted: BTreeMap<String, i32> =
                [(serving.clone(), REPLICAS), (kept.clone(), 0)].into();
            let uids: BTreeSet<String> = sets.items.iter().filter_map(|rs| rs.uid()).collect();
            let mounted: BTreeSet<String> = sets.items.iter().flat_map(mounted_config_maps).collect();
            let copy_names: BTreeSet<String> = copies.items.iter().map(|c| c.name_any()).collect();
            let owned = copies.items.iter().all(|c| {
                let owners = c.owner_references();
                !owners.is_empty() && owners.iter().all(|o| uids.contains(&o.uid))
            });
            let pod_revisions: Vec<String> = pods
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| p.labels().get(LABEL_REVISION).cloned().unwrap_or_default())
                .collect();
            let pods_ok = pod_revisions.len() == usize::try_from(REPLICAS).unwrap_or(0)
                && pod_revisions.iter().all(|r| *r == serving);
            let clean = sets.items.len() == 2 && revisions == wanted;
            let summary = format!(
                "ReplicaSets {revisions:?}; pods {pod_revisions:?}; copies {copy_names:?} (mounted {mounted:?}, all owned by live ReplicaSets: {owned})"
            );
            if clean && pods_ok && owned && copy_names == mounted {
                Ok(Some(summary))
            } else {
                // Reported if it never gets there.
                Err(summary.into())
            }
        }
    })
    .await
}

/// The hash of revision `number` in a status.
pub(crate) fn hash(status: &SafeDeploymentStatus, number: i64) -> String {
    status
        .revisions
        .iter()
        .find(|r| r.number == number)
        .map(|r| r.hash.clone())
        .unwrap_or_else(|| panic!("no revision {number} in {:?}", status.revisions))
}
