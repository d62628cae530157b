//! One reconcile: gather the observation from the caches, ask the core for a decision, then
//! carry it out in a crash-safe order (status first, with a resourceVersion precondition, then
//! scaling, then events).

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::{Context, FIELD_MANAGER, analysis, attestation, config, observe, workload};
use crate::api::{SafeDeployment, SafeDeploymentStatus};
use crate::core::config::ANNOTATION_CONFIG_VERSIONS;
use crate::core::revision::{
    EmptySpec, LABEL_BASELINE_OF, LABEL_COMPONENT, LABEL_NAME, LABEL_REVISION, Revision,
};
use crate::core::rollout::{AttestationGate, Decision, Observation, ScaleAction, decide};

/// Why a reconcile failed; each is retried with a back-off.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API call failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The spec has no template (the schema prevents this).
    #[error("{0}")]
    EmptySpec(#[from] EmptySpec),
    /// The object has no namespace.
    #[error("SafeDeployment without a namespace")]
    NoNamespace,
    /// A ReplicaSet of an old revision is gone and cannot be rebuilt.
    #[error("the ReplicaSet for {0} is gone and its template is unknown")]
    LostReplicaSet(String),
    /// A configuration copy cannot be made or trusted.
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// This replica stopped being the leader (or is shutting down) before a write: the reconcile
    /// stops without it (not an error; see [`reconcile`]).
    #[error("{0}")]
    NotLeader(#[from] super::leader::NotLeader),
}

impl ReconcileError {
    fn category(&self) -> &'static str {
        match self {
            ReconcileError::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            ReconcileError::Kube(_) => "kubernetes",
            ReconcileError::EmptySpec(_) | ReconcileError::NoNamespace => "invalid_spec",
            ReconcileError::LostReplicaSet(_) => "lost_replica_set",
            ReconcileError::Config(_) => "config",
            ReconcileError::NotLeader(_) => "not_leader",
        }
    }
}

/// Reconciles one SafeDeployment.
pub async fn reconcile(
    sd: Arc<SafeDeployment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let outcome = match reconcile_inner(&sd, &ctx).await {
        // Leadership ended mid-reconcile: stop quietly, the new leader looks at everything.
        Err(ReconcileError::NotLeader(refused)) => {
            info!(rollout = %sd.name_any(), namespace = ?sd.namespace(), %refused, "reconcile stopped before a write");
            Ok(Action::await_change())
        }
        outcome => outcome,
    };
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    if let Err(error) = &outcome {
        crate::telemetry::Metrics::count(&ctx.metrics.reconcile_errors, error.category());
    }
    outcome
}

/// Retries failed reconciles after a short back-off.
pub fn error_policy(sd: Arc<SafeDeployment>, error: &ReconcileError, _ctx: Arc<Context>) -> Action {
    warn!(rollout = %sd.name_any(), namespace = ?sd.namespace(), %error, "reconcile failed; retrying");
    super::backoff_action()
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
    let prepared = config::prepare(sd, ctx, &original_status, &owned).await?;
    let revision = prepared.revision.clone();

    let attestation = attestation_for(sd, ctx, &revision, &status).await?;
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
    };
    Ok(wake
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// At rest the verdict recorded for the stable revision stands; otherwise the attestation is
/// fetched and verified.
async fn attestation_for(
    sd: &SafeDeployment,
    ctx: &Context,
    revision: &Revision,
    status: &SafeDeploymentStatus,
) -> Result<AttestationGate, ReconcileError> {
    let at_rest = status.stable_revision.as_deref() == Some(revision.hash.as_str())
        && status.canary_revision.is_none();
    if at_rest
        && let Some(previous) = status
            .attestation
            .as_ref()
            .filter(|v| v.revision == revision.hash)
    {
        return Ok(if !previous.verified {
            AttestationGate::Rejected {
                reason: previous.reason.clone(),
                message: previous.message.clone(),
            }
        } else if previous.reason == "NotRequired" {
            AttestationGate::NotRequired(previous.message.clone())
        } else {
            AttestationGate::Verified(previous.message.clone())
        });
    }
    let gate = attestation::gate(sd, ctx, revision).await?;
    let reason = match &gate {
        AttestationGate::Verified(_) => "Verified",
        AttestationGate::NotRequired(_) => "NotRequired",
        AttestationGate::Rejected { reason, .. } => reason.as_str(),
    };
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
    if &decision.status != status {
        let sds: Api<SafeDeployment> = Api::namespaced(ctx.client.clone(), namespace);
        // The resourceVersion precondition makes a decision taken on a stale cache fail instead
        // of repeating a step.
        let patch = json!({
            "apiVersion": "safedeploy.dev/v1alpha1",
            "kind": "SafeDeployment",
            "metadata": {"name": name, "resourceVersion": sd.resource_version()},
            "status": decision.status,
        });
        ctx.ensure_leader()?;
        sds.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
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
                .await?;
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
                    .await?;
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
            Err(error) => return Err(error.into()),
        }
        info!(rollout = %name, namespace, replica_set = %rs_name, "deleted the fresh baseline");
    }
    for rs_name in &decision.delete {
        ctx.ensure_leader()?;
        replica_sets
            .delete(rs_name, &DeleteParams::background())
            .await?;
        info!(rollout = %name, namespace, replica_set = %rs_name, "deleted old revision beyond the history limit");
    }

    let reference = sd.object_ref(&());
    for note in &decision.events {
        match note.reason.as_str() {
            "RolloutReverted" => ctx.metrics.reverts.inc(),
            "RolloutCompleted" => ctx.metrics.promotions.inc(),
            _ => 0,
        };
        info!(rollout = %name, namespace, reason = %note.reason, note = %note.note, "event");
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.clone(),
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
