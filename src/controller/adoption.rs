//! The writes of adopting a Deployment (`spec.workloadRef`; the decisions are
//! `core::adopt`'s): read the Deployment and hand the pipeline the spec it stands for, mark it
//! (label, original replica count, and the adoption finalizer on the SafeDeployment first),
//! scale it down as the SafeDeployment's pods become available, and on deletion scale it back
//! and wait until its own pods serve before letting the SafeDeployment (and, through owner
//! references, its pods) go.
//!
//! The Deployment is written by server-side apply under the operator's one field manager, and
//! only these fields: the label, the annotation and (unless `scaleDown: Never`) `spec.replicas`.
//! Once the operator owns `spec.replicas` every apply carries it, because an apply that leaves
//! out a field it owns would remove it (and the Deployment would fall back to one replica).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::FIELD_MANAGER;
use super::error::{ReconcileError, writing};
use super::{Context, finalizers};
use crate::api::adoption::{
    ADOPTION_FINALIZER, ANNOTATION_ORIGINAL_REPLICAS, LABEL_ADOPTED_BY, ScaleDown,
};
use crate::api::conditions::EventReason;
use crate::api::{SafeDeployment, SafeDeploymentStatus};
use crate::core::adopt::{self, DeploymentView, ReleaseStep, TakeOver};
use crate::core::rollout::ReplicaSetView;

/// How long a deletion waits before it looks at the Deployment again, should no change of it
/// arrive through the watch first.
const RELEASE_RECHECK: Duration = Duration::from_secs(10);

/// A SafeDeployment with its Deployment adopted, as this reconcile found them.
pub struct Adopted {
    /// The SafeDeployment as the pipeline sees it: the Deployment's template in its spec.
    pub effective: SafeDeployment,
    /// Whether the Deployment carries the adoption marks (else [`mark`] comes first).
    pub marked: bool,
    original_replicas: i32,
    scale_down: ScaleDown,
    deployment: String,
    deployment_replicas: i32,
}

fn deployments(ctx: &Context, namespace: &str) -> Api<Deployment> {
    Api::namespaced(ctx.client.clone(), namespace)
}

/// The Deployment `name`, or `None` if there is none.
async fn read(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Deployment>, ReconcileError> {
    deployments(ctx, namespace)
        .get_opt(name)
        .await
        .map_err(writing(format!("read Deployment {name}")))
}

/// The adopted Deployment of `sd` and the spec it stands for, or `None` without
/// `spec.workloadRef`. A Deployment that is missing or cannot be adopted is an error: the
/// SafeDeployment shows it as `Stalled` and nothing of it is scaled meanwhile.
pub async fn resolve(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
) -> Result<Option<Adopted>, ReconcileError> {
    let Some(reference) = &sd.spec.workload_ref else {
        return Ok(None);
    };
    let deployment = read(ctx, namespace, &reference.name)
        .await?
        .ok_or_else(|| ReconcileError::AdoptedDeploymentMissing(reference.name.clone()))?;
    let empty = PodTemplateSpec::default();
    let found = DeploymentView::of(&deployment, &empty);
    let resolved = adopt::resolve(&sd.spec, &sd.name_any(), &found)?;
    let mut effective = sd.clone();
    effective.spec = resolved.spec;
    Ok(Some(Adopted {
        effective,
        marked: resolved.marked,
        original_replicas: resolved.original_replicas,
        scale_down: reference.scale_down(),
        deployment: reference.name.clone(),
        deployment_replicas: found.replicas,
    }))
}

/// What an apply of the Deployment carries.
struct DeploymentPatch<'a> {
    /// The adoption marks: the SafeDeployment's name and the original replica count.
    marks: Option<(&'a str, i32)>,
    /// `spec.replicas`, while the operator owns it.
    replicas: Option<i32>,
}

async fn apply_deployment(
    ctx: &Context,
    namespace: &str,
    name: &str,
    patch: DeploymentPatch<'_>,
) -> Result<(), ReconcileError> {
    let mut body = json!({
        "apiVersion": Deployment::api_version(&()),
        "kind": Deployment::kind(&()),
        "metadata": {"name": name},
    });
    if let Some((owner, original)) = patch.marks {
        body["metadata"]["labels"] = json!({LABEL_ADOPTED_BY: owner});
        body["metadata"]["annotations"] =
            json!({ANNOTATION_ORIGINAL_REPLICAS: original.to_string()});
    }
    if let Some(replicas) = patch.replicas {
        body["spec"] = json!({"replicas": replicas});
    }
    ctx.ensure_leader()?;
    deployments(ctx, namespace)
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(writing(format!("apply Deployment {name}")))?;
    Ok(())
}

/// Scales the marked Deployment `name` to `wanted` (its marks kept, `original` recorded) and
/// records `note` as a `DeploymentScaled` Event.
async fn scale_marked(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
    (name, original, wanted): (&str, i32, i32),
    note: String,
) -> Result<(), ReconcileError> {
    let sd_name = sd.name_any();
    apply_deployment(
        ctx,
        namespace,
        name,
        DeploymentPatch {
            marks: Some((&sd_name, original)),
            replicas: Some(wanted),
        },
    )
    .await?;
    announce(ctx, sd, EventReason::DeploymentScaled, note).await;
    Ok(())
}

/// Records an Event on `sd` (best effort: a failed Event write is logged).
async fn announce(ctx: &Context, sd: &SafeDeployment, reason: EventReason, note: String) {
    info!(rollout = %sd.name_any(), namespace = ?sd.namespace(), %reason, %note, "adoption");
    let event = Event {
        type_: EventType::Normal,
        reason: reason.to_string(),
        note: Some(note),
        action: "Adopt".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &sd.object_ref(&())).await {
        warn!(%error, rollout = %sd.name_any(), "could not record an adoption event");
    }
}

/// Marks the Deployment as adopted: first the adoption finalizer on the SafeDeployment (so a
/// deletion from now on hands the Deployment back), then the label and the original replica
/// count on the Deployment (and ownership of its `spec.replicas`, at the count it has).
pub async fn mark(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
    adopted: &Adopted,
) -> Result<(), ReconcileError> {
    finalizers::set(ctx, sd, namespace, ADOPTION_FINALIZER, true).await?;
    let sd_name = sd.name_any();
    apply_deployment(
        ctx,
        namespace,
        &adopted.deployment,
        DeploymentPatch {
            marks: Some((&sd_name, adopted.original_replicas)),
            replicas: (adopted.scale_down != ScaleDown::Never)
                .then_some(adopted.deployment_replicas),
        },
    )
    .await?;
    announce(
        ctx,
        sd,
        EventReason::DeploymentAdopted,
        format!(
            "adopted Deployment {} ({} replicas, scaleDown {}): its template is this SafeDeployment's workload",
            adopted.deployment,
            adopted.original_replicas,
            adopted.scale_down.as_str()
        ),
    )
    .await;
    Ok(())
}

/// Scales the adopted Deployment to what the applied `status` and the SafeDeployment's
/// available pods (`replica_sets`) call for, if that differs from what it has.
pub async fn scale(
    ctx: &Context,
    namespace: &str,
    adopted: &Adopted,
    status: &SafeDeploymentStatus,
    replica_sets: &[ReplicaSetView],
) -> Result<(), ReconcileError> {
    let sd = &adopted.effective;
    let available = replica_sets
        .iter()
        .fold(0i32, |sum, rs| sum.saturating_add(rs.ready.max(0)));
    let replicas = sd.spec.replicas.unwrap_or(adopted.original_replicas);
    let now = TakeOver {
        replicas,
        available,
        at_rest: status.stable_revision.is_some() && status.canary_revision.is_none(),
    };
    let Some(wanted) =
        adopt::deployment_replicas(adopted.scale_down, adopted.original_replicas, now)
    else {
        return Ok(());
    };
    if wanted == adopted.deployment_replicas {
        return Ok(());
    }
    scale_marked(
        ctx,
        sd,
        namespace,
        (&adopted.deployment, adopted.original_replicas, wanted),
        format!(
            "scaled Deployment {} from {} to {wanted} replicas: {available} of {replicas} pods of this SafeDeployment are available",
            adopted.deployment, adopted.deployment_replicas
        ),
    )
    .await
}

/// On deletion: hands the adopted Deployment back. Returns how long to wait before looking
/// again while its pods come up (the SafeDeployment's pods serve meanwhile), or `None` once it
/// serves on its own and the adoption finalizer is gone.
pub async fn release_on_deletion(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
) -> Result<Option<Duration>, ReconcileError> {
    if !finalizers::has(sd, ADOPTION_FINALIZER) {
        return Ok(None);
    }
    let sd_name = sd.name_any();
    let reference = sd.spec.workload_ref.as_ref();
    let deployment = match reference {
        Some(reference) => read(ctx, namespace, &reference.name).await?,
        None => None,
    };
    let empty = PodTemplateSpec::default();
    // Gone, or not marked as ours (someone took the label off): nothing of the operator's to
    // undo on it.
    let found = deployment.as_ref().map(|d| DeploymentView::of(d, &empty));
    if let (Some(reference), Some(found)) = (reference, found)
        && found.adopted_by == Some(sd_name.as_str())
    {
        let scale_down = reference.scale_down();
        let owns_replicas = scale_down != ScaleDown::Never;
        let original = adopt::original_replicas(&found).unwrap_or(found.replicas.max(1));
        match adopt::release(scale_down, &found) {
            ReleaseStep::ScaleBack(wanted) => {
                scale_marked(
                    ctx,
                    sd,
                    namespace,
                    (&reference.name, original, wanted),
                    format!(
                        "scaling Deployment {} back from {} to {wanted} replicas before the SafeDeployment goes; its pods keep serving until then",
                        reference.name, found.replicas
                    ),
                )
                .await?;
                return Ok(Some(RELEASE_RECHECK));
            }
            ReleaseStep::Wait { available, wanted } => {
                info!(rollout = %sd_name, deployment = %reference.name, available, wanted,
                    "waiting for the Deployment's pods before the SafeDeployment goes");
                return Ok(Some(RELEASE_RECHECK));
            }
            ReleaseStep::Done => {
                apply_deployment(
                    ctx,
                    namespace,
                    &reference.name,
                    DeploymentPatch {
                        marks: None,
                        replicas: owns_replicas.then_some(found.replicas),
                    },
                )
                .await?;
                announce(
                    ctx,
                    sd,
                    EventReason::DeploymentReleased,
                    format!(
                        "Deployment {} serves on its own again ({} of {} pods available); the SafeDeployment's pods go with it",
                        reference.name, found.available, found.replicas
                    ),
                )
                .await;
            }
        }
    }
    finalizers::set(ctx, sd, namespace, ADOPTION_FINALIZER, false).await?;
    Ok(None)
}
