//! Preflight, pure: before any pod of a new revision is created, check that everything its
//! templates refer to exists — ConfigMaps and Secrets and the keys taken from them,
//! ServiceAccounts, PersistentVolumeClaims, image pull Secrets (and that they hold registry
//! credentials), the containers named by `resourceFieldRef` — and, unless the namespace's policy
//! opts out (`requirePinnedImages: false`), that every image is pinned by digest.
//!
//! Image pull Secrets are checked but not versioned: they are registry credentials, not the
//! application's configuration, and rotating them must not start a rollout.
//!
//! The I/O layer gathers the [`World`] (only the objects the templates name); [`check`] returns
//! one precise line per problem, such as
//! `ConfigMap "app-config" has no key "LOG_LEVEL" (component api, container "app", env LOG_LEVEL)`.
//! Any problem blocks the rollout like a rejected attestation.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{ConfigKind, containers, references};
use super::revision::ComponentTemplate;
use crate::api::image::parse_pinned;

/// What exists in the namespace, as far as the templates refer to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// Existing ConfigMaps and their keys (`data` and `binaryData`).
    pub config_maps: BTreeMap<String, BTreeSet<String>>,
    /// Existing Secrets and their keys.
    pub secrets: BTreeMap<String, BTreeSet<String>>,
    /// Existing ServiceAccounts.
    pub service_accounts: BTreeSet<String>,
    /// Existing PersistentVolumeClaims.
    pub persistent_volume_claims: BTreeSet<String>,
    /// Existing image pull Secrets and their `type`.
    pub pull_secrets: BTreeMap<String, String>,
    /// Whether every image must be pinned by digest (the namespace's policy's
    /// `requirePinnedImages`, always true when it requires attestations).
    pub require_pinned_images: bool,
}

/// The ServiceAccounts the templates name explicitly (an unset name means the namespace's
/// `default`, which Kubernetes provides).
pub fn service_accounts(components: &[ComponentTemplate]) -> BTreeSet<String> {
    components
        .iter()
        .filter_map(|c| c.template.spec.as_ref())
        .filter_map(|pod| {
            pod.service_account_name
                .clone()
                .or_else(|| pod.service_account.clone())
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The PersistentVolumeClaims the templates' volumes name.
pub fn persistent_volume_claims(components: &[ComponentTemplate]) -> BTreeSet<String> {
    components
        .iter()
        .filter_map(|c| c.template.spec.as_ref())
        .flat_map(|pod| pod.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|claim| claim.claim_name.clone())
        .collect()
}

/// The image pull Secrets the templates name.
pub fn pull_secrets(components: &[ComponentTemplate]) -> BTreeSet<String> {
    components
        .iter()
        .filter_map(|c| c.template.spec.as_ref())
        .flat_map(|pod| pod.image_pull_secrets.iter().flatten())
        .map(|reference| reference.name.clone())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Secret types the kubelet reads registry credentials from.
pub const PULL_SECRET_TYPES: [&str; 2] =
    ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];

/// Every problem of the templates in `world`, in component order, each once. Empty when the
/// revision may start.
pub fn check(components: &[ComponentTemplate], world: &World) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    let mut push = |problem: String| {
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    };
    for component in components {
        let name = &component.name;
        let Some(pod) = &component.template.spec else {
            continue;
        };
        if let Some(account) = pod
            .service_account_name
            .as_ref()
            .or(pod.service_account.as_ref())
            .filter(|a| !a.is_empty())
            && !world.service_accounts.contains(account)
        {
            push(format!(
                "ServiceAccount {account:?} not found (component {name})"
            ));
        }
        for volume in pod.volumes.iter().flatten() {
            if let Some(claim) = &volume.persistent_volume_claim
                && !world.persistent_volume_claims.contains(&claim.claim_name)
            {
                push(format!(
                    "PersistentVolumeClaim {:?} not found (component {name}, volume {:?})",
                    claim.claim_name, volume.name
                ));
            }
        }
        for pull in pod.image_pull_secrets.iter().flatten() {
            if pull.name.is_empty() {
                continue;
            }
            match world.pull_secrets.get(&pull.name) {
                None => push(format!(
                    "image pull Secret {:?} not found (component {name}, imagePullSecrets)",
                    pull.name
                )),
                Some(kind) if !PULL_SECRET_TYPES.contains(&kind.as_str()) => push(format!(
                    "image pull Secret {:?} has type {kind:?}, not {} (component {name}, imagePullSecrets)",
                    pull.name, PULL_SECRET_TYPES[0]
                )),
                Some(_) => {}
            }
        }
        for reference in references(&component.template) {
            if reference.optional {
                continue;
            }
            let objects = match reference.object.kind {
                ConfigKind::ConfigMap => &world.config_maps,
                ConfigKind::Secret => &world.secrets,
            };
            let site = &reference.site;
            match (objects.get(&reference.object.name), &reference.key) {
                (None, _) => push(format!(
                    "{} not found (component {name}, {site})",
                    reference.object
                )),
                (Some(keys), Some(key)) if !keys.contains(key) => push(format!(
                    "{} has no key {key:?} (component {name}, {site})",
                    reference.object
                )),
                _ => {}
            }
        }
        let container_names: BTreeSet<&str> = pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
            .map(|c| c.name.as_str())
            .collect();
        for (label, container) in containers(pod) {
            for env in container.env.iter().flatten() {
                let target = env
                    .value_from
                    .as_ref()
                    .and_then(|f| f.resource_field_ref.as_ref())
                    .and_then(|r| r.container_name.as_deref())
                    .filter(|c| !c.is_empty());
                if let Some(target) = target
                    && !container_names.contains(target)
                {
                    push(format!(
                        "resourceFieldRef names container {target:?}, which does not exist (component {name}, {label}, env {})",
                        env.name
                    ));
                }
            }
            if world.require_pinned_images {
                let image = container.image.as_deref().unwrap_or_default();
                if parse_pinned(image).is_none() {
                    push(format!(
                        "image {image:?} is not pinned by digest (repository@sha256:<64 hex>), which the namespace's policy requires (component {name}, {label})"
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodTemplateSpec;

    const DIGEST: &str = "6b6d3a8e1f0c2b4a59d7e3f1a2c4b6d8e0f1a3c5b7d9e1f3a5c7e9b1d3f5a7c9";

    fn component(name: &str, yaml: &str) -> ComponentTemplate {
        let template: PodTemplateSpec = serde_yaml::from_str(yaml).unwrap();
        ComponentTemplate {
            name: name.into(),
            replicas: 1,
            template,
        }
    }

    fn keys(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    /// Everything `api` and `worker` need.
    fn complete_world() -> World {
        World {
            config_maps: BTreeMap::from([("app-config".into(), keys(&["LOG_LEVEL", "MODE"]))]),
            secrets: BTreeMap::from([("db".into(), keys(&["password"]))]),
            service_accounts: keys(&["api-sa"]),
            persistent_volume_claims: keys(&["data"]),
            pull_secrets: BTreeMap::from([(
                "regcred".into(),
                "kubernetes.io/dockerconfigjson".into(),
            )]),
            require_pinned_images: false,
        }
    }

    fn components() -> Vec<ComponentTemplate> {
        vec![
            component(
                "api",
                r#"
spec:
  serviceAccountName: api-sa
  containers:
  - name: app
    image: registry.local/api:v1
    env:
    - {name: LOG_LEVEL, valueFrom: {configMapKeyRef: {name: app-config, key: LOG_LEVEL}}}
    - {name: FEATURE, valueFrom: {configMapKeyRef: {name: flags, key: FEATURE, optional: true}}}
    - {name: CPU, valueFrom: {resourceFieldRef: {containerName: app, resource: limits.cpu}}}
    volumeMounts: [{name: config, mountPath: /etc/app}]
  volumes:
  - {name: config, configMap: {name: app-config, items: [{key: MODE, path: mode}]}}
"#,
            ),
            component(
                "worker",
                r#"
spec:
  imagePullSecrets: [{name: regcred}]
  containers:
  - name: work
    image: registry.local/worker:v1
    envFrom: [{secretRef: {name: db}}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
"#,
            ),
        ]
    }

    #[test]
    fn a_complete_world_has_no_problem_and_names_are_collected() {
        assert_eq!(
            check(&components(), &complete_world()),
            Vec::<String>::new()
        );
        assert_eq!(service_accounts(&components()), keys(&["api-sa"]));
        assert_eq!(persistent_volume_claims(&components()), keys(&["data"]));
        assert_eq!(pull_secrets(&components()), keys(&["regcred"]));
    }

    #[test]
    fn each_missing_item_is_reported_precisely() {
        type Change = fn(&mut World);
        let cases: Vec<(&str, Change, Vec<&str>)> = vec![
            (
                "missing key",
                |w| {
                    w.config_maps.insert("app-config".into(), keys(&["MODE"]));
                },
                vec![
                    r#"ConfigMap "app-config" has no key "LOG_LEVEL" (component api, container "app", env LOG_LEVEL)"#,
                ],
            ),
            (
                "missing volume item key",
                |w| {
                    w.config_maps
                        .insert("app-config".into(), keys(&["LOG_LEVEL"]));
                },
                vec![
                    r#"ConfigMap "app-config" has no key "MODE" (component api, volume "config")"#,
                ],
            ),
            (
                "missing ConfigMap: one line per place it is used",
                |w| {
                    w.config_maps.clear();
                },
                vec![
                    r#"ConfigMap "app-config" not found (component api, volume "config")"#,
                    r#"ConfigMap "app-config" not found (component api, container "app", env LOG_LEVEL)"#,
                ],
            ),
            (
                "missing Secret",
                |w| {
                    w.secrets.clear();
                },
                vec![r#"Secret "db" not found (component worker, container "work", envFrom)"#],
            ),
            (
                "missing ServiceAccount and PVC",
                |w| {
                    w.service_accounts.clear();
                    w.persistent_volume_claims.clear();
                },
                vec![
                    r#"ServiceAccount "api-sa" not found (component api)"#,
                    r#"PersistentVolumeClaim "data" not found (component worker, volume "data")"#,
                ],
            ),
            (
                "missing image pull Secret",
                |w| {
                    w.pull_secrets.clear();
                },
                vec![
                    r#"image pull Secret "regcred" not found (component worker, imagePullSecrets)"#,
                ],
            ),
            (
                "image pull Secret without registry credentials",
                |w| {
                    w.pull_secrets.insert("regcred".into(), "Opaque".into());
                },
                vec![
                    r#"image pull Secret "regcred" has type "Opaque", not kubernetes.io/dockerconfigjson (component worker, imagePullSecrets)"#,
                ],
            ),
            (
                "unpinned images when the policy requires attestation",
                |w| {
                    w.require_pinned_images = true;
                },
                vec![
                    r#"image "registry.local/api:v1" is not pinned by digest (repository@sha256:<64 hex>), which the namespace's policy requires (component api, container "app")"#,
                    r#"image "registry.local/worker:v1" is not pinned by digest (repository@sha256:<64 hex>), which the namespace's policy requires (component worker, container "work")"#,
                ],
            ),
        ];
        for (name, change, expected) in cases {
            let mut world = complete_world();
            change(&mut world);
            assert_eq!(check(&components(), &world), expected, "{name}");
        }
    }

    #[test]
    fn optional_references_and_pinned_images_pass() {
        let mut world = complete_world();
        // `flags` is optional and absent: fine.
        assert!(!world.config_maps.contains_key("flags"));
        world.require_pinned_images = true;
        let pinned = vec![component(
            "api",
            &format!(
                "spec: {{containers: [{{name: app, image: 'registry.local/api:v1@sha256:{DIGEST}'}}]}}"
            ),
        )];
        assert!(check(&pinned, &world).is_empty());
    }

    #[test]
    fn a_resource_field_ref_to_an_unknown_container_is_reported() {
        let components = vec![component(
            "api",
            r#"
spec:
  containers:
  - name: app
    image: i
    env: [{name: MEM, valueFrom: {resourceFieldRef: {containerName: sidecar, resource: limits.memory}}}]
"#,
        )];
        assert_eq!(
            check(&components, &World::default()),
            vec![
                r#"resourceFieldRef names container "sidecar", which does not exist (component api, container "app", env MEM)"#
            ]
        );
    }
}
