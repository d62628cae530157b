//! The I/O of sharding (`--shard`, see `crate::core::shard`): a SafeDeployment that moved into
//! this shard brings its ReplicaSets and pods along (they carry the old shard label, so this
//! process's watches do not see them until they are relabelled), and the process given
//! `--unsharded-selector` reports the SafeDeployments no shard serves.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::error::{ReconcileError, writing};
use super::owned_cache::controller_uid;
use super::{Context, FIELD_MANAGER, apply};
use crate::api::SafeDeployment;
use crate::api::conditions::EventReason;
use crate::api::labels::{LABEL_NAME, LABEL_SHARD};
use crate::core::shard::{ShardSelector, needs_relabel, shard_of, with_shard_of};

/// With a shard, when the cache lacks a ReplicaSet of a revision `sd`'s status names (stable or
/// canary): reads its ReplicaSets and pods from the API server and relabels those still under
/// another shard's label. Returns whether it relabelled anything (the watches then bring them
/// in; the reconcile decides only once they are there, never on a half-seen rollout).
pub async fn follow(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
    cached: &[Arc<super::cached::OwnedReplicaSet>],
) -> Result<bool, ReconcileError> {
    if ctx.shard.is_none() {
        return Ok(false);
    }
    let status = sd.status.clone().unwrap_or_default();
    let named: Vec<String> = [status.stable_revision, status.canary_revision]
        .into_iter()
        .flatten()
        .collect();
    let in_cache = |hash: &String| cached.iter().any(|rs| rs.revision.as_ref() == Some(hash));
    if named.iter().all(in_cache) {
        return Ok(false);
    }
    let name = sd.name_any();
    let uid = sd.uid().unwrap_or_default();
    let by_name = ListParams::default().labels(&format!("{LABEL_NAME}={name}"));
    let replica_sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    let owned: Vec<ReplicaSet> = replica_sets
        .list(&by_name)
        .await
        .map_err(writing(format!("list the ReplicaSets of {name}")))?
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .collect();
    let owned_uids: BTreeSet<String> = owned.iter().filter_map(|rs| rs.uid()).collect();
    let mut moved = 0_usize;
    for rs in owned
        .iter()
        .filter(|rs| needs_relabel(sd.labels(), rs.labels()))
    {
        let rs_name = rs.name_any();
        apply::change(
            ctx,
            &replica_sets,
            &rs_name,
            format!("move ReplicaSet {rs_name} to its SafeDeployment's shard"),
            |live: &mut ReplicaSet| {
                live.metadata.labels = Some(with_shard_of(sd.labels(), live.labels().clone()));
                if let Some(template) = live
                    .spec
                    .as_mut()
                    .and_then(|s| s.template.as_mut())
                    .and_then(|t| t.metadata.as_mut())
                {
                    template.labels = Some(with_shard_of(
                        sd.labels(),
                        template.labels.clone().unwrap_or_default(),
                    ));
                }
            },
        )
        .await?;
        moved = moved.saturating_add(1);
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let label = json!({"metadata": {"labels": {LABEL_SHARD: shard_of(sd.labels())}}});
    for pod in pods
        .list(&by_name)
        .await
        .map_err(writing(format!("list the pods of {name}")))?
        .items
        .iter()
        .filter(|pod| controller_uid(&pod.metadata).is_some_and(|u| owned_uids.contains(u)))
        .filter(|pod| needs_relabel(sd.labels(), pod.labels()))
    {
        ctx.ensure_leader()?;
        let pod_name = pod.name_any();
        match pods
            .patch(
                &pod_name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..Default::default()
                },
                &Patch::Merge(&label),
            )
            .await
        {
            Ok(_) => moved = moved.saturating_add(1),
            // Gone meanwhile: its ReplicaSet's replacement carries the new label.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(writing(format!("move pod {pod_name}"))(error)),
        }
    }
    if moved > 0 {
        let shard = shard_of(sd.labels()).unwrap_or("(none)").to_string();
        info!(rollout = %name, namespace, %shard, objects = moved, "moved into this shard");
        let event = Event {
            type_: EventType::Normal,
            reason: EventReason::ShardMoved.to_string(),
            note: Some(format!(
                "{moved} ReplicaSet(s) and pod(s) relabelled {LABEL_SHARD}={shard}: this shard serves the SafeDeployment now"
            )),
            action: "Relabel".into(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &sd.object_ref(&())).await {
            warn!(rollout = %name, %error, "could not record event");
        }
    }
    Ok(moved > 0)
}

/// Watches (metadata only) the SafeDeployments `unsharded` matches: the gauge
/// `safedeploy_unsharded_safedeployments` counts them, and each gets a Warning Event when first
/// seen (by this process, with these labels). Nothing else is done to them: they belong to no
/// shard, and acting on one could race the shard that should.
pub fn spawn_unsharded_report(
    ctx: &Arc<Context>,
    namespace: &Option<String>,
    unsharded: ShardSelector,
) {
    let api: Api<PartialObjectMeta<SafeDeployment>> =
        super::watch::scoped_api(&ctx.client, namespace);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let config = watcher::Config::default().labels(unsharded.as_str());
        let mut events = watcher(api, config).default_backoff().boxed();
        // uid -> the shard label it was reported with.
        let mut seen: std::collections::BTreeMap<String, Option<String>> = Default::default();
        let mut listing: Option<std::collections::BTreeMap<String, Option<String>>> = None;
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            match event {
                watcher::Event::Init => listing = Some(Default::default()),
                watcher::Event::InitApply(object) => {
                    report(&ctx, &object, &seen).await;
                    if let (Some(listing), Some(uid)) = (listing.as_mut(), object.uid()) {
                        listing.insert(uid, shard_of(object.labels()).map(str::to_string));
                    }
                }
                watcher::Event::InitDone => seen = listing.take().unwrap_or_default(),
                watcher::Event::Apply(object) => {
                    report(&ctx, &object, &seen).await;
                    if let Some(uid) = object.uid() {
                        seen.insert(uid, shard_of(object.labels()).map(str::to_string));
                    }
                }
                watcher::Event::Delete(object) => {
                    if let Some(uid) = object.uid() {
                        seen.remove(&uid);
                    }
                }
            }
            // Counted once the (re)list is complete.
            if listing.is_none() {
                ctx.metrics
                    .unsharded
                    .set(i64::try_from(seen.len()).unwrap_or(i64::MAX));
            }
        }
    });
}

/// The Warning Event of one SafeDeployment no shard serves, unless it was reported already with
/// the same shard label.
async fn report(
    ctx: &Context,
    object: &PartialObjectMeta<SafeDeployment>,
    seen: &std::collections::BTreeMap<String, Option<String>>,
) {
    let shard = shard_of(object.labels()).map(str::to_string);
    if object
        .uid()
        .is_some_and(|uid| seen.get(&uid) == Some(&shard))
    {
        return;
    }
    let label = shard.as_deref().map_or_else(
        || format!("no {LABEL_SHARD} label"),
        |s| format!("{LABEL_SHARD}={s}"),
    );
    warn!(rollout = %object.name_any(), namespace = ?object.namespace(), %label,
          "no shard serves this SafeDeployment");
    let event = Event {
        type_: EventType::Warning,
        reason: EventReason::NotSharded.to_string(),
        note: Some(format!(
            "no operator shard serves this SafeDeployment ({label}): nothing rolls it out or reverts it; label it with the {LABEL_SHARD} of a running shard"
        )),
        action: "Report".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        warn!(rollout = %object.name_any(), %error, "could not record event");
    }
}
