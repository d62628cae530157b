//! One reconcile: gather the observation from the caches, ask the core for a decision, then
//! carry it out in a crash-safe order (status first, with a resourceVersion precondition, then
//! scaling, then events). A reconcile that fails (an API error) or panics (a bug) is contained
//! to its object: it shows as `Stalled` in that object's status and as a Warning event, and is
//! retried with exponential back-off and jitter, while every other object goes on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{error, info, warn};

use super::error::{ReconcileError, describe_kube_error, writing};
use super::{Context, FIELD_MANAGER, analysis, attestation, config, observe, workload};
use crate::api::conditions::EventReason;
use crate::api::labels::{
    ANNOTATION_CONFIG_VERSIONS, LABEL_BASELINE_OF, LABEL_COMPONENT, LABEL_NAME, LABEL_REVISION,
};
use crate::api::{SafeDeployment, SafeDeploymentStatus};
use crate::core::failure;
use crate::core::revision::Revision;
use crate::core::rollout::{
    AttestationGate, Decision, MAX_REQUEUE, Observation, ScaleAction, decide,
};

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Reconciles one SafeDeployment.
pub async fn reconcile(
    sd: Arc<SafeDeployment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    // A panic on one tenant's object must not stop the operator for every tenant: it is caught
    // here, recorded on that object, and retried with back-off like an API error.
    let outcome = match AssertUnwindSafe(reconcile_inner(&sd, &ctx))
        .catch_unwind()
        .await
    {
        // Leadership ended mid-reconcile: stop quietly, the new leader looks at everything.
        Ok(Err(ReconcileError::NotLeader(refused))) => {
            info!(rollout = %sd.name_any(), namespace = ?sd.namespace(), %refused, "reconcile stopped before a write");
            Ok(Action::await_change())
        }
        Ok(outcome) => outcome,
        Err(payload) => Err(ReconcileError::Panicked(panic_message(payload.as_ref()))),
    };
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    match &outcome {
        Ok(_) => ctx.failures.forget(&ObjectRef::from_obj(sd.as_ref())),
        Err(error) => {
            crate::telemetry::Metrics::count(&ctx.metrics.reconcile_errors, error.category());
            if !error.is_conflict() {
                report_failure(&sd, &ctx, error).await;
            }
        }
    }
    outcome
}

/// Retries a failed reconcile after exponential back-off with jitter (a conflict at once).
pub fn error_policy(sd: Arc<SafeDeployment>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        return Action::requeue(super::backoff::CONFLICT_RETRY);
    }
    let failures = ctx.failures.record(ObjectRef::from_obj(sd.as_ref()));
    let wait = super::backoff::retry_delay(failures, super::backoff::jitter());
    warn!(rollout = %sd.name_any(), namespace = ?sd.namespace(), %error, failures, retry_in = ?wait, "reconcile failed; retrying");
    Action::requeue(wait)
}

/// Shows a failed reconcile where its owner looks: `Stalled` in the object's status (with the
/// API server's own message) and a Warning event. Reads the object fresh, so a status this
/// reconcile already wrote is kept, and writes only when the failure is new.
async fn report_failure(sd: &SafeDeployment, ctx: &Context, error: &ReconcileError) {
    let (Some(namespace), name) = (sd.namespace(), sd.name_any()) else {
        return;
    };
    let message = error.to_string();
    match error {
        ReconcileError::Panicked(_) => {
            error!(rollout = %name, %namespace, %message, "reconcile panicked; the object is Stalled, the others go on")
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
        let current = sds.get_status(&name).await?;
        let mut status = current.status.clone().unwrap_or_default();
        let generation = current.metadata.generation;
        if !failure::record_failure(&mut status, kind, &message, generation, Timestamp::now()) {
            return Ok::<bool, kube::Error>(false);
        }
        write_status(&sds, &name, current.resource_version(), &status).await?;
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

/// Writes the whole status by server-side apply (the operator's one field manager), with a
/// `resourceVersion` precondition when one is given.
async fn write_status(
    sds: &Api<SafeDeployment>,
    name: &str,
    resource_version: Option<String>,
    status: &SafeDeploymentStatus,
) -> Result<(), kube::Error> {
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
    sds.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

async fn reconcile_inner(sd: &SafeDeployment, ctx: &Context) -> Result<Action, ReconcileError> {
    if sd.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the ReplicaSets.
        return Ok(Action::await_change());
    }
    if !ctx.readiness.is_ready() {
        return Ok(Action::requeue(std::time::Duration::from_millis(200)));
    }
    if ctx.leader.as_ref().is_some_and(|l| !l.is_leader()) {
        // A follower keeps its caches warm and writes nothing; it is told to look at
        // everything when it becomes the leader.
        return Ok(Action::await_change());
    }
    let namespace = sd.namespace().ok_or(ReconcileError::NoNamespace)?;
    let name = sd.name_any();
    super::fault::panic_if_asked(&name);
    let uid = sd.uid().unwrap_or_default();
    let original_status = sd.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let mut status = original_status.clone();
    let (baseline_pods, pods): (Vec<_>, Vec<_>) = ctx
        .pods
        .state()
        .iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|pod| pod.labels().get(LABEL_NAME) == Some(&name))
        .filter_map(|pod| Some((observe::is_baseline(pod.labels()), observe::pod_view(pod)?)))
        .partition(|(baseline, _)| *baseline);
    let pods: Vec<_> = pods.into_iter().map(|(_, pod)| pod).collect();
    let baseline_pods: Vec<_> = baseline_pods.into_iter().map(|(_, pod)| pod).collect();
    let (analyses, analysis_wake) =
        analysis::refresh(sd, ctx, &mut status, &pods, &baseline_pods, now).await?;

    let owned: Vec<_> = ctx
        .replica_sets
        .state()
        .into_iter()
        .filter(|rs| rs.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .collect();
    let replica_sets: Vec<_> = owned
        .iter()
        .filter_map(|rs| observe::replica_set_view(rs))
        .collect();
    // The fresh baseline (found again by its role label after a restart) is kept apart: it is
    // not a revision and never counts as capacity.
    let baseline_replica_sets: Vec<_> = owned
        .iter()
        .filter_map(|rs| observe::baseline_replica_set_view(rs))
        .collect();
    // The revision includes the referenced configuration's contents (read only while rolling
    // out), with its preflight.
    let mut prepared = config::prepare(sd, ctx, &original_status, &owned).await?;
    let revision = prepared.revision.clone();
    let refused = dry_run_new_replica_sets(sd, ctx, &namespace, &revision, &replica_sets).await?;
    if !refused.is_empty() {
        let mut problems = prepared.preflight.clone().err().unwrap_or_default();
        problems.extend(refused);
        prepared.preflight = Err(problems);
    }

    let running = replica_sets.iter().any(|rs| rs.revision == revision.hash);
    let attestation = attestation_for(sd, ctx, &revision, &status, running).await?;
    let observation = Observation {
        name: &name,
        generation: sd.metadata.generation,
        spec: &sd.spec,
        desired: &revision,
        status: &status,
        replica_sets: &replica_sets,
        pods: &pods,
        baseline_replica_sets: &baseline_replica_sets,
        baseline_pods: &baseline_pods,
        attestation,
        preflight: prepared.preflight.clone(),
        analyses,
        requests: observe::requests(sd.annotations()),
        now,
    };
    let decision = decide(&observation);
    carry_out(
        sd,
        ctx,
        &namespace,
        &prepared,
        &owned,
        &original_status,
        &decision,
    )
    .await?;
    // Analysis measurements are timed: look again when the next one is due.
    let wake = match (decision.requeue_after, analysis_wake) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .map(|wake| wake.min(MAX_REQUEUE));
    Ok(wake
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// Asks the API server, by a server-side dry run, whether it would accept the ReplicaSets of the
/// desired revision that do not exist yet. A template it refuses (an unknown enum value, an
/// invalid field that the SafeDeployment schema keeps as unknown) then blocks the revision at
/// preflight with the API server's own message, before anything is scaled, instead of failing
/// at the first scale. Returns one problem per refused component; a failure to ask is an error.
async fn dry_run_new_replica_sets(
    sd: &SafeDeployment,
    ctx: &Context,
    namespace: &str,
    revision: &Revision,
    existing: &[crate::core::rollout::ReplicaSetView],
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

/// At rest the verdict recorded for the stable revision stands; otherwise the attestation is
/// fetched and verified. "At rest" needs the revision's ReplicaSets to exist (`running`): a
/// status that names a revision stable that never ran here is not trusted.
async fn attestation_for(
    sd: &SafeDeployment,
    ctx: &Context,
    revision: &Revision,
    status: &SafeDeploymentStatus,
    running: bool,
) -> Result<AttestationGate, ReconcileError> {
    let at_rest = running
        && status.stable_revision.as_deref() == Some(revision.hash.as_str())
        && status.canary_revision.is_none();
    if at_rest
        && let Some(previous) = status
            .attestation
            .as_ref()
            .filter(|v| v.revision == revision.hash)
    {
        return Ok(AttestationGate::from_verdict(previous));
    }
    let gate = attestation::gate(sd, ctx, revision).await?;
    let reason = gate.reason();
    crate::telemetry::Metrics::count(&ctx.metrics.attestation_verdicts, reason);
    Ok(gate)
}

async fn carry_out(
    sd: &SafeDeployment,
    ctx: &Context,
    namespace: &str,
    prepared: &config::Prepared,
    owned: &[Arc<ReplicaSet>],
    status: &SafeDeploymentStatus,
    decision: &Decision,
) -> Result<(), ReconcileError> {
    let revision = &prepared.revision;
    let name = sd.name_any();
    let sds: Api<SafeDeployment> = Api::namespaced(ctx.client.clone(), namespace);
    if &decision.status != status {
        // The resourceVersion precondition makes a decision taken on a stale cache fail instead
        // of repeating a step.
        ctx.ensure_leader()?;
        write_status(&sds, &name, sd.resource_version(), &decision.status)
            .await
            .map_err(writing("write status"))?;
    }

    let replica_sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    // The fresh baseline first, so it is never younger than the canary it is compared with.
    for action in &decision.baseline_scale {
        scale_baseline(sd, ctx, &replica_sets, owned, action).await?;
    }
    for action in &decision.scale {
        let rs_name =
            Revision::replica_set_name(&name, revision.single, &action.component, &action.revision);
        // The owned ReplicaSets were gathered once for the observation; no second store scan.
        let existing = owned.iter().find(|rs| rs.name_any() == rs_name).cloned();
        if let Some(existing) = existing {
            // Scaled up from zero: its configuration copies must exist before its pods start.
            let from_zero = existing.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0;
            if action.replicas > 0 && from_zero {
                let digests = config::recorded_config(&existing).unwrap_or_default();
                config::ensure_copies(
                    sd,
                    ctx,
                    &action.revision,
                    &digests,
                    &existing,
                    &prepared.originals,
                )
                .await?;
            }
            let patch = json!({"spec": {"replicas": action.replicas}});
            ctx.ensure_leader()?;
            replica_sets
                .patch(&rs_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(writing(format!(
                    "scale ReplicaSet {rs_name} to {}",
                    action.replicas
                )))?;
        } else if action.revision == revision.hash {
            let Some(component) = revision
                .components
                .iter()
                .find(|c| c.name == action.component)
            else {
                continue;
            };
            let number = decision
                .status
                .revisions
                .iter()
                .find(|r| r.hash == revision.hash)
                .map(|r| r.number)
                .unwrap_or(0);
            let mut rs = workload::replica_set(sd, revision, component, number, action.replicas);
            if !prepared.versions.is_empty() {
                rs.metadata.annotations.get_or_insert_default().insert(
                    ANNOTATION_CONFIG_VERSIONS.to_string(),
                    config::versions_annotation(&prepared.versions),
                );
            }
            if revision.config_objects.is_empty() {
                ctx.ensure_leader()?;
                replica_sets
                    .patch(
                        &rs_name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&rs),
                    )
                    .await
                    .map_err(writing(format!("create ReplicaSet {rs_name}")))?;
            } else {
                config::create_replica_set_with_copies(
                    sd,
                    ctx,
                    revision,
                    rs,
                    action.replicas,
                    &prepared.originals,
                )
                .await?;
            }
        } else {
            return Err(ReconcileError::LostReplicaSet(rs_name));
        }
        info!(rollout = %name, namespace, replica_set = %rs_name, replicas = action.replicas, "scaled");
    }
    for rs_name in &decision.baseline_delete {
        ctx.ensure_leader()?;
        match replica_sets
            .delete(rs_name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            // Already gone (a decision taken before the watch saw the deletion).
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(writing(format!("delete ReplicaSet {rs_name}"))(error)),
        }
        info!(rollout = %name, namespace, replica_set = %rs_name, "deleted the fresh baseline");
    }
    for rs_name in &decision.delete {
        ctx.ensure_leader()?;
        match replica_sets
            .delete(rs_name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            // Already gone: the deletion this decision wants has happened.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(writing(format!("delete ReplicaSet {rs_name}"))(error)),
        }
        info!(rollout = %name, namespace, replica_set = %rs_name, "deleted old revision beyond the history limit");
    }

    let reference = sd.object_ref(&());
    for note in &decision.events {
        match note.reason {
            EventReason::RolloutReverted => ctx.metrics.reverts.inc(),
            EventReason::RolloutCompleted => ctx.metrics.promotions.inc(),
            _ => 0,
        };
        info!(rollout = %name, namespace, reason = %note.reason, note = %note.note, "event");
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
    // Every write went through: a failure recorded earlier is over.
    let mut cleared = decision.status.clone();
    if failure::clear_failure(&mut cleared, Timestamp::now()) {
        ctx.ensure_leader()?;
        write_status(&sds, &name, None, &cleared)
            .await
            .map_err(writing("clear the Stalled condition"))?;
    }
    Ok(())
}

/// Creates or scales the fresh baseline ReplicaSet of one component. A new one copies the
/// stable ReplicaSet's template (read from the API: the cache keeps no templates), so it runs
/// exactly what the stable runs, configuration copies included.
async fn scale_baseline(
    sd: &SafeDeployment,
    ctx: &Context,
    replica_sets: &Api<ReplicaSet>,
    owned: &[Arc<ReplicaSet>],
    action: &ScaleAction,
) -> Result<(), ReconcileError> {
    let is = |rs: &ReplicaSet, baseline: bool| {
        let labels = rs.labels();
        observe::is_baseline(labels) == baseline
            && labels.get(LABEL_COMPONENT) == Some(&action.component)
            && labels.get(if baseline {
                LABEL_BASELINE_OF
            } else {
                LABEL_REVISION
            }) == Some(&action.revision)
    };
    if let Some(existing) = owned.iter().find(|rs| is(rs, true)) {
        let patch = json!({"spec": {"replicas": action.replicas}});
        ctx.ensure_leader()?;
        replica_sets
            .patch(
                &existing.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        info!(rollout = %sd.name_any(), replica_set = %existing.name_any(), replicas = action.replicas, "scaled the fresh baseline");
        return Ok(());
    }
    let stable_name = owned
        .iter()
        .find(|rs| is(rs, false))
        .map(|rs| rs.name_any())
        .ok_or_else(|| ReconcileError::LostReplicaSet(action.revision.clone()))?;
    let stable = replica_sets.get(&stable_name).await?;
    let rs = workload::baseline_replica_set(sd, &stable, action.replicas)
        .ok_or_else(|| ReconcileError::LostReplicaSet(stable_name.clone()))?;
    let rs_name = rs.name_any();
    ctx.ensure_leader()?;
    replica_sets
        .patch(
            &rs_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&rs),
        )
        .await?;
    info!(rollout = %sd.name_any(), replica_set = %rs_name, replicas = action.replicas, "created the fresh baseline");
    Ok(())
}

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
