//! The operator's finalizers on a SafeDeployment, written as one set: `metadata.finalizers` is a
//! set list under server-side apply, so the operator's field manager owns exactly the entries
//! of its last apply. Each apply therefore carries every operator finalizer that stays (the
//! routes' and the adoption's), and dropping one never drops the other.

use kube::api::{Api, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::error::{ReconcileError, writing};
use super::{Context, apply};
use crate::api::SafeDeployment;
use crate::api::adoption::ADOPTION_FINALIZER;
use crate::api::routing::ROUTES_FINALIZER;

/// Every finalizer the operator sets, in the order it writes them.
const OPERATOR_FINALIZERS: [&str; 2] = [ROUTES_FINALIZER, ADOPTION_FINALIZER];

/// Whether `sd` carries `finalizer`.
pub fn has(sd: &SafeDeployment, finalizer: &str) -> bool {
    sd.finalizers().iter().any(|f| f == finalizer)
}

/// Adds (`present`) or removes `finalizer`, keeping the operator's other finalizers as `sd`
/// carries them. Writes nothing when `sd` already agrees.
pub async fn set(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
    finalizer: &str,
    present: bool,
) -> Result<(), ReconcileError> {
    if has(sd, finalizer) == present {
        return Ok(());
    }
    let finalizers: Vec<&str> = OPERATOR_FINALIZERS
        .into_iter()
        .filter(|f| if *f == finalizer { present } else { has(sd, f) })
        .collect();
    let patch = json!({
        "apiVersion": SafeDeployment::api_version(&()),
        "kind": SafeDeployment::kind(&()),
        "metadata": {"name": sd.name_any(), "finalizers": finalizers},
    });
    let api: Api<SafeDeployment> = Api::namespaced(ctx.client.clone(), namespace);
    let verb = if present { "set" } else { "remove" };
    ctx.ensure_leader()?;
    api.patch(
        &sd.name_any(),
        &apply::apply_params(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(writing(format!("{verb} the finalizer {finalizer}")))?;
    Ok(())
}
