//! The I/O side of configuration versioning and preflight: reads the ConfigMaps and Secrets the
//! desired revision references (and its ServiceAccounts, PersistentVolumeClaims and image pull
//! Secrets) to compute the revision and run `core::preflight`, and creates the revision's
//! immutable configuration copies before any pod that mounts them can start.
//!
//! * **When it reads.** A revision is its templates plus the contents of the objects they
//!   reference, so an edit of a referenced ConfigMap or Secret alone is a new revision (rolled
//!   out, and attested, like a template change). Reading every object on every reconcile would
//!   not scale, so the operator keeps metadata-only caches of ConfigMaps and Secrets (name and
//!   `resourceVersion`; never their data) and reads contents only when the spec changed, a
//!   canary is in progress, the desired revision has no ReplicaSet yet, or a referenced
//!   object's `resourceVersion` differs from the one its ReplicaSet recorded (annotation
//!   `safedeploy.dev/config-versions`, next to the digests in `safedeploy.dev/config-objects`).
//!   An edit that leaves the content as it was (a label, say) costs one read, after which the
//!   recorded versions are brought up to date.
//! * **Copies and their lifetime.** A copy `<original>-<hash10>` is owned (non-controller owner
//!   references) by every ReplicaSet that mounts it, so Kubernetes' garbage collector deletes it
//!   with the last of them — when the history limit deletes the revision, or the SafeDeployment
//!   goes. Copies are named by content, so two revisions with the same content share one copy.
//! * **Order.** A ReplicaSet of a revision with copies is created at zero replicas, its copies
//!   are created (owned by it), and only then is it scaled; an existing ReplicaSet scaled up
//!   from zero gets its copies checked (re-created from the original if its content still
//!   matches) first. So no pod starts before its configuration exists.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::Context;
use super::attestation::namespace_policy;
use super::cached::OwnedReplicaSet;
use super::error::{ConfigError, ReconcileError};
use crate::api::labels::ANNOTATION_CONFIG_VERSIONS;
use crate::api::{SafeDeployment, SafeDeploymentStatus};
use crate::core::config::{
    ConfigKind, ConfigObjectRef, config_map_copy, config_map_digest, config_map_keys, copy_name,
    referenced_objects, secret_copy, secret_digest, secret_keys,
};
use crate::core::preflight::{self, World};
use crate::core::revision::Revision;

/// The referenced objects as read for this reconcile, to copy from.
#[derive(Debug, Clone, Default)]
pub struct Originals {
    config_maps: BTreeMap<String, ConfigMap>,
    secrets: BTreeMap<String, Secret>,
}

/// The desired revision with its configuration digests, and its preflight outcome.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The revision the spec (and the referenced contents) describe.
    pub revision: Revision,
    /// Preflight problems of that revision; `Ok` when it passed or was not re-run at rest.
    pub preflight: Result<(), Vec<String>>,
    /// What was read (empty at rest).
    pub originals: Originals,
    /// `resourceVersion` of each referenced object that exists, by key (`configmap/NAME`), as
    /// read (empty at rest).
    pub versions: BTreeMap<String, String>,
}

/// The referenced objects of `sd`'s templates that exist, with their `resourceVersion`, from the
/// metadata caches (no API call).
pub fn cached_versions(
    ctx: &Context,
    namespace: &str,
    objects: &std::collections::BTreeSet<ConfigObjectRef>,
) -> BTreeMap<String, String> {
    objects
        .iter()
        .filter_map(|object| {
            let version = match object.kind {
                ConfigKind::ConfigMap => ctx
                    .config_map_versions
                    .get(&ObjectRef::new(&object.name).within(namespace))
                    .and_then(|m| m.metadata.resource_version.clone()),
                ConfigKind::Secret => ctx
                    .secret_versions
                    .get(&ObjectRef::new(&object.name).within(namespace))
                    .and_then(|m| m.metadata.resource_version.clone()),
            }?;
            Some((object.key(), version))
        })
        .collect()
}

/// The objects the revision's templates reference.
fn referenced(revision: &Revision) -> std::collections::BTreeSet<ConfigObjectRef> {
    revision
        .components
        .iter()
        .flat_map(|c| referenced_objects(&c.template))
        .collect()
}

/// The desired revision: from the cache at rest, else from the referenced objects as they are
/// now, with preflight.
pub async fn prepare(
    sd: &SafeDeployment,
    ctx: &Context,
    status: &SafeDeploymentStatus,
    owned: &[std::sync::Arc<OwnedReplicaSet>],
) -> Result<Prepared, ReconcileError> {
    let namespace = sd.namespace().ok_or(ReconcileError::NoNamespace)?;
    let plain = Revision::from_spec(&sd.spec)?;
    let objects = referenced(&plain);
    let cached = cached_versions(ctx, &namespace, &objects);
    if let Some(revision) = recorded_revision(sd, status, owned, &cached) {
        return Ok(Prepared {
            revision,
            preflight: Ok(()),
            originals: Originals::default(),
            versions: BTreeMap::new(),
        });
    }
    let mut world = World::default();
    let mut originals = Originals::default();
    let mut digests = BTreeMap::new();
    let mut versions = BTreeMap::new();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for object in &objects {
        match object.kind {
            ConfigKind::ConfigMap => {
                if let Some(cm) = config_maps.get_opt(&object.name).await? {
                    digests.insert(object.key(), config_map_digest(&cm));
                    if let Some(version) = cm.metadata.resource_version.clone() {
                        versions.insert(object.key(), version);
                    }
                    world
                        .config_maps
                        .insert(object.name.clone(), config_map_keys(&cm));
                    originals.config_maps.insert(object.name.clone(), cm);
                }
            }
            ConfigKind::Secret => {
                if let Some(secret) = secrets.get_opt(&object.name).await? {
                    digests.insert(object.key(), secret_digest(&secret));
                    if let Some(version) = secret.metadata.resource_version.clone() {
                        versions.insert(object.key(), version);
                    }
                    world
                        .secrets
                        .insert(object.name.clone(), secret_keys(&secret));
                    originals.secrets.insert(object.name.clone(), secret);
                }
            }
        }
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    for name in preflight::service_accounts(&plain.components) {
        if accounts.get_metadata_opt(&name).await?.is_some() {
            world.service_accounts.insert(name);
        }
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    for name in preflight::persistent_volume_claims(&plain.components) {
        if claims.get_metadata_opt(&name).await?.is_some() {
            world.persistent_volume_claims.insert(name);
        }
    }
    for name in preflight::pull_secrets(&plain.components) {
        if let Some(secret) = secrets.get_opt(&name).await? {
            let kind = secret.type_.unwrap_or_else(|| "Opaque".to_string());
            world.pull_secrets.insert(name, kind);
        }
    }
    world.require_pinned_images = pinned_images_required(ctx, &namespace).await?;
    let revision = Revision::from_spec_with_config(&sd.spec, &digests)?;
    let problems = preflight::check(&revision.components, &world);
    refresh_recorded_versions(ctx, &namespace, &revision.hash, owned, &versions).await?;
    Ok(Prepared {
        revision,
        preflight: if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        },
        originals,
        versions,
    })
}

/// After a read that found a revision which already has ReplicaSets (an edit that kept the
/// content, or ReplicaSets from before versions were recorded), records the versions read on
/// them, so the next reconcile at rest needs no read.
async fn refresh_recorded_versions(
    ctx: &Context,
    namespace: &str,
    hash: &str,
    owned: &[std::sync::Arc<OwnedReplicaSet>],
    versions: &BTreeMap<String, String>,
) -> Result<(), ReconcileError> {
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    let stale = owned
        .iter()
        .filter(|rs| rs.revision.as_deref() == Some(hash))
        .filter(|rs| recorded_versions(rs).as_ref() != Some(versions));
    for rs in stale {
        let name = &rs.name;
        let annotation = versions_annotation(versions);
        super::apply::change(
            ctx,
            &api,
            name,
            format!("record the configuration versions on ReplicaSet {name}"),
            |rs: &mut ReplicaSet| {
                rs.status = None;
                rs.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(ANNOTATION_CONFIG_VERSIONS.to_string(), annotation.clone());
            },
        )
        .await?;
        info!(replica_set = %rs.name, "recorded the configuration versions read");
    }
    Ok(())
}

/// The value of [`ANNOTATION_CONFIG_VERSIONS`].
pub fn versions_annotation(versions: &BTreeMap<String, String>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = versions
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    crate::canonical_json::canonical(&serde_json::Value::Object(map))
}

/// The versions a ReplicaSet records (none recorded: an empty map, which matches a revision
/// without configuration); `None` when the annotation is unreadable.
pub fn recorded_versions(rs: &OwnedReplicaSet) -> Option<BTreeMap<String, String>> {
    match &rs.config_versions {
        None => Some(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).ok(),
    }
}

/// The revision the last reconcile decided on, rebuilt without reading any ConfigMap or Secret:
/// only when the spec is unchanged since (same generation), no canary is in progress, and a
/// ReplicaSet of that revision records configuration digests that, with the spec, reproduce
/// its hash, and records exactly the `cached` versions of the referenced objects (so none was
/// edited, deleted or created since).
fn recorded_revision(
    sd: &SafeDeployment,
    status: &SafeDeploymentStatus,
    owned: &[std::sync::Arc<OwnedReplicaSet>],
    cached: &BTreeMap<String, String>,
) -> Option<Revision> {
    if sd.metadata.generation.is_none()
        || sd.metadata.generation != status.observed_generation
        || status.canary_revision.is_some()
    {
        return None;
    }
    // The status records the verdict of the revision the last decision was about.
    let hash = &status.attestation.as_ref()?.revision;
    let rs = owned.iter().find(|rs| rs.revision.as_ref() == Some(hash))?;
    if recorded_versions(rs).as_ref() != Some(cached) {
        return None;
    }
    let digests = recorded_config(rs)?;
    let revision = Revision::from_spec_with_config(&sd.spec, &digests).ok()?;
    (&revision.hash == hash).then_some(revision)
}

/// The configuration digests a ReplicaSet records (none recorded: an empty map); `None` when
/// the annotation is unreadable.
pub fn recorded_config(rs: &OwnedReplicaSet) -> Option<BTreeMap<String, String>> {
    match &rs.config_objects {
        None => Some(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).ok(),
    }
}

/// Whether the policy that applies to `namespace` requires images pinned by digest: unless it
/// opts out, and always when it requires attestations (which bind image digests). Without a
/// policy nothing rolls out anyway (the attestation gate reports `PolicyViolation`).
async fn pinned_images_required(ctx: &Context, namespace: &str) -> Result<bool, ReconcileError> {
    let policy = namespace_policy(ctx, namespace).await?;
    Ok(policy.is_some_and(|p| p.spec.require_attestation || p.spec.require_pinned_images))
}

/// Makes sure every copy of `config_objects` exists with its content and is owned by `owner`:
/// an existing copy gains `owner` as an owner; a missing one is created from the original,
/// which must still hold that content.
pub async fn ensure_copies(
    sd: &SafeDeployment,
    ctx: &Context,
    revision: &str,
    config_objects: &BTreeMap<String, String>,
    (owner_name, owner_uid): (&str, &str),
    originals: &Originals,
) -> Result<(), ReconcileError> {
    let namespace = sd.namespace().ok_or(ReconcileError::NoNamespace)?;
    let sd_name = sd.name_any();
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: owner_name.to_string(),
        uid: owner_uid.to_string(),
        controller: None,
        block_owner_deletion: None,
    };
    for (key, digest) in config_objects {
        let Some(object) = ConfigObjectRef::parse_key(key) else {
            continue;
        };
        let wanted = Wanted {
            copy: copy_name(&object.name, digest),
            object: &object,
            digest,
            revision,
            owner: &owner,
        };
        match object.kind {
            ConfigKind::ConfigMap => {
                ensure_copy(
                    ctx,
                    Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace),
                    &wanted,
                    originals.config_maps.get(&object.name),
                    config_map_digest,
                    |original| config_map_copy(original, &sd_name),
                )
                .await?;
            }
            ConfigKind::Secret => {
                ensure_copy(
                    ctx,
                    Api::<Secret>::namespaced(ctx.client.clone(), &namespace),
                    &wanted,
                    originals.secrets.get(&object.name),
                    secret_digest,
                    |original| secret_copy(original, &sd_name),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// One copy a ReplicaSet needs.
struct Wanted<'a> {
    copy: String,
    object: &'a ConfigObjectRef,
    digest: &'a str,
    revision: &'a str,
    owner: &'a OwnerReference,
}

/// Checks an existing copy (content, owner) or creates it from the original.
async fn ensure_copy<K>(
    ctx: &Context,
    api: Api<K>,
    wanted: &Wanted<'_>,
    read_before: Option<&K>,
    digest_of: fn(&K) -> String,
    make_copy: impl Fn(&K) -> K,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let copy = wanted.copy.as_str();
    let owner = wanted.owner;
    if let Some(existing) = api.get_opt(copy).await? {
        let found = digest_of(&existing);
        if found != wanted.digest {
            return Err(ConfigError::CopyConflict {
                kind: wanted.object.kind.as_str(),
                copy: copy.to_string(),
                expected: wanted.digest.to_string(),
                found,
            }
            .into());
        }
        if !existing
            .owner_references()
            .iter()
            .any(|o| o.uid == owner.uid)
        {
            // The copy is applied back whole with the new owner added to its owners.
            super::apply::change(
                ctx,
                &api,
                copy,
                format!("share the configuration copy {copy} with {}", owner.name),
                |object: &mut K| {
                    let owners = object.meta_mut().owner_references.get_or_insert_default();
                    if !owners.iter().any(|o| o.uid == owner.uid) {
                        owners.push(owner.clone());
                    }
                },
            )
            .await?;
            info!(copy, owner = %owner.name, "configuration copy shared with another ReplicaSet");
        }
        return Ok(());
    }
    let original = match read_before {
        Some(original) => Some(original.clone()),
        None => api.get_opt(&wanted.object.name).await?,
    };
    let Some(original) = original.filter(|o| digest_of(o) == wanted.digest) else {
        return Err(ConfigError::ContentGone {
            object: wanted.object.to_string(),
            copy: copy.to_string(),
            expected: wanted.digest.to_string(),
            revision: wanted.revision.to_string(),
        }
        .into());
    };
    let mut fresh = make_copy(&original);
    fresh.meta_mut().owner_references = Some(vec![owner.clone()]);
    super::apply::apply_object(
        ctx,
        &api,
        &fresh,
        format!("create the configuration copy {copy}"),
    )
    .await?;
    info!(copy, owner = %owner.name, "configuration copy created");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AttestationVerdict;
    use crate::controller::cached::{CachedReplicaSet, OwnedReplicaSet};
    use crate::core::workload;
    use std::sync::Arc;

    fn rollout() -> SafeDeployment {
        let mut sd = workload::tests::web(2, workload::tests::APP_CONFIG_TEMPLATE);
        sd.metadata.generation = Some(3);
        sd
    }

    /// The status and ReplicaSets of `sd` at rest on the revision with these digests.
    fn at_rest(
        sd: &SafeDeployment,
        digests: &BTreeMap<String, String>,
    ) -> (Revision, SafeDeploymentStatus, Vec<Arc<OwnedReplicaSet>>) {
        let revision = Revision::from_spec_with_config(&sd.spec, digests).unwrap();
        let mut rs = workload::replica_set(sd, &revision, &revision.components[0], 1, 2);
        if !digests.is_empty() {
            rs.metadata.annotations.get_or_insert_default().insert(
                ANNOTATION_CONFIG_VERSIONS.into(),
                versions_annotation(&versions()),
            );
        }
        let status = SafeDeploymentStatus {
            observed_generation: Some(3),
            stable_revision: Some(revision.hash.clone()),
            attestation: Some(AttestationVerdict {
                revision: revision.hash.clone(),
                verified: true,
                reason: "NotRequired".into(),
                message: String::new(),
            }),
            ..Default::default()
        };
        (
            revision,
            status,
            vec![Arc::new(OwnedReplicaSet::of(&CachedReplicaSet::from(&rs)))],
        )
    }

    fn digests() -> BTreeMap<String, String> {
        BTreeMap::from([(
            "configmap/app-config".to_string(),
            "sha256:0123456789abcdef".to_string(),
        )])
    }

    fn versions() -> BTreeMap<String, String> {
        BTreeMap::from([("configmap/app-config".to_string(), "41".to_string())])
    }

    #[test]
    fn an_edited_deleted_or_new_referenced_object_means_reading_again() {
        let sd = rollout();
        let (revision, status, owned) = at_rest(&sd, &digests());
        assert_eq!(
            recorded_revision(&sd, &status, &owned, &versions()),
            Some(revision)
        );
        let edited = BTreeMap::from([("configmap/app-config".to_string(), "57".to_string())]);
        assert_eq!(recorded_revision(&sd, &status, &owned, &edited), None);
        assert_eq!(
            recorded_revision(&sd, &status, &owned, &BTreeMap::new()),
            None
        );
        let mut appeared = versions();
        appeared.insert("secret/optional".into(), "3".into());
        assert_eq!(recorded_revision(&sd, &status, &owned, &appeared), None);
        // Round trip of the annotation.
        assert_eq!(recorded_versions(owned[0].as_ref()), Some(versions()));
    }

    #[test]
    fn at_rest_the_revision_comes_from_the_replica_sets_without_reading_config() {
        let sd = rollout();
        let (revision, status, owned) = at_rest(&sd, &digests());
        assert_eq!(
            recorded_revision(&sd, &status, &owned, &versions()),
            Some(revision)
        );
        // A ReplicaSet from before configuration versioning (no annotation): the plain hash.
        let (plain, status, owned) = at_rest(&sd, &BTreeMap::new());
        assert_eq!(owned[0].config_objects, None);
        assert_eq!(
            recorded_revision(&sd, &status, &owned, &BTreeMap::new()),
            Some(plain)
        );
    }

    #[test]
    fn a_changed_spec_a_canary_or_an_unreadable_record_means_reading_again() {
        let sd = rollout();
        let (_, status, owned) = at_rest(&sd, &digests());
        let mut newer = sd.clone();
        newer.metadata.generation = Some(4);
        assert_eq!(
            recorded_revision(&newer, &status, &owned, &versions()),
            None
        );
        let mut canary = status.clone();
        canary.canary_revision = Some("abc".into());
        assert_eq!(recorded_revision(&sd, &canary, &owned, &versions()), None);
        // The last decision was about a revision without a ReplicaSet (blocked): read.
        let mut blocked = status.clone();
        if let Some(verdict) = blocked.attestation.as_mut() {
            verdict.revision = "0000000000".into();
        }
        assert_eq!(recorded_revision(&sd, &blocked, &owned, &versions()), None);
        // Digests that do not reproduce the ReplicaSet's revision are not trusted.
        let mut tampered = (*owned[0]).clone();
        tampered.config_objects = Some(r#"{"configmap/app-config":"sha256:ffff"}"#.into());
        assert_eq!(
            recorded_revision(&sd, &status, &[Arc::new(tampered.clone())], &versions()),
            None
        );
        tampered.config_objects = Some("not json".into());
        assert_eq!(recorded_config(&tampered), None);
        assert_eq!(
            recorded_revision(&sd, &status, &[Arc::new(tampered)], &versions()),
            None
        );
    }
}
