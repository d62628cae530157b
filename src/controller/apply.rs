//! The last step of a reconcile: carries a decision out, and is the one place the operator writes
//! to the objects of a rollout. Every write names the one field manager [`FIELD_MANAGER`].
//!
//! # Order (crash safety)
//! 0. the durable records (`SafeDeploymentRecord`) of history entries the persisted status
//!    finished and has not recorded (`crate::core::record`);
//! 1. [`apply_status`]: the decided status first, with the `resourceVersion` the decision was
//!    taken on as a precondition, so a decision taken on a stale cache fails (409) instead of
//!    repeating a step, and a crash after it leaves a status that already says what comes next;
//! 2. with `trafficRouting`, the Services and the routes' weights (`super::routes`), so a revert's
//!    weight 0 is written before any pod goes;
//! 3. [`apply_scale`]: the fresh baseline first (never younger than the canary it is compared
//!    with), then the revisions' ReplicaSets;
//! 4. [`apply_deletes`]: baseline and history deletions;
//! 5. [`publish_events`], **also when a write of 2 to 4 failed**: the status already says what
//!    they announce, and a decision's events are emitted once, on its transition; the retry of
//!    a failed write (a 409 on a ReplicaSet whose pods are changing) decides from a status that
//!    already took the step and would not emit them again;
//! 6. the `Stalled` condition of an earlier failure is cleared (only when every write went
//!    through).
//!
//! Before each write the leader check runs again (`ctx.ensure_leader()`), so a replica that
//! lost its Lease mid-reconcile makes no further write.
//!
//! # Write styles
//! Server-side apply (SSA, `force`) of **whole objects** is the rule: the status; a new
//! ReplicaSet, its configuration copies and its fresh baseline, as the pure builders in
//! [`crate::core::workload`] make them ([`apply_object`]); and every later change of an existing
//! object ([`change`]): the object is read, changed (its `spec.replicas`, an annotation, an
//! owner) and applied back whole, with the `resourceVersion` read as a precondition. Applying only the
//! changed field (`{spec: {replicas}}`) with the field manager that applied the whole object
//! would drop its ownership of every other field, and the API server would remove the fields no
//! one else owns (the pod template among them). The `/scale` subresource would avoid the read,
//! but admission policies written for `replicasets` (a platform's replica freeze, say) do not see
//! `replicasets/scale` requests, so a scale there would slip past them.
//!
//! Where the Kubernetes API forces otherwise:
//! * a ReplicaSet with configuration copies is **created** by `POST` (create-only): it must start
//!   at zero replicas, and an apply would also scale down one that exists already but is not in
//!   the cache yet; the preflight's server-side dry run is a `POST` for the same reason;
//! * a deletion is a `DELETE`;
//! * events go through kube's event [`Recorder`](kube::runtime::events::Recorder) (`events.k8s.io`
//!   create and series patches);
//! * the Lease (`super::leader`) is written with `POST`/`PUT` and a `resourceVersion`, the
//!   compare-and-swap of client-go's leader election protocol; it is not a rollout write.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::error::{ReconcileError, describe_kube_error, writing};
use super::{Context, FIELD_MANAGER, config};
use crate::api::conditions::EventReason;
use crate::api::labels::{ANNOTATION_REJECTED, LABEL_NAME};
use crate::api::{SafeDeployment, SafeDeploymentRecord, SafeDeploymentStatus};
use crate::core::revision::Revision;
use crate::core::rollout::{Decision, ReplicaSetView, ScaleAction};
use crate::core::workload::{self, BaselineWrite, ReplicaSetWrite};
use crate::core::{failure, record};

/// What the apply step needs besides the decision: the rollout as the decision saw it.
pub struct Applied<'a> {
    /// The SafeDeployment (its `resourceVersion` is the status write's precondition).
    pub sd: &'a SafeDeployment,
    /// Its namespace.
    pub namespace: &'a str,
    /// The status the decision started from (unchanged: no status write).
    pub status: &'a SafeDeploymentStatus,
    /// The desired revision, what was read for it, and its configuration versions.
    pub prepared: &'a config::Prepared,
    /// The ReplicaSets it owns, as cached (templates trimmed).
    pub owned: &'a [Arc<super::cached::OwnedReplicaSet>],
    /// Views of its revisions' ReplicaSets.
    pub replica_sets: &'a [ReplicaSetView],
    /// Views of its fresh baseline ReplicaSets.
    pub baseline_replica_sets: &'a [ReplicaSetView],
}

/// Steps 2 to 4 of the module doc: routes, scale, rejection marks, deletions.
async fn apply_workload(
    ctx: &Context,
    rollout: &Applied<'_>,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    // The routes before any scaling: a revert sets the canary's weight to 0 before one of its
    // pods goes, and a new weight is only decided once the canary's pods are Ready.
    if let Some(plan) = &decision.traffic {
        super::routes::apply_plan(ctx, rollout.sd, rollout.namespace, plan).await?;
    }
    apply_scale(ctx, rollout, decision).await?;
    apply_rejection_marks(ctx, rollout, decision).await?;
    apply_deletes(ctx, rollout, decision).await
}

/// Carries `decision` out in the crash-safe order of the module doc.
pub async fn apply(
    ctx: &Context,
    rollout: &Applied<'_>,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    let sds: Api<SafeDeployment> = Api::namespaced(ctx.client.clone(), rollout.namespace);
    let name = rollout.sd.name_any();
    // The durable records of what the persisted status finished, before the status that
    // advances their mark (crash safety: `crate::core::record`).
    let mut status = decision.status.clone();
    if let Some(mark) = apply_records(ctx, rollout).await? {
        status.recorded_through = Some(mark);
    }
    if &status != rollout.status {
        ctx.ensure_leader()?;
        let read_version = rollout.sd.resource_version();
        let written_version = apply_status(&sds, &name, read_version.clone(), &status)
            .await
            .map_err(writing("write status"))?;
        ctx.own_writes.wrote(
            ObjectRef::from_obj(rollout.sd),
            read_version.as_deref(),
            written_version.as_deref(),
        );
    }
    let workload = apply_workload(ctx, rollout, decision).await;
    publish_events(ctx, rollout.sd, decision).await?;
    workload?;
    // Every write went through: a failure recorded earlier is over.
    let mut cleared = status;
    if failure::clear_failure(&mut cleared, Timestamp::now()) {
        ctx.ensure_leader()?;
        apply_status(&sds, &name, None, &cleared)
            .await
            .map_err(writing("clear the Stalled condition"))?;
    }
    Ok(())
}

/// Creates the `SafeDeploymentRecord` of every history entry the persisted status finished and
/// has not recorded yet, and returns the mark the next status write carries (None: nothing was
/// due). A record that exists already (an earlier attempt) counts as created.
async fn apply_records(
    ctx: &Context,
    rollout: &Applied<'_>,
) -> Result<Option<String>, ReconcileError> {
    let due = record::due(rollout.status);
    if due.is_empty() {
        return Ok(None);
    }
    let records: Api<SafeDeploymentRecord> = Api::namespaced(ctx.client.clone(), rollout.namespace);
    let rollout_name = rollout.sd.name_any();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    for entry in &due {
        let record_name = record::name(&rollout_name, entry);
        let mut object = SafeDeploymentRecord::new(
            &record_name,
            record::spec(&rollout_name, entry, rollout.status),
        );
        if rollout_name.len() <= 63 {
            object.metadata.labels = Some(BTreeMap::from([(
                LABEL_NAME.to_string(),
                rollout_name.clone(),
            )]));
        }
        ctx.ensure_leader()?;
        match records.create(&params, &object).await {
            Ok(_) => info!(record = %record_name, outcome = %entry.outcome, "history recorded"),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(writing(format!("record {record_name}"))(error)),
        }
    }
    Ok(record::recorded_through(rollout.status, &due))
}

/// Writes the whole status by server-side apply, with a `resourceVersion` precondition when one
/// is given, and returns the written object's `resourceVersion`.
pub async fn apply_status(
    sds: &Api<SafeDeployment>,
    name: &str,
    resource_version: Option<String>,
    status: &SafeDeploymentStatus,
) -> Result<Option<String>, kube::Error> {
    let mut metadata = json!({ "name": name });
    if let Some(version) = resource_version {
        metadata["resourceVersion"] = json!(version);
    }
    let patch = json!({
        "apiVersion": "safedeploy.dev/v1alpha1",
        "kind": "SafeDeployment",
        "metadata": metadata,
        "status": status,
    });
    let written = sds
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(written.metadata.resource_version)
}

/// Creates or scales the ReplicaSets the decision sizes: the fresh baselines first, then the
/// revisions'. What each action needs is decided by [`workload::scale_write`] and
/// [`workload::baseline_write`].
pub async fn apply_scale(
    ctx: &Context,
    rollout: &Applied<'_>,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), rollout.namespace);
    for action in &decision.baseline_scale {
        scale_baseline(ctx, rollout, &api, action).await?;
    }
    let prepared = rollout.prepared;
    let revision = &prepared.revision;
    let existing: BTreeMap<String, i32> = rollout
        .owned
        .iter()
        .map(|rs| (rs.name.clone(), rs.replicas))
        .collect();
    let versions =
        (!prepared.versions.is_empty()).then(|| config::versions_annotation(&prepared.versions));
    for action in &decision.scale {
        let write = workload::scale_write(
            rollout.sd,
            revision,
            &existing,
            &decision.status,
            versions.as_deref(),
            action,
        )
        .map_err(|lost| ReconcileError::LostReplicaSet(lost.0))?;
        let rs_name = match write {
            ReplicaSetWrite::Skip => continue,
            ReplicaSetWrite::Scale {
                name,
                replicas,
                starts,
            } => {
                if starts {
                    // Scaled up from zero: its configuration copies must exist before its pods.
                    let cached = rollout.owned.iter().find(|rs| rs.name == name);
                    if let Some(cached) = cached {
                        let digests = config::recorded_config(cached).unwrap_or_default();
                        config::ensure_copies(
                            rollout.sd,
                            ctx,
                            &action.revision,
                            &digests,
                            (&cached.name, cached.uid.as_deref().unwrap_or_default()),
                            &prepared.originals,
                        )
                        .await?;
                    }
                }
                scale(ctx, &api, &name, replicas).await?;
                name
            }
            ReplicaSetWrite::Create(rs) => {
                let name = rs.name_any();
                apply_object(ctx, &api, rs.as_ref(), format!("create ReplicaSet {name}")).await?;
                name
            }
            ReplicaSetWrite::CreateWithCopies {
                replica_set,
                replicas,
            } => {
                create_with_copies(ctx, rollout, &api, &replica_set, replicas).await?;
                replica_set.name_any()
            }
        };
        info!(rollout = %rollout.sd.name_any(), namespace = rollout.namespace, replica_set = %rs_name, replicas = action.replicas, "scaled");
    }
    Ok(())
}

/// Creates a ReplicaSet that runs copied configuration: at zero replicas (create-only: one that
/// exists already, in a stale cache, is taken as it is), then its copies (owned by it), then
/// scaled to `replicas`.
async fn create_with_copies(
    ctx: &Context,
    rollout: &Applied<'_>,
    api: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    replicas: i32,
) -> Result<(), ReconcileError> {
    let name = rs.name_any();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    ctx.ensure_leader()?;
    let created = match api.create(&params, rs).await {
        Ok(created) => created,
        Err(kube::Error::Api(status)) if status.code == 409 => api.get(&name).await?,
        Err(error) => return Err(error.into()),
    };
    let revision = &rollout.prepared.revision;
    config::ensure_copies(
        rollout.sd,
        ctx,
        &revision.hash,
        &revision.config_objects,
        (&created.name_any(), &created.uid().unwrap_or_default()),
        &rollout.prepared.originals,
    )
    .await?;
    scale(ctx, api, &name, replicas).await
}

/// Creates or scales the fresh baseline ReplicaSet of one component. A new one copies the
/// stable ReplicaSet's template (read from the API: the cache keeps no templates), so it runs
/// exactly what the stable runs, configuration copies included.
async fn scale_baseline(
    ctx: &Context,
    rollout: &Applied<'_>,
    api: &Api<ReplicaSet>,
    action: &ScaleAction,
) -> Result<(), ReconcileError> {
    let sd = rollout.sd;
    let write =
        workload::baseline_write(rollout.baseline_replica_sets, rollout.replica_sets, action)
            .map_err(|lost| ReconcileError::LostReplicaSet(lost.0))?;
    match write {
        BaselineWrite::Scale { name, replicas } => {
            scale(ctx, api, &name, replicas).await?;
            info!(rollout = %sd.name_any(), replica_set = %name, replicas, "scaled the fresh baseline");
        }
        BaselineWrite::CopyStable { stable, replicas } => {
            let stable_rs = api.get(&stable).await?;
            let rs = workload::baseline_replica_set(sd, &stable_rs, replicas)
                .ok_or_else(|| ReconcileError::LostReplicaSet(stable.clone()))?;
            let name = rs.name_any();
            apply_object(ctx, api, &rs, format!("create ReplicaSet {name}")).await?;
            info!(rollout = %sd.name_any(), replica_set = %name, replicas, "created the fresh baseline");
        }
    }
    Ok(())
}

/// Sets `spec.replicas` of the ReplicaSet `name` (see [`change`]).
async fn scale(
    ctx: &Context,
    api: &Api<ReplicaSet>,
    name: &str,
    replicas: i32,
) -> Result<(), ReconcileError> {
    let what = format!("scale ReplicaSet {name} to {replicas}");
    change(ctx, api, name, what, |rs: &mut ReplicaSet| {
        rs.status = None;
        if let Some(spec) = rs.spec.as_mut() {
            spec.replicas = Some(replicas);
        }
    })
    .await?;
    Ok(())
}

/// Sets or removes the rejection mark ([`ANNOTATION_REJECTED`]) on the ReplicaSets the decision
/// names, so the rejection outlives a lost status (`core::rollout::recovery`). After the scaling:
/// a crash in between is repaired by the next decision, which asks for the same marks again.
pub async fn apply_rejection_marks(
    ctx: &Context,
    rollout: &Applied<'_>,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), rollout.namespace);
    for (name, rejected) in &decision.mark_rejected {
        let what = if *rejected {
            format!("mark ReplicaSet {name} rejected")
        } else {
            format!("clear the rejection mark of ReplicaSet {name}")
        };
        let rejected = *rejected;
        change(ctx, &api, name, what, |rs: &mut ReplicaSet| {
            rs.status = None;
            let annotations = rs.metadata.annotations.get_or_insert_default();
            if rejected {
                annotations.insert(ANNOTATION_REJECTED.to_string(), "true".to_string());
            } else {
                annotations.remove(ANNOTATION_REJECTED);
            }
        })
        .await?;
    }
    Ok(())
}

/// How often [`change`] reads again when the object changed between its read and its write.
const CHANGE_ATTEMPTS: u32 = 3;

/// Changes the object `name`: reads it whole, makes `edit`, and applies it back whole by
/// server-side apply, with the `resourceVersion` read as a precondition. So this field manager
/// keeps (or takes) every field of the object and none is dropped (see the module doc), and a
/// change made by someone else in between is never overwritten: the write fails with a conflict
/// and is tried again on the newer object (a ReplicaSet's status moves often while its pods
/// start).
pub async fn change<K>(
    ctx: &Context,
    api: &Api<K>,
    name: &str,
    what: String,
    edit: impl Fn(&mut K),
) -> Result<K, ReconcileError>
where
    K: Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let mut attempt = 1;
    loop {
        let mut live = api.get(name).await.map_err(writing(what.clone()))?;
        edit(&mut live);
        let metadata = live.meta_mut();
        // An apply carries intent, not the server's bookkeeping (`managedFields` is refused).
        metadata.managed_fields = None;
        metadata.creation_timestamp = None;
        metadata.deletion_timestamp = None;
        metadata.generation = None;
        metadata.uid = None;
        ctx.ensure_leader()?;
        match api.patch(name, &apply_params(), &Patch::Apply(&live)).await {
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < CHANGE_ATTEMPTS => {
                attempt += 1;
            }
            outcome => return outcome.map_err(writing(what)),
        }
    }
}

/// Creates (or overwrites) `object` whole by server-side apply.
pub async fn apply_object<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    what: String,
) -> Result<K, ReconcileError>
where
    K: Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    ctx.ensure_leader()?;
    api.patch(&object.name_any(), &apply_params(), &Patch::Apply(object))
        .await
        .map_err(writing(what))
}

/// Server-side apply of a whole object by the operator's field manager.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Deletes the fresh baselines and the old revisions the decision gives up (one already gone is
/// fine: a decision taken before the watch saw the deletion).
pub async fn apply_deletes(
    ctx: &Context,
    rollout: &Applied<'_>,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), rollout.namespace);
    let sd_name = rollout.sd.name_any();
    let deletions = decision
        .baseline_delete
        .iter()
        .map(|name| (name, "deleted the fresh baseline"))
        .chain(
            decision
                .delete
                .iter()
                .map(|name| (name, "deleted old revision beyond the history limit")),
        );
    for (rs_name, done) in deletions {
        ctx.ensure_leader()?;
        match api.delete(rs_name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(writing(format!("delete ReplicaSet {rs_name}"))(error)),
        }
        info!(rollout = %sd_name, namespace = rollout.namespace, replica_set = %rs_name, "{done}");
    }
    Ok(())
}

/// Records the decision's events on the SafeDeployment (a failed event is logged, not retried)
/// and counts promotions and reverts.
pub async fn publish_events(
    ctx: &Context,
    sd: &SafeDeployment,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    let name = sd.name_any();
    let reference = sd.object_ref(&());
    for note in &decision.events {
        match note.reason {
            EventReason::RolloutReverted => ctx.metrics.reverts.inc(),
            EventReason::RolloutCompleted => ctx.metrics.promotions.inc(),
            _ => 0,
        };
        info!(rollout = %name, namespace = ?sd.namespace(), reason = %note.reason, note = %note.note, "event");
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.to_string(),
            note: Some(truncate(&note.note, 1000)),
            action: note.action.clone(),
            secondary: None,
        };
        ctx.ensure_leader()?;
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            warn!(rollout = %name, %error, "could not record event");
        }
    }
    Ok(())
}

/// Asks the API server, by a server-side dry run, whether it would accept the ReplicaSets of the
/// desired revision that do not exist yet. A template it refuses (an unknown enum value, an
/// invalid field that the SafeDeployment schema keeps as unknown) then blocks the revision at
/// preflight with the API server's own message, before anything is scaled, instead of failing
/// at the first scale. Returns one problem per refused component; a failure to ask is an error.
pub async fn dry_run_new_replica_sets(
    sd: &SafeDeployment,
    ctx: &Context,
    namespace: &str,
    revision: &Revision,
    existing: &[ReplicaSetView],
) -> Result<Vec<String>, ReconcileError> {
    let replica_sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.to_string()),
    };
    let mut refused = Vec::new();
    for component in &revision.components {
        let exists = existing
            .iter()
            .any(|rs| rs.revision == revision.hash && rs.component == component.name);
        if exists {
            continue;
        }
        let rs = workload::replica_set(sd, revision, component, 0, 0);
        match replica_sets.create(&params, &rs).await {
            Ok(_) => {}
            // Exists already (not yet in the cache, or not ours): nothing to learn here.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
                refused.push(format!(
                    "the API server refuses the ReplicaSet of component {}: {}",
                    component.name, status.message
                ));
            }
            Err(error) => {
                return Err(writing(format!(
                    "dry-run create of the ReplicaSet of component {}",
                    component.name
                ))(error));
            }
        }
    }
    Ok(refused)
}

/// Shows a failed reconcile where its owner looks: `Stalled` in the object's status (with the
/// API server's own message) and a Warning event. Reads the object fresh, so a status this
/// reconcile already wrote is kept, and writes only when the failure is new.
pub async fn report_failure(sd: &SafeDeployment, ctx: &Context, error: &ReconcileError) {
    let (Some(namespace), name) = (sd.namespace(), sd.name_any()) else {
        return;
    };
    let message = error.to_string();
    match error {
        ReconcileError::Panicked(_) => {
            tracing::error!(rollout = %name, %namespace, %message, "reconcile panicked; the object is Stalled, the others go on")
        }
        _ => warn!(rollout = %name, %namespace, %message, "reconcile failed"),
    }
    // Only the leader writes, the report included.
    if ctx.ensure_leader().is_err() {
        return;
    }
    let kind = error.failure_kind();
    let sds: Api<SafeDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let recorded = async {
        // Read through `get` on the object (which the operator holds to watch), not the status
        // subresource's own `get` (which the chart does not grant).
        let current = sds.get(&name).await?;
        let mut status = current.status.clone().unwrap_or_default();
        let generation = current.metadata.generation;
        if !failure::record_failure(&mut status, kind, &message, generation, Timestamp::now()) {
            return Ok::<bool, kube::Error>(false);
        }
        apply_status(&sds, &name, current.resource_version(), &status).await?;
        Ok(true)
    }
    .await;
    match recorded {
        Ok(false) => return,
        Ok(true) => {}
        Err(error) => {
            warn!(rollout = %name, %namespace, error = %describe_kube_error(&error), "could not record the failure in status");
        }
    }
    let event = Event {
        type_: EventType::Warning,
        reason: kind.reason().to_string(),
        note: Some(truncate(&message, 1000)),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &sd.object_ref(&())).await {
        warn!(rollout = %name, %error, "could not record event");
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), marked with an ellipsis.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
