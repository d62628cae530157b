//! Fetches what the attestation check needs (the namespace's policy, the envelope from the spec,
//! a ConfigMap or a Secret) and hands it to the pure verifier in `attest::verify`; and
//! [`namespace_policy`], the one lookup of the policy that applies to a namespace.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::ResourceExt;
use kube::api::Api;

use super::Context;
use super::error::ReconcileError;
use crate::api::{KeyReference, SafeDeployment, SafeDeploymentPolicy};
use crate::attest::policy::{needs_namespace_labels, resolve_policy};
use crate::attest::verify::{Expected, Verdict, evaluate};
use crate::core::revision::Revision;
use crate::core::rollout::AttestationGate;

/// Default key of the envelope in a referenced ConfigMap or Secret.
pub const DEFAULT_KEY: &str = "attestation.json";

/// The attestation verdict for the revision the spec describes.
pub async fn gate(
    sd: &SafeDeployment,
    ctx: &Context,
    revision: &Revision,
) -> Result<AttestationGate, ReconcileError> {
    let namespace = sd.namespace().ok_or(ReconcileError::NoNamespace)?;
    let policy = namespace_policy(ctx, &namespace).await?;
    let policy_name = policy.as_ref().map(|p| p.name_any());
    let policy_spec = policy.map(|p| p.spec);
    // The configuration digest binds the referenced ConfigMaps' and Secrets' contents too.
    let expected = match Expected::for_spec_with(&sd.spec, &revision.config_objects) {
        Ok(expected) => expected,
        Err(rejection) if policy_spec.as_ref().is_some_and(|p| p.require_attestation) => {
            return Ok(AttestationGate::Rejected {
                reason: rejection.reason,
                message: rejection.message,
            });
        }
        // Without a policy requiring attestations, image pinning is not enforced here.
        Err(_) => Expected {
            image_digests: Vec::new(),
            config_digest: String::new(),
        },
    };
    let envelope = match (&policy_spec, &sd.spec.attestation) {
        (Some(p), Some(source)) if p.require_attestation => {
            envelope_bytes(ctx, &namespace, source).await?
        }
        _ => None,
    };
    let verdict = evaluate(
        envelope.as_deref(),
        &expected,
        policy_spec.as_ref(),
        jiff::Timestamp::now(),
    );
    let policy_note = policy_name
        .map(|n| format!(" (policy {n})"))
        .unwrap_or_default();
    Ok(match verdict {
        Verdict::Verified(_) | Verdict::NotRequired => {
            let message = format!("{}{policy_note}", verdict.message());
            if matches!(verdict, Verdict::NotRequired) {
                AttestationGate::NotRequired(message)
            } else {
                AttestationGate::Verified(message)
            }
        }
        Verdict::Rejected(rejection) => AttestationGate::Rejected {
            reason: rejection.reason,
            message: format!("{}{policy_note}", rejection.message),
        },
    })
}

/// The SafeDeploymentPolicy that applies to `namespace` (by its name and its labels), if any.
/// Attestations, image pinning and the analyses' egress all follow this one policy. The labels
/// are read here (the operator caches no Namespaces), and only when a policy selects by labels
/// and none names the namespace: otherwise they cannot change the answer, and a reconcile
/// makes no request for them.
pub(super) async fn namespace_policy(
    ctx: &Context,
    namespace: &str,
) -> Result<Option<SafeDeploymentPolicy>, ReconcileError> {
    let policies = ctx.policies.state();
    let labels = if needs_namespace_labels(namespace, policies.iter().map(|p| p.as_ref())) {
        let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
        namespaces
            .get_metadata_opt(namespace)
            .await?
            .map(|ns| ns.labels().clone())
            .unwrap_or_default()
    } else {
        Default::default()
    };
    Ok(resolve_policy(namespace, &labels, policies.iter().map(|p| p.as_ref())).cloned())
}

/// The envelope bytes from the source, or None when the referenced object or key is missing
/// (which the verifier reports as `Missing`).
async fn envelope_bytes(
    ctx: &Context,
    namespace: &str,
    source: &crate::api::AttestationSource,
) -> Result<Option<Vec<u8>>, ReconcileError> {
    if let Some(inline) = &source.inline {
        return Ok(Some(inline.clone().into_bytes()));
    }
    let key_of = |r: &KeyReference| r.key.clone().unwrap_or_else(|| DEFAULT_KEY.to_string());
    if let Some(reference) = &source.config_map_ref {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
        let key = key_of(reference);
        return Ok(api.get_opt(&reference.name).await?.and_then(|cm| {
            cm.data
                .as_ref()
                .and_then(|d| d.get(&key))
                .map(|v| v.clone().into_bytes())
                .or_else(|| {
                    cm.binary_data
                        .as_ref()
                        .and_then(|d| d.get(&key))
                        .map(|v| v.0.clone())
                })
        }));
    }
    if let Some(reference) = &source.secret_ref {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
        let key = key_of(reference);
        return Ok(api.get_opt(&reference.name).await?.and_then(|s| {
            s.data
                .as_ref()
                .and_then(|d| d.get(&key))
                .map(|v| v.0.clone())
        }));
    }
    Ok(None)
}
